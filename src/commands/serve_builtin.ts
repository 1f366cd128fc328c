/**
 * `isoload serve` with isoload's own registry: from DIR's tree, straight
 * from an archive in place (`--source`), or from the archive while `load`
 * copies it into DIR (`load --serve`), switching each blob to its verified
 * local copy once it has landed. Readiness, READY=1, TLS and SIGTERM as with
 * an external registry.
 */
import { resolve } from "node:path";
import { ArchiveIndex } from "../archive/archive_index.ts";
import { catalog, readManifests } from "../image/catalog.ts";
import { describeError, EnvironmentError, ExitCode, InputError, IsoloadError, TimeoutError } from "../util/errors.ts";
import type { NamingOptions } from "../archive/format.ts";
import type { LoadedImage } from "../image/loaded_image.ts";
import { ingest } from "../archive/ingest.ts";
import { watchInterrupts } from "../util/interrupt.ts";
import { planLayout } from "../store/layout_plan.ts";
import { formatDuration, type Logger } from "../util/log.ts";
import { describeProbe, expectedManifests, probeAddress, waitUntilServed } from "../server/readiness.ts";
import { type Records, requireServableRecords } from "../store/records.ts";
import { listenAddress, startRegistryServer } from "../server/server.ts";
import { RegistryStore } from "../store/storage_tree.ts";
import { archiveBlobs, firstOf, type ServedContent, servedContent, treeBlobs } from "../server/content.ts";
import { landingBlobs } from "../server/landing_blobs.ts";
import type { Landings } from "../store/landings.ts";
import { sdNotify } from "../server/sd_notify.ts";
import { runningIsoloadBinary } from "../util/own_binary.ts";
import { openSources } from "../archive/source.ts";
import { ensureServerCert, readTlsDir, type TlsPaths, tlsPaths } from "../server/tls.ts";
import { type Published, publishServing } from "../server/serving_state.ts";
import { dataDirPaths } from "../store/paths.ts";
import type { CopyProgress, ServingOrigin } from "../server/serving_state.ts";
import { type ImageBlobs, imageBlobs } from "../image/image_blobs.ts";

/** What the built-in server is to serve, and what it was built from (for the ready line). */
export interface BuiltinContent {
  content: ServedContent;
  images: LoadedImage[];
  from: string;
  /** Where the images come from, each kind apart (DIR/isoload/serving.json, for status). */
  origin?: ServingOrigin;
  /** Every image's blobs, for status's count of what DIR holds. */
  wants?: ImageBlobs;
}

/** DIR's tree, as its records and manifests describe it. */
export async function contentFromDataDir(dataDir: string): Promise<BuiltinContent> {
  return contentFromRecords(dataDir, await requireServableRecords(dataDir));
}

/** DIR's tree, as the given records describe it. */
export async function contentFromRecords(dataDir: string, records: Records): Promise<BuiltinContent> {
  const store = new RegistryStore(dataDir);
  const manifests = await readManifests(store, records.images.map((i) => i.digest));
  const plan = planLayout(records.images, manifests, () => true, () => 0);
  return {
    content: { ...await servedContent(plan.links, manifests, treeBlobs(store)), images: records.images },
    images: records.images,
    from: dataDir,
    origin: { dataDir },
    wants: await imageBlobs(records.images, manifests, (d) => store.blobSize(d)),
  };
}

/**
 * An archive or directory in place: one pass over its entries (seeking past
 * layers), then blobs served as byte ranges of it. With `during.dataDir`,
 * blobs that have landed in DIR's tree are served from there; with
 * `during.landings` too (a load copies the archive into DIR meanwhile: `load
 * --serve`, `serve --source --persist`), those the load has yet to land are
 * served from the bytes it reads, so the archive is read once (landing_blobs.ts).
 */
