/** The record of one loaded image, as kept in DIR and shown to users. */

/** An image isoload has loaded (or is about to). */
export interface LoadedImage {
  /** Source repository, e.g. `quay.io/ns/repo`: where clients think it lives. */
  source: string;
  /** Repository name inside isoload's registry tree. */
  repository: string;
  /** Digest of the manifest or index. */
  digest: string;
  mediaType: string;
  /** Tags the archive gave this digest, sorted. */
  tags: string[];
  /** For an index: the platforms of the children present. */
  platforms?: string[];
  /** For an index: digests of the children present. */
  children?: string[];
  /** Bytes of the manifest, its config and layers (children included). */
  size?: number;
}

/** `source@digest`, the reference a kubelet would pull. */
export function pullReference(img: LoadedImage): string {
  return `${img.source}@${img.digest}`;
}

/** Sorts images by source then digest, so records and outputs are stable. */
export function sortImages(images: LoadedImage[]): LoadedImage[] {
  return [...images].sort((a, b) =>
    a.source < b.source ? -1 : a.source > b.source ? 1 : a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0
  );
}

/** Merges image lists by (repository, digest), uniting their tags. */
export function mergeImages(...lists: LoadedImage[][]): LoadedImage[] {
  const byKey = new Map<string, LoadedImage>();
  for (const list of lists) {
    for (const img of list) {
      const key = `${img.repository}@${img.digest}`;
      const prev = byKey.get(key);
      if (!prev) byKey.set(key, { ...img, tags: [...img.tags].sort() });
      else byKey.set(key, { ...prev, ...img, tags: [...new Set([...prev.tags, ...img.tags])].sort() });
    }
  }
  return sortImages([...byKey.values()]);
}
