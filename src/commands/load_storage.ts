/**
 * `isoload load --mode storage`: every image of the archive copied into
 * containers-storage under its source name, so CRI-O finds it with no registry,
 * and pinned against kubelet image garbage collection.
 *
 * skopeo cannot read a stream, so the archive is streamed once (verified, as
 * in registry mode) into a scratch tree under DIR, exported image by image as
 * `dir:` layouts of hard links, and copied from there; the scratch goes
 * afterwards unless kept.
 */
import { join, resolve } from "node:path";
import { catalog } from "../image/catalog.ts";
import { checkSpaceFor } from "../util/disk_space.ts";
import { checkRamTarget } from "../util/ram_target.ts";
import { ContainersStorage, writeDirPolicy } from "../storage_mode/containers_storage.ts";
import { ConfigError, describeError, EnvironmentError, InputError, wrapFsError } from "../util/errors.ts";
import type { NamingOptions } from "../archive/format.ts";
import { ingest } from "../archive/ingest.ts";
import { checkInterrupt, watchInterrupts } from "../util/interrupt.ts";
import { lockDataDir } from "../store/lock.ts";
import { byteProgress, formatBytes, formatDuration, type Logger } from "../util/log.ts";
import { exportDirImage } from "../storage_mode/dir_export.ts";
import { assertPinFileOwned, writePinnedImages } from "../storage_mode/pinned_images.ts";
import { runPool } from "../util/pool.ts";
import { RegistryStore } from "../store/storage_tree.ts";
import { openSources } from "../archive/source.ts";
import { dataDirPaths } from "../store/paths.ts";
import { hostPlatform, planStorage, type StorageFailure } from "../storage_mode/storage_plan.ts";
import {
  readStorageRecords,
  sameSource,
  sourceIdentity,
  type StorageRecords,
  type StoredImage,
  withLoad,
  writeStorageRecords,
} from "../storage_mode/storage_records.ts";

/** The CRI-O drop-in written unless `--pin none`. */
export const DEFAULT_PIN_FILE = "/etc/crio/crio.conf.d/99-isoload-pinned-images.conf";

/** Options of `isoload load --mode storage`. */
export interface StorageLoadOptions {
  /** The source: one or more paths or quoted globs (see openSources). */
  sources: string[];
  dataDir: string;
  /** Load into a RAM-backed DIR even past the safe share of memory. */
  allowRamTarget?: boolean;
  /** storage.conf for skopeo; undefined: the host's. */
  storageConf?: string;
  /** Copies run at once. */
  jobs: number;
  /** Pin file to write; undefined: none. */
  pinFile?: string;
  /** Keep the scratch tree (a re-run then reads no blob again). */
  keep: boolean;
  naming: NamingOptions;
}

/** What a storage load did. */
export interface StorageLoadResult {
  images: number;
  copied: number;
  present: number;
  failures: StorageFailure[];
  nothingToDo: boolean;
}

/** A sensible number of parallel copies: extraction is serialised by the store lock, so a few suffice. */
export function defaultJobs(): number {
  return Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1));
}

/** Refuses, before any work, a storage.conf that cannot be read or a pin file isoload may not replace. */
async function preflight(opts: StorageLoadOptions): Promise<void> {
  if (opts.storageConf) {
    try {
      await Deno.readTextFile(opts.storageConf);
    } catch (e) {
      throw new ConfigError(`Cannot use --storage-conf ${opts.storageConf}: ${describeError(wrapFsError("read it", e))}`);
    }
  }
  if (opts.pinFile) await assertPinFileOwned(opts.pinFile);
}

/** Whether every target of every image resolves in the store to one of its digests. */
async function allPresent(storage: ContainersStorage, images: StoredImage[], jobs: number): Promise<boolean> {
  const checks = await runPool(images, jobs, async (img) => {
    for (const t of img.targets) {
      const d = await storage.manifestDigest(t);
      if (!d || !img.accepts.includes(d)) return false;
    }
    return true;
  });
  return checks.every((c) => c.ok && c.value);
}