export async function contentInPlace(
  sources: string[],
  naming: NamingOptions,
  log: Logger,
  during?: { dataDir: string; landings?: Landings },
): Promise<BuiltinContent> {
  const started = performance.now();
  const src = await openSources(sources);
  const source = src.path;
  const index = new ArchiveIndex();
  try {
    const pass = await ingest(src, index, { doing: `index ${source}` });
    const { plan, manifests } = await catalog(pass, index, naming);
    if (plan.missing.length) {
      const m = plan.missing[0];
      throw new InputError(
        `Cannot serve ${source} in place: ${plan.missing.length} blobs the images need are not in it (first: ${m.image} needs ${m.what} ${m.digest})`,
      );
    }
    log.info(
      `Indexed ${source} in place in ${
        formatDuration(performance.now() - started)
      }: ${plan.images.length} images, ${index.where.size} blobs`,
    );
    const verified = index.verified();
    const inPlace = archiveBlobs(index.where, verified);
    let blobs = inPlace;
    if (during) {
      const store = new RegistryStore(during.dataDir);
      during.landings?.locate(index.where);
      blobs = during.landings ? landingBlobs(store, treeBlobs(store), inPlace, during.landings) : firstOf(treeBlobs(store), inPlace);
    }
    return {
      content: {
        ...await servedContent(plan.links, manifests, blobs, verified),
        images: plan.images,
      },
      images: plan.images,
      from: `${source} (in place)`,
      // With DIR, a load copies the archive into it meanwhile (load --serve, serve --source --peer).
      origin: { inPlace: [source], ...(during ? { dataDir: during.dataDir, filling: true } : {}) },
      wants: await imageBlobs(plan.images, manifests, (d) => index.where.get(d)?.size),
    };
  } finally {
    src.close();
  }
}

/** Options of a built-in run. */
export interface BuiltinRunOptions {
  listen: string;
  tls?: TlsPaths;
  readyTimeoutMs: number;
  accessLog: boolean;
  /** The isoload binary served by digest to nodes that lack it (default: this one, when compiled). */
  binaryFile?: string;
  /** Work to do while serving (the background load of `load --serve`); its failure is reported, serving goes on. */
  during?: () => Promise<unknown>;
  /** What serving goes on from when `during` fails (default: the archive in place). */
  duringFallback?: string;
  /** Whether to stop serving, with `during`'s error, when it fails with `e` (its source went away: let a restart pick another). */
  stopIfDuringFails?: (e: unknown) => boolean;
  /** The data directory whose state file says what is served, while it is (none for `--source` alone). */
  dataDir?: string;
}

/** TLS material for DIR (or from a TLS directory), when asked for. */
export async function builtinTls(
  dataDir: string | undefined,
  tls: { hostnames: string[]; ips: string[] } | { dir: string } | undefined,
): Promise<TlsPaths | undefined> {
  if (!tls) return undefined;
  if ("dir" in tls) return await readTlsDir(resolve(tls.dir));
  if (!dataDir) throw new InputError("Cannot serve with --tls: its CA and certificate live in a --data-dir; give one");
  return await ensureServerCert(tlsPaths(resolve(dataDir)), tls.hostnames, tls.ips);
}

/**
 * Why listening failed: the host's state (the port taken, an address this host
 * does not have, a privileged port) is a host failure (5); anything else, such
 * as an address that cannot be one, is bad input (3).
 */
export function listenError(listen: string, e: unknown): IsoloadError {
  if (e instanceof Deno.errors.AddrInUse) {
    return new EnvironmentError(`Cannot listen on ${listen}: the address is already in use (another process listens there)`, { cause: e });
  }
  if (e instanceof Deno.errors.AddrNotAvailable || e instanceof Deno.errors.PermissionDenied) {
    return new EnvironmentError(`Cannot listen on ${listen}: ${(e as Error).message}`, { cause: e });
  }
  return new InputError(`Cannot listen on ${listen}: ${(e as Error).message}`, { cause: e });
}

/**
 * Fails at once, before any indexing, when the address cannot be listened on
 * (a port already in use, say): indexing a large archive in place first would
 * only delay the same error. Listening for real may still fail later (a race).
 */
export function checkListenable(listen: string): void {
  try {
    Deno.listen(listenAddress(listen)).close();
  } catch (e) {
    throw listenError(listen, e);
  }
}

