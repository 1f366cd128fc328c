/** `isoload load --mode registry`: the archive, streamed once into a registry storage tree, plus registries.conf. */
import { join, resolve } from "node:path";
import { checkSpaceFor } from "../util/disk_space.ts";
import { syncFilesystem } from "../util/atomic_write.ts";
import { caPathFor, installCa } from "../host/ca_install.ts";
import { ensureCa } from "../server/tls.ts";
import { catalog } from "../image/catalog.ts";
import { InputError } from "../util/errors.ts";
import type { NamingOptions } from "../archive/format.ts";
import { mergeImages } from "../image/loaded_image.ts";
import { ingest } from "../archive/ingest.ts";
import { watchInterrupts } from "../util/interrupt.ts";
import { lockDataDir } from "../store/lock.ts";
import { byteProgress, formatBytes, formatDuration, type Logger } from "../util/log.ts";
import { readRecords, type Records, writeRecords } from "../store/records.ts";
import { mirrorTargets } from "../host/registries_conf.ts";
import { planRegistriesConf, readHostConf, writeRegistriesConf } from "../host/registries_conf_file.ts";
import { RegistryStore } from "../store/storage_tree.ts";
import { openSource } from "../archive/source.ts";

/** Options of `isoload load` in registry mode. */
export interface LoadOptions {
  source: string;
  dataDir: string;
  /** HOST:PORT clients reach the registry at. */
  mirror: string;
  /** registries.conf to write; undefined: write none. */
  registriesConf?: string;
  naming: NamingOptions;
  /** True while the registry serves plain HTTP. */
  insecure: boolean;
  /** With TLS (insecure false): where host0's own trust of DIR's CA goes (`<certsDir>/<mirror>/ca.crt`). */
  certsDir?: string;
}

/** What a load did, for the summary and for tests. */
export interface LoadResult {
  images: number;
  blobsWritten: number;
  bytesWritten: number;
  blobsSkipped: number;
  linksWritten: number;
  nothingToDo: boolean;
}

/** Runs a load. */
export async function load(opts: LoadOptions, log: Logger): Promise<LoadResult> {
  const started = performance.now();
  const dataDir = resolve(opts.dataDir);
  const store = new RegistryStore(dataDir);
  // The host's registries configuration is checked first: a malformed file fails the run before any work.
  const host = opts.registriesConf ? await readHostConf(opts.registriesConf) : undefined;
  const source = await openSource(opts.source);
  const lock = await lockDataDir(store.stateDir, `load ${opts.source} into ${dataDir}`);
  const interrupts = watchInterrupts();
  try {
    await store.clearTemp();
    const previous = await readRecords(dataDir);
    let marked = false;
    const markIncomplete = async () => {
      if (marked) return;
      marked = true;
      const r: Records = previous ?? { version: 1, complete: false, images: [], blobs: 0, bytes: 0, loads: [] };
      await writeRecords(dataDir, { ...r, complete: false });
    };
    store.beforeWrite = markIncomplete;

    await checkSpaceFor(`load ${source.path} into ${dataDir}`, dataDir, source.size, join(store.v2, "blobs"));
    log.info(`Loading ${source.path} (${source.container}, ${formatBytes(source.size)}) into ${dataDir}`);
    const progress = byteProgress(log, "load", source.size);
    const pass = await ingest(source, store, {
      progress: (pos, what) => progress(pos, what),
      signal: interrupts.signal,
      doing: `load ${source.path}`,
    });
    log.endProgress();

    const { plan, sizes } = await catalog(pass, store, opts.naming);
    if (plan.missing.length) {
      const first = plan.missing[0];
      const hint = pass.format.name === "oc-mirror-v2"
        ? " This looks like a later archive of an incremental oc-mirror series: load the earlier archives into the same --data-dir first."
        : "";
      throw new InputError(
        `Cannot load ${source.path}: ${plan.missing.length} blobs the images need are neither in it nor in ${dataDir} ` +
          `(first: ${first.image} needs ${first.what} ${first.digest}).${hint}`,
      );
    }
    for (const a of plan.absentChildren) {
      log.info(`note: ${a.image} lists ${a.platform} manifest ${a.digest}, which the archive does not carry; it is left out`);
    }
    let linksWritten = 0;
    for (const [path, digest] of plan.links) {
      if (await store.writeLink(path, digest)) linksWritten++;
    }

    if (linksWritten > 0) await syncFilesystem(store.v2);
    const images = mergeImages(previous?.images ?? [], plan.images);
    const blobDigests = new Set(plan.links.map(([, d]) => d));
    for (const img of previous?.images ?? []) blobDigests.add(img.digest);
    const loads = [...(previous?.loads ?? [])];
    const sourcePath = resolve(opts.source);
    // What isoload writes outside DIR, for `status` (and for whoever cleans up).
    const files: Records["files"] = {
      mirror: opts.mirror,
      ...(host ? { registriesConf: resolve(host.target) } : {}),
      ...(!opts.insecure && host && opts.certsDir ? { ca: resolve(caPathFor(opts.certsDir, opts.mirror)) } : {}),
    };
    const nothingToDo = pass.written.blobs === 0 && linksWritten === 0 && !marked &&
      previous?.complete === true && JSON.stringify(previous.images) === JSON.stringify(images) &&
      JSON.stringify(previous.files ?? {}) === JSON.stringify(files);
    if (!nothingToDo) {
      if (!loads.some((l) => l.source === sourcePath)) loads.push({ source: sourcePath, format: pass.format.name });
      let bytes = 0;
      for (const d of blobDigests) bytes += sizes.get(d) ?? (await store.blobSize(d)) ?? 0;
      await writeRecords(dataDir, { version: 1, complete: true, images, blobs: blobDigests.size, bytes, loads, files });
    }

    if (!opts.insecure) {
      // TLS: the CA is made now if serve has not made it yet, so host0 trusts its own registry from the start.
      const ca = await ensureCa(dataDir);
      if (host && opts.certsDir && await installCa(opts.certsDir, opts.mirror, ca.pem)) {
        log.info(`Installed the registry CA at ${caPathFor(opts.certsDir, opts.mirror)}`);
      }
    }
    if (host) {
      const confPlan = planRegistriesConf(
        host,
        mirrorTargets(images, opts.mirror),
        opts.insecure,
        `Mirrors of the images isoload loaded into ${dataDir}, served at ${opts.mirror}.`,
      );
      confPlan.warnings.forEach((w) => log.warn(w));
      const res = await writeRegistriesConf(host, confPlan);
      if (res.changed) {
        log.info(`Wrote ${host.target}${res.backup ? ` (previous content kept in ${res.backup})` : ""}`);
      }
    }

    const took = formatDuration(performance.now() - started);
    if (nothingToDo) {
      log.info(`Nothing to do: ${dataDir} already holds all ${images.length} images of ${source.path} (checked in ${took})`);
    } else {
      log.info(
        `Loaded ${plan.images.length} images from ${source.path} in ${took}: wrote ${pass.written.blobs} blobs ` +
          `(${formatBytes(pass.written.bytes)}), kept ${pass.skipped.blobs} already present, wrote ${linksWritten} links`,
      );
    }
    return {
      images: plan.images.length,
      blobsWritten: pass.written.blobs,
      bytesWritten: pass.written.bytes,
      blobsSkipped: pass.skipped.blobs,
      linksWritten,
      nothingToDo,
    };
  } finally {
    interrupts.dispose();
    lock.release();
    source.close();
  }
}
