/**
 * Blobs for `load --serve`: DIR's verified copy once the load has landed it;
 * until then the load's own bytes — the response follows the blob's temp file
 * as the load writes it, and a blob the load has not reached yet is read next,
 * out of order — so the medium is read once. Small JSON blobs the in-place
 * index already read and checked are served from the archive in place, and
 * so is everything once no load runs any more (it stopped: serving goes on).
 */
import type { BlobFinder } from "./content.ts";
import type { Landings } from "../store/landings.ts";
import type { RegistryStore } from "../store/storage_tree.ts";

/** DIR's tree first, then the load's landings, then the archive in place. */
export function landingBlobs(store: RegistryStore, tree: BlobFinder, inPlace: BlobFinder, landings: Landings): BlobFinder {
  return {
    async locate(digest) {
      const here = await tree.locate(digest);
      if (here) return here;
      const there = await inPlace.locate(digest);
      if (!there || there.verified) return there;
      const growing = landings.follow(digest);
      // Landed since the look above: DIR has it now.
      if (growing === "landed") return await tree.locate(digest) ?? there;
      if (!growing) return there;
      return { file: store.blobPath(digest), offset: 0, size: there.size, verified: false, growing, meanwhile: there };
    },
  };
}
