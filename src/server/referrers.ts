/**
 * `GET`/`HEAD /v2/<name>/referrers/<digest>` (OCI distribution-spec 1.1): an
 * image index of the repository's manifests whose `subject` is that digest,
 * from the map built when the content was indexed. `?artifactType=` filters
 * it and says so in `OCI-Filters-Applied`. No referrers is an empty index,
 * never 404: that tells clients the API is supported.
 */
import { isDigest } from "../image/digest.ts";
import { MediaType } from "../image/manifest.ts";
import { API_HEADER, decodeSegment, RegistryError, type RepoRequest } from "./http.ts";

/** The referrers handler. */
export function referrersList(r: RepoRequest): Response {
  const digest = decodeSegment(r.ref, "DIGEST_INVALID");
  if (!isDigest(digest)) throw new RegistryError(400, "DIGEST_INVALID", `invalid digest ${JSON.stringify(digest)}`);
  let list = r.content.referrers.get(r.name)?.get(digest) ?? [];
  const headers: Record<string, string> = { ...API_HEADER, "Content-Type": MediaType.ociIndex };
  const artifactType = r.url.searchParams.get("artifactType");
  if (artifactType !== null) {
    list = list.filter((d) => d.artifactType === artifactType);
    headers["OCI-Filters-Applied"] = "artifactType";
  }
  const body = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: list });
  headers["Content-Length"] = String(new TextEncoder().encode(body).length);
  return new Response(r.head ? null : body, { headers });
}
