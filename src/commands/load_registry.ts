/** `isoload load --mode registry`: the archive streamed once (or the images of peer registries copied) into a registry storage tree, plus registries.conf. */
import { resolve } from "node:path";
import { checkSpaceFor } from "../util/disk_space.ts";
import { checkRamTarget } from "../util/ram_target.ts";
import { syncFilesystem } from "../util/atomic_write.ts";
import { caPathFor, installCa } from "../host/ca_install.ts";
import { ensureCa, tlsPaths } from "../server/tls.ts";
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
import { type HostConf, planRegistriesConf, readHostConf, writeRegistriesConf } from "../host/registries_conf_file.ts";
import { RegistryStore } from "../store/storage_tree.ts";
import type { Landings } from "../store/landings.ts";
import { openSources, type Source } from "../archive/source.ts";
import type { LayoutPlan } from "../store/layout_plan.ts";
import { Peer, type PeerTrust } from "../peer/peer.ts";
import { PeerFetcher } from "../peer/peer_fetcher.ts";
import { copyBlobs, copyManifests, listFromPeers, neededBlobs, type PeerList, planPeerImages } from "../peer/replicate.ts";

/** Options of `isoload load` in registry mode. */
export interface LoadOptions {
  /** The source: one or more paths or quoted globs (see openSources); for peers, their URLs as given. */
  sources: string[];
  dataDir: string;
  /** Load into a RAM-backed DIR even past the safe share of memory. */
  allowRamTarget?: boolean;
  /** HOST:PORT clients reach the registry at. */
  mirror: string;
  /** Further mirrors registries.conf lists after `mirror`, in order (failover: host0 after this host's own registry). */
  alsoMirrors?: string[];
  /** registries.conf to write; undefined: write none. */
  registriesConf?: string;
  naming: NamingOptions;
  /** True while the registry serves plain HTTP. */
  insecure: boolean;
  /** With TLS (insecure false): where host0's own trust of DIR's CA goes (`<certsDir>/<mirror>/ca.crt`). */
  certsDir?: string;
  /** Replicate from these peer registries instead of reading `sources`. */
  peers?: PeerLoadOptions;
  /** `load --serve`: the server follows the blobs the pass lands, and the pass reads the blobs clients wait for first. */
  landings?: Landings;
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

/** Replication instead of an archive: `load https://HOST:PORT… --data-dir DIR`. */
export interface PeerLoadOptions {
  /** Peer registries, tried in order (blobs are spread over them). */
  urls: URL[];
  trust: PeerTrust;
  /** Blobs copied at once. */
  jobs: number;
  /** Peers already opened and listed, with the fetcher requests share (serve --peer's background fill). */
  session?: { peers: Peer[]; list: PeerList; fetcher: PeerFetcher };
}

/** What the first half of a load found: the planned images, and what the pass wrote. */
interface Pass {
  plan: LayoutPlan;
  sizes: Map<string, number>;
  written: { blobs: number; bytes: number };
  skipped: { blobs: number; bytes: number };
  /** Blobs read ahead of the pass's order because a client of `load --serve` waited for them. */
  readAhead?: { blobs: number; bytes: number };
  /** The sources as records name them, and their format. */
  sources: string[];
  /** Every file of an archive in several files, in order. */
  parts?: string[];
  format: string;
}

/** The archive, streamed once into the store and named. */
async function passFromArchive(source: Source, store: RegistryStore, opts: LoadOptions, signal: AbortSignal, log: Logger): Promise<Pass> {
  const dataDir = store.root;
  await checkSpaceFor(`load ${source.path} into ${dataDir}`, dataDir, source.size, store.blobsDir);
  log.info(`Loading ${source.path} (${source.container}, ${formatBytes(source.size)}) into ${dataDir}`);
  const progress = byteProgress(log, "load", source.size);
  store.landings = opts.landings;
  // load --serve (and serve --persist's copy): the registry answers on this thread meanwhile.
  store.writesOffThread = opts.landings !== undefined;
  const pass = await ingest(source, store, {
    progress: (pos, what) => progress(pos, what),
    signal,
    doing: `load ${source.path}`,
    outOfOrder: opts.landings,
  });
  log.endProgress();

  const { plan, sizes } = await catalog(pass, store, opts.naming);
  if (plan.missing.length) {
    const first = plan.missing[0];
    const hint = pass.format.incremental
      ? " This looks like a later archive of an incremental oc-mirror series: load the earlier archives into the same --data-dir first."
      : "";
    throw new InputError(
      `Cannot load ${source.path}: ${plan.missing.length} blobs the images need are neither in it nor in ${dataDir} ` +
        `(first: ${first.image} needs ${first.what} ${first.digest}).${hint}`,
    );
  }
  const files = source.parts.flatMap((p) => p.files.map((f) => resolve(f.path)));
  return {
    plan,
    sizes,
    written: pass.written,
    skipped: pass.skipped,
    readAhead: pass.readAhead,
    sources: [files[0]],
    ...(files.length > 1 ? { parts: files } : {}),
    format: pass.format.name,
  };
}

/** Every image of the peers, copied blob by blob into the store. */
async function passFromPeers(peerOpts: PeerLoadOptions, store: RegistryStore, signal: AbortSignal, log: Logger): Promise<Pass> {
  const dataDir = store.root;
  // This thread reads every connection: a write blocking it would stall them all.
  store.writesOffThread = true;
  const session = peerOpts.session;
  const peers = session?.peers ?? await Promise.all(peerOpts.urls.map((u) => Peer.open(u, peerOpts.trust)));
  try {
    const list = session?.list ?? await listFromPeers(peers);
    log.info(`Replicating ${list.images.length} images from ${peers.map((p) => p.name).join(", ")} into ${dataDir}`);
    let done = 0;
    let progress = (_d: number, _w: string) => {};
    const fetcher = session?.fetcher ?? new PeerFetcher(peers, store, { signal, warn: (m) => log.warn(m) });
    fetcher.onBytes = (n) => progress(done += n, "");
    const { manifests, written } = await copyManifests(list.images, store, fetcher, peerOpts.jobs);
    const needed = neededBlobs(list.images, manifests);
    let missingBytes = 0;
    for (const b of needed) if ((await store.blobSize(b.digest)) !== b.size) missingBytes += b.size;
    await checkSpaceFor(`replicate into ${dataDir}`, dataDir, missingBytes, store.blobsDir);
    done = 0;
    progress = byteProgress(log, "replicate", missingBytes);
    const copied = await copyBlobs(needed, store, fetcher, peerOpts.jobs);
    log.endProgress();
    const { large, direct } = store.fetched;
    if (large > 0) {
      log.info(
        direct > 0
          ? `Wrote ${direct} of ${large} blobs over 1 MiB around the page cache (O_DIRECT)`
          : `Wrote every blob through the page cache: libc cannot be loaded here, or ${dataDir}'s filesystem refuses O_DIRECT`,
      );
    }
    const sizes = new Map<string, number>();
    for (const b of needed) sizes.set(b.digest, b.size);
    for (const d of manifests.keys()) sizes.set(d, (await store.blobSize(d)) ?? 0);
    const plan = planPeerImages(list.images, manifests, sizes);
    if (plan.missing.length) {
      const first = plan.missing[0];
      throw new InputError(`Cannot replicate: ${first.image} needs ${first.what} ${first.digest}, which no peer gave`);
    }
    const total = { blobs: copied.written.blobs + written.blobs, bytes: copied.written.bytes + written.bytes };
    return { plan, sizes, written: total, skipped: copied.skipped, sources: peers.map((p) => p.name), format: "isoload-peer" };
  } finally {
    if (!session) peers.forEach((p) => p.close());
  }
}

/** Runs a load: from an archive, or from peers when `opts.peers` is given. */
export async function load(opts: LoadOptions, log: Logger): Promise<LoadResult> {
  const dataDir = resolve(opts.dataDir);
  const store = new RegistryStore(dataDir);
  // The host's registries configuration is checked first: a malformed file fails the run before any work.
  const host = opts.registriesConf ? await readHostConf(opts.registriesConf) : undefined;
  const source = opts.peers ? undefined : await openSources(opts.sources);
  const from = source?.path ?? opts.peers!.urls.map((u) => u.origin).join(" ");
  // Memory is checked before DIR is touched at all (the lock lives in DIR).
  if (source) {
    await checkRamTarget(`load ${from} into ${dataDir}`, dataDir, source.size, store.blobsDir, opts.allowRamTarget === true)
      .catch((e) => {
        source.close();
        throw e;
      });
  }
  const lock = await lockDataDir(store.paths, `load ${from} into ${dataDir}`);
  const interrupts = watchInterrupts();
  try {
    await store.clearTemp();
    return await loadLocked(store, source, host, opts, interrupts.signal, log);
  } finally {
    interrupts.dispose();
    lock.release();
    source?.close();
  }
}

/**
 * The load proper, with DIR's lock held and its temp files cleared by the
 * caller (`load`, or `serve --peer`, which holds DIR while it serves).
 */
export async function loadLocked(
  store: RegistryStore,
  source: Source | undefined,
  host: HostConf | undefined,
  opts: LoadOptions,
  signal: AbortSignal,
  log: Logger,
): Promise<LoadResult> {
  const started = performance.now();
  const dataDir = store.root;
  const from = source?.path ?? opts.peers!.urls.map((u) => u.origin).join(" ");
  const previous = await readRecords(dataDir);
  let marked = false;
  const markIncomplete = async () => {
    if (marked) return;
    marked = true;
    const r: Records = previous ?? { version: 1, complete: false, images: [], blobs: 0, bytes: 0, loads: [] };
    await writeRecords(dataDir, { ...r, complete: false });
  };
  store.beforeWrite = markIncomplete;

  const pass = source ? await passFromArchive(source, store, opts, signal, log) : await passFromPeers(opts.peers!, store, signal, log);
  const { plan, sizes } = pass;
  for (const a of plan.absentChildren) {
    log.info(`note: ${a.image} lists ${a.platform} manifest ${a.digest}, which the archive does not carry; it is left out`);
  }
  const linksWritten = await store.writeLinks(plan.links);

  // Makes the blobs' renames (a pass lands them in batches) and the links durable before the records say complete.
  if (linksWritten > 0 || pass.written.blobs > 0) await syncFilesystem(store.v2);
  const images = mergeImages(previous?.images ?? [], plan.images);
  const blobDigests = new Set(plan.links.map(([, d]) => d));
  for (const img of previous?.images ?? []) blobDigests.add(img.digest);
  const loads = [...(previous?.loads ?? [])];
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
    for (const s of pass.sources) {
      const known = loads.some((l) => l.source === s && String(l.parts) === String(pass.parts));
      if (!known) loads.push({ source: s, ...(pass.parts ? { parts: pass.parts } : {}), format: pass.format });
    }
    let bytes = 0;
    for (const d of blobDigests) bytes += sizes.get(d) ?? (await store.blobSize(d)) ?? 0;
    await writeRecords(dataDir, { version: 1, complete: true, images, blobs: blobDigests.size, bytes, loads, files });
  }

