/**
 * Which blobs each served image needs (its manifest or index, the children
 * present, their configs and layers) and each blob's size: what a serve
 * publishes so `status` can count, by looking at DIR's tree only, how much of
 * what is served is already local. Pure but for the size look-up.
 */
import type { LoadedImage } from "./loaded_image.ts";
import { isForeignLayer, type ParsedManifest } from "./manifest.ts";

/** Every image (by the name a user pulls) with its blobs, and every blob's size. */
export interface ImageBlobs {
  images: { name: string; blobs: string[] }[];
  sizes: Record<string, number>;
}

/** `source:tag`, else `source@digest`. */
export function imageLabel(img: LoadedImage): string {
  return img.tags.length ? `${img.source}:${img.tags[0]}` : `${img.source}@${img.digest}`;
}

/**
 * The blobs of each image. A manifest's size comes from the index that names it, else from `sizeOf` (the top-level
 * manifests); a blob whose size is unknown counts as 0 bytes.
 */
export async function imageBlobs(
  images: LoadedImage[],
  manifests: ReadonlyMap<string, ParsedManifest>,
  sizeOf: (digest: string) => Promise<number | undefined> | number | undefined,
): Promise<ImageBlobs> {
  const sizes: Record<string, number> = {};
  const out: ImageBlobs["images"] = [];
  for (const img of images) {
    const blobs = new Set<string>();
    const visit = (digest: string, size: number | undefined) => {
      if (blobs.has(digest)) return;
      blobs.add(digest);
      if (size !== undefined) sizes[digest] = size;
      const m = manifests.get(digest);
      if (!m) return;
      if (m.kind === "index") {
        for (const c of m.children) if (manifests.has(c.digest)) visit(c.digest, c.size);
        return;
      }
      for (const d of [m.config, ...m.layers.filter((l) => !isForeignLayer(l))]) {
        blobs.add(d.digest);
        sizes[d.digest] = d.size;
      }
    };
    visit(img.digest, undefined);
    sizes[img.digest] ??= (await sizeOf(img.digest)) ?? 0;
    out.push({ name: imageLabel(img), blobs: [...blobs] });
  }
  return { images: out, sizes };
}
