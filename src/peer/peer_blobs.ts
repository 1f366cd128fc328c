/**
 * Blobs for `serve --data-dir DIR --peer URL`: DIR's verified copy when it is
 * there, otherwise a copy from the peers started on first request (one per
 * digest however many ask) that the response follows as it lands in DIR.
 */
import { type BlobFinder, treeBlobs } from "../server/content.ts";
import type { RegistryStore } from "../store/storage_tree.ts";
import type { PeerFetcher } from "./peer_fetcher.ts";
import type { NeededBlob } from "./replicate.ts";

/** DIR's tree first, then the peers for the blobs the images need. */
export function peerBackedBlobs(store: RegistryStore, fetcher: PeerFetcher, needed: ReadonlyMap<string, NeededBlob>): BlobFinder {
  const tree = treeBlobs(store);
  return {
    async locate(digest) {
      const here = await tree.locate(digest);
      if (here) return here;
      const need = needed.get(digest);
      if (!need) return undefined;
      const flight = fetcher.blob(need, need.size);
      // A client waits for this one: its batch lands as soon as it is verified, not when full.
      flight.verified.then(() => store.landSoon(), () => {});
      return { file: store.blobPath(digest), offset: 0, size: need.size, verified: false, growing: flight };
    },
  };
}