  if (!opts.insecure) {
    // TLS: the CA is made now if serve has not made it yet, so host0 trusts its own registry from the start.
    const ca = await ensureCa(tlsPaths(dataDir));
    for (const m of host && opts.certsDir ? [opts.mirror, ...(opts.alsoMirrors ?? [])] : []) {
      if (await installCa(opts.certsDir!, m, ca.pem)) log.info(`Installed the registry CA at ${caPathFor(opts.certsDir!, m)}`);
    }
  }
  if (host) {
    const confPlan = planRegistriesConf(
      host,
      mirrorTargets(images, [opts.mirror, ...(opts.alsoMirrors ?? [])]),
      opts.insecure,
      `Mirrors of the images isoload loaded into ${dataDir}, served at ${[opts.mirror, ...(opts.alsoMirrors ?? [])].join(", then ")}.`,
    );
    confPlan.warnings.forEach((w) => log.warn(w));
    const res = await writeRegistriesConf(host, confPlan);
    if (res.changed) {
      log.info(`Wrote ${host.target}${res.backup ? ` (previous content kept in ${res.backup})` : ""}`);
    }
  }

  const took = formatDuration(performance.now() - started);
  if (nothingToDo) {
    log.info(`Nothing to do: ${dataDir} already holds all ${images.length} images of ${from} (checked in ${took})`);
  } else {
    log.info(
      `Loaded ${plan.images.length} images from ${from} in ${took}: wrote ${pass.written.blobs} blobs ` +
        `(${formatBytes(pass.written.bytes)}), kept ${pass.skipped.blobs} already present, wrote ${linksWritten} links` +
        (pass.readAhead?.blobs
          ? ` (${pass.readAhead.blobs} blobs, ${formatBytes(pass.readAhead.bytes)}, read ahead of the archive's order for waiting clients)`
          : ""),
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
}
