/**
 * Plans the link files of a distribution 2.8 storage tree for a set of
 * images: pure, so the rules are tested without a disk.
 * Paths are relative to `docker/registry/v2/`.
 */
import { digestHex } from "../image/digest.ts";
import { type LoadedImage, pullReference } from "../image/loaded_image.ts";
import { isForeignLayer, type ParsedManifest, platformString } from "../image/manifest.ts";

/** What an image needs written, and what it lacks. */
export interface LayoutPlan {
  /** [path, digest] pairs, sorted by path, each to hold exactly the digest. */
  links: [string, string][];
  /** Images with platforms, children and sizes filled in. */
  images: LoadedImage[];
  /** Fatal: blobs or manifests an image needs that are absent. `image` names it for people, `ref` is its `source@digest`. */
  missing: { image: string; ref: string; digest: string; what: string }[];
  /** Not fatal: children of an index the source did not carry. */
  absentChildren: { image: string; digest: string; platform: string }[];
}

/** Path of a blob's data file under `docker/registry/v2/`. */
export function blobDataPath(digest: string): string {
  const hex = digestHex(digest);
  return `blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
}

/**
 * Plans links for every image: revisions for each manifest and index,
 * `_layers` for every config and layer, tag links for every tag.
 */
export function planLayout(
  images: LoadedImage[],
  manifests: ReadonlyMap<string, ParsedManifest>,
  hasBlob: (digest: string) => boolean,
  blobSize: (digest: string) => number,
): LayoutPlan {
  const links = new Map<string, string>();
  const missing: LayoutPlan["missing"] = [];
  const absentChildren: LayoutPlan["absentChildren"] = [];
  const out: LoadedImage[] = [];
  for (const img of images) {
    const repo = `repositories/${img.repository}`;
    const name = img.tags.length ? `${img.source}:${img.tags[0]}` : `${img.source}@${img.digest}`;
    const revision = (d: string) => links.set(`${repo}/_manifests/revisions/sha256/${digestHex(d)}/link`, d);
    const layer = (d: string) => links.set(`${repo}/_layers/sha256/${digestHex(d)}/link`, d);
    let size = 0;
    const addImageManifest = (digest: string, m: Extract<ParsedManifest, { kind: "image" }>) => {
      revision(digest);
      size += blobSize(digest);
      for (const [what, d] of [["config", m.config] as const, ...m.layers.map((l) => ["layer", l] as const)]) {
        if (!hasBlob(d.digest)) {
          if (what === "layer" && isForeignLayer(d)) continue;
          missing.push({ image: name, ref: pullReference(img), digest: d.digest, what });
          continue;
        }
        layer(d.digest);
        size += d.size;
      }
    };
    const top = manifests.get(img.digest);
    const record: LoadedImage = { ...img, tags: [...img.tags].sort() };
    if (!top) {
      missing.push({ image: name, ref: pullReference(img), digest: img.digest, what: "manifest" });
      continue;
    }
    record.mediaType = top.mediaType;
    if (top.kind === "image") {
      addImageManifest(img.digest, top);
    } else {
      revision(img.digest);
      size += blobSize(img.digest);
      const platforms: string[] = [];
      const children: string[] = [];
      for (const child of top.children) {
        const m = manifests.get(child.digest);
        if (!m) {
          absentChildren.push({ image: name, digest: child.digest, platform: platformString(child.platform) });
          continue;
        }
        if (m.kind !== "image") {
          // Nested indexes are legal but rare; their own children are left as they are.
          revision(child.digest);
          size += blobSize(child.digest);
        } else addImageManifest(child.digest, m);
        children.push(child.digest);
        platforms.push(platformString(child.platform));
      }
      record.platforms = platforms;
      record.children = children;
    }
    for (const tag of record.tags) {
      links.set(`${repo}/_manifests/tags/${tag}/current/link`, img.digest);
      links.set(`${repo}/_manifests/tags/${tag}/index/sha256/${digestHex(img.digest)}/link`, img.digest);
    }
    record.size = size;
    out.push(record);
  }
  const sorted = [...links.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { links: sorted, images: out, missing, absentChildren };
}