/** Runs a storage-mode load. */
export async function loadStorage(opts: StorageLoadOptions, log: Logger): Promise<StorageLoadResult> {
  const started = performance.now();
  const dataDir = resolve(opts.dataDir);
  const paths = dataDirPaths(dataDir);
  await preflight(opts);
  const source = await openSources(opts.sources);
  const doing = `load ${source.path} into containers-storage`;
  // Memory is checked before DIR is touched (the lock lives in DIR), unless the same source finished before:
  // a re-run then checks the store and may read nothing.
  const done = (await readStorageRecords(dataDir))?.loads.find((l) =>
    l.complete && sameSource(l.source, sourceIdentity(source.parts.flatMap((p) => p.files)))
  );
  if (!done) {
    const scratch = new RegistryStore(paths.scratch, paths);
    await checkRamTarget(
      `load ${source.path} via ${scratch.root}`,
      dataDir,
      source.size,
      scratch.blobsDir,
      opts.allowRamTarget === true,
    )
      .catch((e) => {
        source.close();
        throw e;
      });
  }
  const lock = await lockDataDir(paths, doing);
  const interrupts = watchInterrupts();
  try {
    const identity = sourceIdentity(source.parts.flatMap((p) => p.files));
    const storage = new ContainersStorage(
      await writeDirPolicy(paths),
      opts.storageConf && resolve(opts.storageConf),
      interrupts.signal,
    );
    const about = `Images isoload copied into containers-storage, as recorded in ${paths.storageRecords}.`;

    // Records of another store say nothing about this one.
    const found = await readStorageRecords(dataDir);
    let records: StorageRecords = found && found.storageConf === storage.storageConf
      ? found
      : { version: 2, storageConf: storage.storageConf, loads: [] };
    // Pins cover every source loaded into this store: a later archive of a series must not unpin an earlier one's images.
    const pinsWith = (images: StoredImage[]) =>
      records.loads.filter((l) => l.source.path !== identity.path).flatMap((l) => l.images).concat(images).flatMap((i) => i.pins);

    // A finished load of the same source: check the store, not the archive.
    const prev = records.loads.find((l) => l.source.path === identity.path);
    if (prev?.complete && sameSource(prev.source, identity) && await allPresent(storage, prev.images, opts.jobs)) {
      if (opts.pinFile) await writePinned(opts.pinFile, pinsWith(prev.images), about, log);
      log.info(
        `Nothing to do: all ${prev.images.length} images of ${source.path} are in containers-storage ` +
          `(checked in ${formatDuration(performance.now() - started)})`,
      );
      return { images: prev.images.length, copied: 0, present: prev.images.length, failures: [], nothingToDo: true };
    }

    const scratch = new RegistryStore(paths.scratch, paths);
    await checkSpaceFor(`load ${source.path} via ${scratch.root}`, dataDir, source.size, scratch.blobsDir);
    await scratch.clearTemp();
    records = withLoad(records, { source: identity, complete: false, images: prev?.images ?? [], failures: [] });
    await writeStorageRecords(dataDir, records);

    log.info(`Loading ${source.path} (${source.container}, ${formatBytes(source.size)}) into containers-storage via ${scratch.root}`);
    const progress = byteProgress(log, "read", source.size);
    const pass = await ingest(source, scratch, {
      progress: (pos, what) => progress(pos, what),
      keepGoing: true,
      signal: interrupts.signal,
      doing,
    });
    log.endProgress();
    const readTook = performance.now() - started;
    const { plan, manifests } = await catalog(pass, scratch, opts.naming);
    const platform = hostPlatform();
    const sp = planStorage(plan, manifests, pass.corrupt, platform);

    // One dir: image per copy, made just before it is copied (hard links: cheap) and removed after.
    const exports = paths.scratchExports;
    await Deno.remove(exports, { recursive: true }).catch(() => {});

    let copied = 0;
    let present = 0;
    let done = 0;
    log.info(`Copying ${sp.copies.length} images into containers-storage (${opts.jobs} at a time, platform ${platform.architecture})`);
    const outcomes = await runPool(sp.copies, opts.jobs, async (c, i) => {
      checkInterrupt(interrupts.signal, doing);
      const t0 = performance.now();
      let wrote = false;
      const dir = join(exports, String(i));
      try {
        for (const target of c.targets) {
          const d = await storage.manifestDigest(target);
          if (d && c.accepts.includes(d)) continue;
          if (!wrote) await exportDirImage(scratch, c.image.digest, dir);
          await storage.copyFromDir(dir, target);
          wrote = true;
        }
      } finally {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
      done++;
      if (wrote) {
        copied++;
        log.info(`[${done}/${sp.copies.length}] copied ${c.targets.join(", ")} (${formatDuration(performance.now() - t0)})`);
      } else present++;
    });

    // skopeo was stopped with the rest: an interrupted copy is the interruption, not a failure of the image.
    checkInterrupt(interrupts.signal, doing);
    const failures: StorageFailure[] = [...sp.failures];
    const stored: StoredImage[] = [];
    outcomes.forEach((o, i) => {
      const c = sp.copies[i];
      if (o.ok) stored.push({ ref: c.ref, targets: c.targets, accepts: c.accepts, pins: c.pins });
      else failures.push({ ref: c.ref, reason: describeError(o.error) });
    });

    if (opts.pinFile) await writePinned(opts.pinFile, pinsWith(stored), about, log);
    await writeStorageRecords(dataDir, {
      ...withLoad(records, { source: identity, complete: failures.length === 0, images: stored, failures }),
      ...(opts.pinFile ? { pinFile: resolve(opts.pinFile) } : {}),
    });
    if (!opts.keep) {
      await Deno.remove(scratch.root, { recursive: true }).catch((e) => {
        throw wrapFsError(`remove the scratch tree ${scratch.root}`, e);
      });
    }

    const took = formatDuration(performance.now() - started);
    const total = stored.length + failures.length;
    for (const f of failures) log.warn(`${f.ref} failed: ${f.reason}`);
    if (failures.length) {
      const series = pass.format.incremental && failures.some((f) => f.absent)
        ? ". If this is a later archive of an incremental oc-mirror series, load the earlier ones into the same --data-dir first, with --keep"
        : "";
      const summary = `Cannot load ${failures.length} of ${total} images into containers-storage ` +
        `(first: ${failures[0].ref}: ${failures[0].reason}); ${stored.length} loaded${series}`;
      // Copy failures are the host's (skopeo, the store, the disk); the rest are the archive's.
      const hostFault = failures.length > sp.failures.length;
      throw hostFault ? new EnvironmentError(summary) : new InputError(summary);
    }
    log.info(
      `Loaded ${stored.length} images from ${source.path} into containers-storage in ${took} ` +
        `(reading and verifying ${formatDuration(readTook)}): copied ${copied}, ${present} already present`,
    );
    return { images: stored.length, copied, present, failures, nothingToDo: false };
  } finally {
    interrupts.dispose();
    lock.release();
    source.close();
  }
}

async function writePinned(path: string, refs: string[], about: string, log: Logger): Promise<void> {
  if (await writePinnedImages(path, refs, about)) log.info(`Wrote ${path} (${new Set(refs).size} pinned references)`);
}
