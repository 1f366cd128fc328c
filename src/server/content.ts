/**
 * What a read-only registry serves, independent of where the bytes lie:
 * repositories with their tags, manifests and blobs (from the same link plan
 * the storage tree is written from), and a way to find each blob's bytes —
 * in DIR's tree, in the archive in place, or the first of the two that has it.
 */
import type { LoadedImage } from "../image/loaded_image.ts";
import type { RegistryStore } from "../store/storage_tree.ts";
import type { BlobLocation } from "../archive/source.ts";
import type { ParsedManifest } from "../image/manifest.ts";

/** One repository's names. */
export interface RepoView {
  /** tag → manifest digest. */
  tags: Map<string, string>;
  /** Manifest and index digests that may be fetched from this repository. */
  manifests: Set<string>;
  /** Config and layer digests linked into this repository. */
  blobs: Set<string>;
}

/** Every repository, from a layout plan's links (paths under docker/registry/v2). */
export function viewFromLinks(links: [string, string][]): Map<string, RepoView> {
  const repos = new Map<string, RepoView>();
  const repo = (name: string) => {
    let r = repos.get(name);
    if (!r) repos.set(name, r = { tags: new Map(), manifests: new Set(), blobs: new Set() });
    return r;
  };
  for (const [path, digest] of links) {
    const m =
      /^repositories\/(.+?)\/(_manifests\/tags\/([^/]+)\/current|_manifests\/revisions\/sha256\/[0-9a-f]{64}|_layers\/sha256\/[0-9a-f]{64})\/link$/
        .exec(path);
    if (!m) continue;
    if (m[3] !== undefined) repo(m[1]).tags.set(m[3], digest);
    else if (m[2].startsWith("_manifests")) repo(m[1]).manifests.add(digest);
    else repo(m[1]).blobs.add(digest);
  }
  return repos;
}

/** What the built-in registry serves. */
export interface ServedContent {
  repos: Map<string, RepoView>;
  /** Media type of each manifest, for Content-Type. */
  mediaTypes: Map<string, string>;
  /** repository → subject digest → the descriptors of its manifests whose `subject` is that digest. */
  referrers: Map<string, Map<string, ReferrerDescriptor[]>>;
  blobs: BlobFinder;
  /** Digests found corrupt while serving: never served again. */
  bad: Set<string>;
  /** Digests checked against their bytes. */
  verified: Set<string>;
  /** The images with their source names, for replicas (`GET /v2/_isoload/images`, see peer/peer.ts). */
  images?: LoadedImage[];
}

/** One entry of a referrers index (OCI distribution-spec 1.1, "Listing Referrers"). */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  /** The manifest's `artifactType`, else its config's media type; absent for an index without one. */
  artifactType?: string;
  annotations?: Record<string, string>;
}

/**
 * The referrers of every repository, found once when content is indexed: each
 * manifest a repository holds that names a `subject`, under that subject.
 * Entries are sorted by digest, so answers are stable.
 */
export async function referrersIndex(
  repos: ReadonlyMap<string, RepoView>,
  manifests: ReadonlyMap<string, ParsedManifest>,
  blobs: BlobFinder,
): Promise<Map<string, Map<string, ReferrerDescriptor[]>>> {
  const out = new Map<string, Map<string, ReferrerDescriptor[]>>();
  for (const [name, repo] of repos) {
    const bySubject = new Map<string, ReferrerDescriptor[]>();
    for (const digest of [...repo.manifests].sort()) {
      const m = manifests.get(digest);
      if (!m?.subject) continue;
      const size = (await blobs.locate(digest))?.size;
      if (size === undefined) continue;
      const artifactType = m.artifactType ?? (m.kind === "image" ? m.config.mediaType : undefined);
      const d: ReferrerDescriptor = { mediaType: m.mediaType, digest, size };
      if (artifactType !== undefined) d.artifactType = artifactType;
      if (m.annotations && Object.keys(m.annotations).length) d.annotations = m.annotations;
      const list = bySubject.get(m.subject.digest) ?? [];
      list.push(d);
      bySubject.set(m.subject.digest, list);
    }
    if (bySubject.size) out.set(name, bySubject);
  }
  return out;
}

/** Everything the server needs, from a layout plan's links, the parsed manifests and where blobs lie. */
export async function servedContent(
  links: [string, string][],
  manifests: ReadonlyMap<string, ParsedManifest>,
  blobs: BlobFinder,
  verified: Set<string> = new Set(),
): Promise<ServedContent> {
  const repos = viewFromLinks(links);
  return {
    repos,
    mediaTypes: new Map([...manifests].map(([d, m]) => [d, m.mediaType])),
    referrers: await referrersIndex(repos, manifests, blobs),
    blobs,
    bad: new Set(),
    verified,
  };
}

/** Where a blob's bytes are, and whether they were verified against the digest already. */
export interface Located extends BlobLocation {
  verified: boolean;
  /** Set while the blob is still being copied in (from a peer): its bytes appear in a temp file as they arrive. */
  growing?: GrowingBlob;
  /**
   * With `growing`: the same blob in the archive in place, served instead when the copy has not reached it within
   * the wait a client allows (a load --serve over slow media with a large entry ahead of this blob).
   */
  meanwhile?: Located;
}

/** A blob being written through the storage tree's writer, followed by readers as it grows. */
export interface GrowingBlob {
  /** Bytes of the current attempt written so far, which attempt, and its temp file. */
  progress: { readonly written: number; readonly attempt: number; readonly tmp?: string };
  /** Resolves once the blob is verified at its final path (`file`); rejects when no attempt succeeded. */
  done: Promise<void>;
}

/** Finds blobs' bytes. */
export interface BlobFinder {
  locate(digest: string): Promise<Located | undefined>;
}

/** Blobs in DIR's tree: verified when they were loaded. Only regular files count (never a link planted there). */
export function treeBlobs(store: RegistryStore): BlobFinder {
  return {
    async locate(digest) {
      const file = store.blobPath(digest);
      try {
        const st = await Deno.lstat(file);
        return st.isFile ? { file, offset: 0, size: st.size, verified: true } : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

/** Blobs in the archive (or directory) in place, as a header pass found them: checked when first served. */
export function archiveBlobs(where: ReadonlyMap<string, BlobLocation>, verified: Set<string>): BlobFinder {
  return {
    locate(digest) {
      const w = where.get(digest);
      return Promise.resolve(w ? { ...w, verified: verified.has(digest) } : undefined);
    },
  };
}

/** The first finder that has the blob: DIR's verified copy once it has landed, the archive until then. */
export function firstOf(...finders: BlobFinder[]): BlobFinder {
  return {
    async locate(digest) {
      for (const f of finders) {
        const l = await f.locate(digest);
        if (l) return l;
      }
      return undefined;
    },
  };
}
