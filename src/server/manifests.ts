/**
 * `GET`/`HEAD /v2/<name>/manifests/<reference>`: the stored manifest bytes,
 * unchanged, by tag or digest. Manifests are small, so each is read whole,
 * checked against its digest before it is first served, and kept in memory.
 */
import { digestOf, isDigest } from "../image/digest.ts";
import { MAX_MANIFEST_BYTES, MediaType } from "../image/manifest.ts";
import type { ServedContent } from "./content.ts";
import { etagOf, notModified } from "./conditional.ts";
import { API_HEADER, decodeSegment, RegistryError, type RepoRequest } from "./http.ts";
import { readLocated } from "./located_bytes.ts";

// distribution/reference's tag grammar.
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const KNOWN_TYPES: readonly string[] = Object.values(MediaType);

/** Reads a manifest's bytes, verified and cached; undefined when absent, too large or corrupt. */
export function manifestReader(content: ServedContent): (digest: string) => Promise<Uint8Array | undefined> {
  const cache = new Map<string, Uint8Array>();
  return async (digest) => {
    const cached = cache.get(digest);
    if (cached) return cached;
    if (content.bad.has(digest)) return undefined;
    const l = await content.blobs.locate(digest);
    if (!l || l.size > MAX_MANIFEST_BYTES) return undefined;
    const bytes = await readLocated(l);
    // Manifests are small: always checked before they are served or cached.
    if (digestOf(bytes) !== digest) {
      content.bad.add(digest);
      return undefined;
    }
    content.verified.add(digest);
    cache.set(digest, bytes);
    return bytes;
  };
}

/** A reference that is neither a tag nor a digest names no manifest (404); one that tries to be a digest is 400. */
function resolve(r: RepoRequest, ref: string): string {
  if (isDigest(ref)) return ref;
  if (ref.includes(":")) throw new RegistryError(400, "DIGEST_INVALID", `invalid digest ${JSON.stringify(ref)}`);
  const digest = TAG_RE.test(ref) ? r.repo.tags.get(ref) : undefined;
  if (!digest) {
    throw new RegistryError(404, "MANIFEST_UNKNOWN", `manifest unknown: ${r.name}:${ref}`, { detail: { Name: r.name, Revision: ref } });
  }
  return digest;
}

/** The manifests handler over `content`. */
export function manifestsHandler(content: ServedContent): (r: RepoRequest) => Promise<Response> {
  const read = manifestReader(content);
  return async (r) => {
    const ref = decodeSegment(r.ref, "TAG_INVALID");
    const digest = resolve(r, ref);
    if (!r.repo.manifests.has(digest)) {
      throw new RegistryError(404, "MANIFEST_UNKNOWN", `manifest unknown: ${r.name}@${digest}`, {
        detail: { Name: r.name, Revision: ref },
      });
    }
    const bytes = await read(digest);
    if (!bytes) throw new RegistryError(404, "MANIFEST_UNKNOWN", `manifest unknown or corrupt: ${r.name}@${digest}`);
    const type = content.mediaTypes.get(digest) ?? MediaType.ociManifest;
    // Accept negotiation: a tag whose manifest type the client did not list is refused (a digest names exact bytes).
    const accept = r.req.headers.get("Accept");
    if (!isDigest(ref) && accept) {
      const listed = accept.split(",").map((a) => a.split(";")[0].trim());
      if (!listed.includes(type) && !listed.includes("*/*") && listed.some((a) => KNOWN_TYPES.includes(a))) {
        throw new RegistryError(404, "MANIFEST_UNKNOWN", `manifest of type ${type} not acceptable (Accept: ${accept})`);
      }
    }
    const headers = { ...API_HEADER, "Content-Type": type, "Docker-Content-Digest": digest, "ETag": etagOf(digest) };
    if (notModified(r.req.headers, etagOf(digest))) return new Response(null, { status: 304, headers });
    return new Response(r.head ? null : bytes as BodyInit, { headers: { ...headers, "Content-Length": String(bytes.length) } });
  };
}
