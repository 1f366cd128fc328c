/**
 * `isoload serve --data-dir DIR --peer URL…`: serve at once, whatever DIR
 * holds. A complete DIR is served as it is; otherwise the image list comes
 * from the first peer that answers, every manifest is copied into DIR first (they
 * are small), and a blob DIR lacks is copied from a peer on its first request,
 * the response following the copy as it lands. With fill (the default) the
 * rest is copied in the background, as `load https://PEER` would, and DIR's
 * records say complete at the end. DIR is held (its lock) until it is
 * complete: this process is its only writer, and then nothing writes.
 */
import { resolve } from "node:path";
import { readRecords, type Records, writeRecords } from "../store/records.ts";
import { RegistryStore } from "../store/storage_tree.ts";
import { lockDataDir } from "../store/lock.ts";
import { servedContent } from "../server/content.ts";
import { EnvironmentError } from "../util/errors.ts";
import { watchInterrupts } from "../util/interrupt.ts";
import { formatDuration, type Logger } from "../util/log.ts";
import { Peer, type PeerTrust } from "../peer/peer.ts";
import { peerBackedBlobs } from "../peer/peer_blobs.ts";
import { PeerFetcher } from "../peer/peer_fetcher.ts";
import { copyManifests, listFromPeers, neededBlobs, type PeerList, planPeerImages } from "../peer/replicate.ts";
import { loadLocked } from "./load_registry.ts";
import { type BuiltinContent, contentFromRecords } from "./serve_builtin.ts";
import { imageBlobs } from "../image/image_blobs.ts";

/** Options of serving with peers. */
export interface ServePeersOptions {
  urls: URL[];
  trust: PeerTrust;
  /** Blobs the background fill copies at once. */
  jobs: number;
  /** Copy everything in the background (true), or only what is asked for. */
  fill: boolean;
  /** How long to keep asking the peers for their image list when DIR cannot be served alone. */
  listTimeoutMs: number;
  /** The address served, recorded as the mirror in DIR's records. */
  listen: string;
}

/** What `serve --peer` runs: the content, the background fill, and what to release once serving stops. */
export interface PeerServing {
  built: BuiltinContent;
  during?: () => Promise<unknown>;
  close(): void;
}

/** Asks the peers for their list until one answers or `timeoutMs` passes (then EnvironmentError). */
async function listWithin(peers: Peer[], timeoutMs: number, log: Logger): Promise<PeerList> {
  const end = Date.now() + timeoutMs;
  for (let round = 0;; round++) {
    try {
      return await listFromPeers(peers);
    } catch (e) {
      if (!(e instanceof EnvironmentError) || Date.now() > end) throw e;
      if (round % 10 === 0) log.info(`Waiting for a peer to answer: ${e.message}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** Prepares serving DIR with peers behind it. Holds DIR until `close()`. */
export async function servingWithPeers(dir: string, opts: ServePeersOptions, log: Logger): Promise<PeerServing> {
  const dataDir = resolve(dir);
  const store = new RegistryStore(dataDir);
  // The copies from peers run beside the registry's answers on this thread.
  store.writesOffThread = true;
  const lock = await lockDataDir(store.paths, `serve ${dataDir} with peers`);
  const interrupts = watchInterrupts();
  const peers: Peer[] = [];
  const close = () => {
    peers.forEach((p) => p.close());
    interrupts.dispose();
    lock.release();
  };
  try {
    const started = performance.now();
    await store.clearTemp();
    for (const u of opts.urls) peers.push(await Peer.open(u, opts.trust));
    const previous = await readRecords(dataDir);
    if (previous?.complete) {
      // Nothing to copy: serve DIR from its first second, whether or not the peers are up (a node rebooting while they are not).
      // Nothing will be written either: DIR is let go, as a plain serve of it does (verify may run meanwhile).
      log.info(`${dataDir} is complete: serving it; the peers are not needed`);
      const built = await contentFromRecords(dataDir, previous);
      lock.release();
      return { built, close };
    }
    const list = await listWithin(peers, opts.listTimeoutMs, log);

    // Anything written makes the records say "unfinished" until the fill completes them.
    store.beforeWrite = async () => {
      const r: Records = previous ?? { version: 1, complete: false, images: [], blobs: 0, bytes: 0, loads: [] };
      await writeRecords(dataDir, { ...r, complete: false });
    };
    const fetcher = new PeerFetcher(peers, store, { signal: interrupts.signal, warn: (m) => log.warn(m) });
    const { manifests } = await copyManifests(list.images, store, fetcher, opts.jobs);
    const needed = new Map(neededBlobs(list.images, manifests).map((b) => [b.digest, b]));
    const sizes = new Map([...needed].map(([d, b]) => [d, b.size]));
    for (const d of manifests.keys()) sizes.set(d, (await store.blobSize(d)) ?? 0);
    const plan = planPeerImages(list.images, manifests, sizes);
    let local = 0;
    for (const b of needed.values()) if ((await store.blobSize(b.digest)) === b.size) local++;
    log.info(
      `Serving ${plan.images.length} images of ${list.from.name} from ${dataDir} (${local} of ${needed.size} blobs here, ` +
        `the rest copied from ${peers.map((p) => p.name).join(", ")} as asked${opts.fill ? " and in the background" : ""}) ` +
        `after ${formatDuration(performance.now() - started)}`,
    );
    const built: BuiltinContent = {
      content: { ...await servedContent(plan.links, manifests, peerBackedBlobs(store, fetcher, needed)), images: plan.images },
      images: plan.images,
      from: `${dataDir} and peers`,
      origin: { dataDir, peers: peers.map((p) => p.name), filling: opts.fill },
      wants: await imageBlobs(plan.images, manifests, (d) => sizes.get(d)),
    };
    const fill = () =>
      loadLocked(
        store,
        undefined,
        undefined,
        {
          sources: [],
          dataDir,
          mirror: opts.listen,
          naming: {},
          insecure: true,
          peers: { urls: opts.urls, trust: opts.trust, jobs: opts.jobs, session: { peers, list, fetcher } },
        },
        interrupts.signal,
        log,
      );
    // Once serving, a peer that is this very process (api-int resolving here) answers with its instance id: skipped
    // before the fill asks it. (Without the fill, the first copy that asks it finds out.)
    // Once the fill has made DIR complete, every blob is served from the tree and nothing more is written: DIR is let go.
    const during = opts.fill ? () => fetcher.findSelf().then(fill).then(() => lock.release()) : undefined;
    return { built, during, close };
  } catch (e) {
    close();
    throw e;
  }
}
