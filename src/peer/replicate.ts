/**
 * Replication from peer isoload registries into a storage tree: the image
 * list (with source names) from the first peer that answers, every manifest
 * by digest, then every config and layer blob several at once, each through
 * the tree's writer. Blobs already in place are not fetched again, so a
 * re-run after a kill finishes the copy and a re-run of a complete tree
 * fetches nothing but the list.
 */
import type { ImageCandidate } from "../archive/format.ts";
import { readManifests } from "../image/catalog.ts";
import { isForeignLayer, type ParsedManifest } from "../image/manifest.ts";
import { type LayoutPlan, planLayout } from "../store/layout_plan.ts";
import type { RegistryStore } from "../store/storage_tree.ts";
import { EnvironmentError } from "../util/errors.ts";
import { runPool } from "../util/pool.ts";
import { type Peer, PeerError } from "./peer.ts";
import type { PeerFetcher } from "./peer_fetcher.ts";

/** Blobs copied from peers at once: enough to hide each request's latency, few enough for a small host. */
export const DEFAULT_PEER_JOBS = 4;

/** Manifests copied at once for each blob copied at once (`--jobs`). */
const MANIFEST_JOBS_PER_JOB = 4;

/** A peer's image list, and which peer gave it. */
export interface PeerList {
  images: (ImageCandidate & { children?: string[] })[];
  from: Peer;
}

/** The image list of the first peer that gives one; EnvironmentError naming each peer's failure when none does. */
export async function listFromPeers(peers: Peer[]): Promise<PeerList> {
  const failures: string[] = [];
  for (const peer of peers) {
    try {
      return { images: await peer.images(), from: peer };
    } catch (e) {
      if (!(e instanceof PeerError)) throw e;
      failures.push(e.message);
    }
  }
  throw new EnvironmentError(`Cannot get the image list from any peer: ${failures.join("; ")}`);
}

/** A blob an image needs, with the first image (for messages) and repository (for the GET) that need it. */
export interface NeededBlob {
  digest: string;
  size: number;
  repository: string;
  label: string;
}

function imageName(img: ImageCandidate): string {
  return img.tags.length ? `${img.source}:${img.tags[0]}` : `${img.source}@${img.digest}`;
}

/**
 * Copies every manifest the list names (indexes, then the children the peer
 * has) into the store, and returns them parsed. Each level is one pass of the
 * store: the manifests land together (one syncfs), not one fsync each.
 */
export async function copyManifests(
  list: PeerList["images"],
  store: RegistryStore,
  fetcher: PeerFetcher,
  jobs: number,
): Promise<{ manifests: Map<string, ParsedManifest>; written: { blobs: number; bytes: number } }> {
  const manifests = new Map<string, ParsedManifest>();
  const written = { blobs: 0, bytes: 0 };
  let level = list.map((img) => ({ digest: img.digest, repository: img.repository, label: `manifest of ${imageName(img)}` }));
  const children = new Map(list.map((img) => [img.digest, img.children]));
  while (level.length) {
    const missing: typeof level = [];
    for (const m of level) if ((await store.blobSize(m.digest)) === undefined) missing.push(m);
    // No pass when nothing is missing: `serve --peer` may be copying blobs for its clients meanwhile.
    if (missing.length) {
      store.start();
      let completed = false;
      try {
        // Manifests are small: their copies are round trips, so more of them at once than blobs.
        const results = await runPool(missing, jobs * MANIFEST_JOBS_PER_JOB, (m) => fetcher.manifest(m).verified);
        const failed = results.find((r) => !r.ok);
        if (failed && !failed.ok) throw failed.error;
        completed = true;
      } finally {
        await store.finish(completed);
      }
      for (const m of missing) {
        written.blobs++;
        written.bytes += (await store.blobSize(m.digest)) ?? 0;
      }
    }
    await readManifests(store, level.map((m) => m.digest), manifests);
    const next: typeof level = [];
    for (const m of level) {
      const parsed = manifests.get(m.digest);
      if (parsed?.kind !== "index") continue;
      // Only children the peer has: an index may list platforms the archive never carried.
      const present = children.get(m.digest);
      for (const c of parsed.children) {
        if (present && !present.includes(c.digest)) continue;
        if (manifests.has(c.digest)) continue;
        next.push({
          digest: c.digest,
          repository: m.repository,
          label: `${c.platform?.architecture ?? "child"} manifest of ${m.label.slice(12)}`,
        });
      }
    }
    level = next;
  }
  return { manifests, written };
}