/** Serves until SIGTERM or SIGINT; resolves to the exit code. */
export async function runBuiltin(built: BuiltinContent, opts: BuiltinRunOptions, log: Logger): Promise<number> {
  const tls = opts.tls ? { cert: await Deno.readTextFile(opts.tls.cert), key: await Deno.readTextFile(opts.tls.key) } : undefined;
  const interrupts = watchInterrupts();
  let stopForFailure: (why: string) => void = () => {};
  const stopped = new Promise<string>((r) => {
    stopForFailure = r;
    interrupts.signal.addEventListener("abort", () => r(String(interrupts.signal.reason)), { once: true });
  });
  let server;
  try {
    server = startRegistryServer(built.content, opts.listen, {
      tls,
      accessLog: opts.accessLog ? (l) => log.info(l) : undefined,
      warn: (m) => log.warn(m),
      binaryFile: opts.binaryFile ?? runningIsoloadBinary(),
    });
  } catch (e) {
    interrupts.dispose();
    throw listenError(opts.listen, e);
  }
  let stopping = false;
  stopped.then(() => (stopping = true));
  let client: Deno.HttpClient | undefined;
  let published: Published | undefined;
  try {
    const ca = opts.tls ? await Deno.readTextFile(opts.tls.caCert) : undefined;
    client = ca ? Deno.createHttpClient({ caCerts: [ca] }) : undefined;
    const base = `${tls ? "https" : "http"}://${probeAddress(opts.listen)}`;
    if (opts.dataDir) {
      published = await publishServing(dataDirPaths(resolve(opts.dataDir)), {
        server: "builtin",
        listen: opts.listen,
        url: `${base}/v2/`,
        tls: !!tls,
        from: built.from,
        ...(built.origin ? { origin: built.origin } : {}),
        ...(built.wants ? { wants: built.wants } : {}),
        // Copying from the start (it begins once the registry answers): a serve that dies before then reads as interrupted.
        ...(opts.during ? { copy: { state: "copying", at: new Date().toISOString() } } : {}),
      });
    }
    const manifests = expectedManifests(built.images);
    const outcome = await waitUntilServed(base, manifests, {
      timeoutMs: opts.readyTimeoutMs,
      client,
      stopped: () => stopping,
      report: (last) => log.info(`Waiting for the built-in registry at ${base}: ${describeProbe(base, last, manifests.length)}`),
    });
    if (!outcome.ready && !stopping) {
      throw new TimeoutError(
        `Cannot serve: not ready after ${formatDuration(outcome.waitedMs)} (${describeProbe(base, outcome.last, manifests.length)})`,
      );
    }
    if (!stopping) {
      log.info(
        `Registry ready at ${base} (built-in, listening on ${opts.listen}): ${built.images.length} images, ${manifests.length} manifests served from ${built.from}`,
      );
      await sdNotify(`READY=1\nSTATUS=Serving ${built.images.length} images on ${opts.listen}`);
    }
    let code: number = ExitCode.ok;
    // status reads the copy's outcome from the state file: a serve whose copy stopped must not read as still copying.
    const record = async (copy: Omit<CopyProgress, "at">) => {
      await published?.update({ copy: { ...copy, at: new Date().toISOString() } }).catch((e) =>
        log.warn(`cannot record the background load's outcome for isoload status (${describeError(e)})`)
      );
    };
    const background = opts.during?.().then(
      async () => {
        log.info("The background load finished: every blob is now served from its verified copy in the data directory");
        await record({ state: "complete" });
      },
      async (e) => {
        code = e instanceof IsoloadError ? e.exitCode : ExitCode.internal;
        const error = describeError(e);
        if (opts.stopIfDuringFails?.(e)) {
          log.warn(`the background load stopped (${error}): stopping, so that a restart serves from what is left`);
          await record({ state: "stopped", error });
          stopForFailure("the background load's failure");
          return;
        }
        const fallback = opts.duringFallback ?? "from the archive in place";
        log.warn(`the background load stopped (${error}); still serving ${fallback}`);
        await record({ state: "stopped", error, stillServing: fallback });
      },
    );
    const sig = await stopped;
    log.info(`Received ${sig}: stopping the built-in registry (in-flight downloads may finish for 10 s)`);
    await background?.catch(() => {});
    await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 10_000))]);
    return code;
  } finally {
    interrupts.dispose();
    client?.close();
    await published?.withdraw();
    // Whatever is still open after the grace period is cut.
    await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 100))]).catch(() => {});
  }
}