/** Every config and layer blob the manifests name, once each. */
export function neededBlobs(list: PeerList["images"], manifests: ReadonlyMap<string, ParsedManifest>): NeededBlob[] {
  const out = new Map<string, NeededBlob>();
  const visit = (img: ImageCandidate, digest: string) => {
    const m = manifests.get(digest);
    if (!m) return;
    if (m.kind === "index") {
      for (const c of m.children) visit(img, c.digest);
      return;
    }
    for (const [what, d] of [["config", m.config] as const, ...m.layers.map((l) => ["layer", l] as const)]) {
      if (out.has(d.digest) || (what === "layer" && isForeignLayer(d))) continue;
      out.set(d.digest, { digest: d.digest, size: d.size, repository: img.repository, label: `${what} of ${imageName(img)}` });
    }
  };
  for (const img of list) visit(img, img.digest);
  return [...out.values()];
}

/**
 * The layout plan of a peer's image list, given each blob's size (absent: not
 * there). The same fields as an archive's candidates, so the records are the
 * same bytes as a load of the archive gives.
 */
export function planPeerImages(
  list: PeerList["images"],
  manifests: ReadonlyMap<string, ParsedManifest>,
  sizes: ReadonlyMap<string, number>,
): LayoutPlan {
  const candidates = list.map(({ source, repository, digest, tags, mediaType }) => ({ source, repository, digest, tags, mediaType }));
  return planLayout(candidates, manifests, (d) => sizes.has(d), (d) => sizes.get(d) ?? 0);
}

/** What a replication copied. */
export interface ReplicationResult {
  written: { blobs: number; bytes: number };
  skipped: { blobs: number; bytes: number };
}

/**
 * Copies the blobs not yet in place, `jobs` at once, as one pass of the
 * store: each is written as it arrives, hashed by the store's worker and,
 * once verified, waits in tmp/ for its batch to be made durable (one syncfs)
 * and renamed into place, while the next copies run (one fsync per blob cost
 * more than the copy). A blob no peer gives stops the rest; the blobs verified
 * so far still land (a re-run does not fetch them again).
 */
export async function copyBlobs(
  needed: NeededBlob[],
  store: RegistryStore,
  fetcher: PeerFetcher,
  jobs: number,
): Promise<ReplicationResult> {
  const written = { blobs: 0, bytes: 0 };
  const skipped = { blobs: 0, bytes: 0 };
  const todo: NeededBlob[] = [];
  for (const b of needed) {
    if ((await store.blobSize(b.digest)) === b.size) {
      skipped.blobs++;
      skipped.bytes += b.size;
    } else todo.push(b);
  }
  // Largest first, each followed by one of the smallest: the long copies start early, and the ~700 small blobs of a
  // release (round trips, file creations, not bytes) overlap them instead of making a slow tail of their own.
  todo.sort((a, b) => b.size - a.size);
  const order: NeededBlob[] = [];
  for (let lo = 0, hi = todo.length - 1; lo <= hi; lo++, hi--) {
    order.push(todo[lo]);
    if (hi > lo) order.push(todo[hi]);
  }
  // A blob no peer could give stops the rest (they would fail the same way, each after its retries).
  let stop: unknown;
  const landing: Promise<void>[] = [];
  store.start(true);
  let completed = false;
  try {
    await runPool(order, jobs, async (b) => {
      if (stop) throw stop;
      const flight = fetcher.blob(b, b.size);
      landing.push(flight.done);
      await flight.verified.catch((e) => {
        stop ??= e;
        throw e;
      });
      written.blobs++;
      written.bytes += b.size;
    });
    if (stop) throw stop;
    completed = true;
  } finally {
    await store.finish(completed);
  }
  await Promise.all(landing);
  return { written, skipped };
}
