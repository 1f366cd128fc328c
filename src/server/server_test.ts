/**
 * registryHandler() in process, as go-containerregistry's registry_test.go
 * does it: one row per request (method, raw target, headers) and what must
 * come back (status, error code, headers, body), over a small OCI layout
 * indexed in place. No sockets: the whole table runs in milliseconds. Long
 * by design: a table of requests reads best as one list.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { contentInPlace } from "../commands/serve_builtin.ts";
import type { Logger } from "../util/log.ts";
import { type Desc, writeArtifact, writeBlob, writeImage, writeLayoutIndex } from "../../tools/payload.ts";
import { registryHandler } from "./server.ts";

const REPO = "quay.io/ns/repo";
const OTHER = "quay.io/ns/other";
const SIG_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SBOM_TYPE = "application/spdx+json";

const quiet: Logger = { info() {}, warn() {}, progress() {}, endProgress() {}, error() {} };

interface Layout {
  dir: string;
  image: Desc;
  manifest: Uint8Array;
  layer: Desc;
  layerBytes: Uint8Array;
  other: Desc;
  otherLayer: Desc;
  sig: Desc & { artifactType: string };
  sbom: Desc & { artifactType: string };
}

/** A tagged image with one 5000-byte layer, an image in another repository, and two artifacts whose subject is the first image. */
async function buildLayout(dir: string): Promise<Layout> {
  const layerBytes = new Uint8Array(5000).map((_, i) => (i * 7 + 3) & 0xff);
  const image = await writeImage(dir, { layers: [layerBytes] });
  const manifest = await Deno.readFile(join(dir, "blobs", "sha256", image.digest.slice(7)));
  const layer = JSON.parse(new TextDecoder().decode(manifest)).layers[0];
  const other = await writeImage(dir, { layers: [new TextEncoder().encode("other layer")] });
  const otherLayer = JSON.parse(await Deno.readTextFile(join(dir, "blobs", "sha256", other.digest.slice(7)))).layers[0];
  const sig = await writeArtifact(dir, {
    artifactType: SIG_TYPE,
    subject: image,
    blobs: [new TextEncoder().encode("signature")],
    annotations: { "dev.sigstore.cosign/signature": "sig" },
  });
  const sbom = await writeArtifact(dir, { artifactType: SBOM_TYPE, subject: image, blobs: [new TextEncoder().encode("{}\n")] });
  await writeBlob(dir, new TextEncoder().encode("not named by anything"), "application/octet-stream");
  await writeLayoutIndex(dir, [
    { desc: image, name: `${REPO}:t` },
    { desc: other, name: `${OTHER}:v1` },
    { desc: sig, name: `${REPO}@${sig.digest}` },
    { desc: sbom, name: `${REPO}@${sbom.digest}` },
  ]);
  return { dir, image, manifest, layer, layerBytes, other, otherLayer, sig, sbom };
}

/** One request and what must come back. */
interface Row {
  description: string;
  method?: string;
  /** The request target exactly as a client sends it. */
  target: string;
  headers?: Record<string, string>;
  status: number;
  code?: string;
  /** Response headers that must be present with these values (null: absent). */
  want?: Record<string, string | null>;
  body?: (body: Uint8Array, res: Response) => void;
}

const json = (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b));

function rows(l: Layout): Row[] {
  const m = `/v2/${REPO}/manifests`;
  const b = `/v2/${REPO}/blobs`;
  const blob = `${b}/${l.layer.digest}`;
  const etag = `"${l.layer.digest}"`;
  const whole = (body: Uint8Array) => assert.deepEqual(body, l.layerBytes);
  const ref = `/v2/${REPO}/referrers`;
  const referrers = [l.sig, l.sbom].sort((x, y) => (x.digest < y.digest ? -1 : 1)).map((d) => ({
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    artifactType: d.artifactType,
    ...(d.annotations ? { annotations: d.annotations } : {}),
  }));
  return [
    {
      description: "GET /v2/ is 200 {} with the API version",
      target: "/v2/",
      status: 200,
      want: { "Docker-Distribution-API-Version": "registry/2.0" },
      body: (x) => assert.deepEqual(json(x), {}),
    },
    { description: "HEAD /v2/ is 200", method: "HEAD", target: "/v2/", status: 200 },
    { description: "GET /v2 without the slash is 200", target: "/v2", status: 200 },
    {
      description: "manifest by tag: stored bytes, type, digest, ETag",
      target: `${m}/t`,
      status: 200,
      want: {
        "Content-Type": l.image.mediaType,
        "Docker-Content-Digest": l.image.digest,
        "ETag": `"${l.image.digest}"`,
        "Content-Length": String(l.manifest.length),
      },
      body: (x) => assert.deepEqual(x, l.manifest),
    },
    {
      description: "manifest by digest, HEAD: headers, no body",
      method: "HEAD",
      target: `${m}/${l.image.digest}`,
      status: 200,
      want: { "Content-Length": String(l.manifest.length) },
      body: (x) => assert.equal(x.length, 0),
    },
    { description: "manifest with an escaped colon in its digest", target: `${m}/${l.image.digest.replace(":", "%3A")}`, status: 200 },
    { description: "manifests/%FF (not UTF-8) is 400, not 500", target: `${m}/%FF`, status: 400, code: "TAG_INVALID" },
    { description: "manifests/%ZZ (not an escape) is 400, not 500", target: `${m}/%ZZ`, status: 400, code: "TAG_INVALID" },
    {
      description: "manifests/.INVALID_MANIFEST_NAME is 404 MANIFEST_UNKNOWN",
      target: `${m}/.INVALID_MANIFEST_NAME`,
      status: 404,
      code: "MANIFEST_UNKNOWN",
    },
    {
      description: "a malformed digest reference is 400 DIGEST_INVALID",
      target: `${m}/sha256:baddigeststring`,
      status: 400,
      code: "DIGEST_INVALID",
    },
    { description: "an absent tag is 404 MANIFEST_UNKNOWN", target: `${m}/nope`, status: 404, code: "MANIFEST_UNKNOWN" },
    {
      description: "an absent digest is 404 MANIFEST_UNKNOWN",
      target: `${m}/sha256:${"0".repeat(64)}`,
      status: 404,
      code: "MANIFEST_UNKNOWN",
    },
    {
      description: "another repository's manifest is not served here",
      target: `${m}/${l.other.digest}`,
      status: 404,
      code: "MANIFEST_UNKNOWN",
    },
    {
      description: "HEAD of an absent manifest: 404, no body",
      method: "HEAD",
      target: `${m}/nope`,
      status: 404,
      body: (x) => assert.equal(x.length, 0),
    },
    {
      description: "a tag whose type the client does not accept is MANIFEST_UNKNOWN",
      target: `${m}/t`,
      headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
      status: 404,
      code: "MANIFEST_UNKNOWN",
    },
    {
      description: "If-None-Match with the manifest's ETag is 304, no body",
      target: `${m}/t`,
      headers: { "If-None-Match": `"${l.image.digest}"` },
      status: 304,
      want: { ETag: `"${l.image.digest}"` },
      body: (x) => assert.equal(x.length, 0),
    },
    { description: "If-None-Match: * is 304 for a manifest that exists", target: `${m}/t`, headers: { "If-None-Match": "*" }, status: 304 },
    {
      description: "If-None-Match with another ETag is 200",
      target: `${m}/t`,
      headers: { "If-None-Match": `"sha256:${"1".repeat(64)}"` },
      status: 200,
    },
    ...["POST", "PUT", "PATCH", "DELETE", "OPTIONS"].map((method): Row => ({
      description: `${method} is 405 UNSUPPORTED with Allow: GET, HEAD`,
      method,
      target: method === "POST" ? `${b}/uploads/` : `${m}/t`,
      status: 405,
      code: "UNSUPPORTED",
      want: { Allow: "GET, HEAD" },
    })),
    {
      description: "blob GET: whole, with digest, length and Accept-Ranges",
      target: blob,
      status: 200,
      want: { "Docker-Content-Digest": l.layer.digest, "Content-Length": "5000", "Accept-Ranges": "bytes", ETag: etag },
      body: whole,
    },
    {
      description: "blob HEAD: length, no body",
      method: "HEAD",
      target: blob,
      status: 200,
      want: { "Content-Length": "5000" },
      body: (x) => assert.equal(x.length, 0),
    },
    {
      description: "Range bytes=100-199 is 206 with Content-Range",
      target: blob,
      headers: { Range: "bytes=100-199" },
      status: 206,
      want: { "Content-Range": "bytes 100-199/5000", "Content-Length": "100" },
      body: (x) => assert.deepEqual(x, l.layerBytes.subarray(100, 200)),
    },
    {
      description: "Range bytes=-10 is the last 10 bytes",
      target: blob,
      headers: { Range: "bytes=-10" },
      status: 206,
      body: (x) => assert.deepEqual(x, l.layerBytes.subarray(4990)),
    },
    {
      description: "Range bytes=4990- runs to the end",
      target: blob,
      headers: { Range: "bytes=4990-" },
      status: 206,
      want: { "Content-Range": "bytes 4990-4999/5000" },
    },
    {
      description: "Range past the end is 416 with bytes */size",
      target: blob,
      headers: { Range: "bytes=5000-" },
      status: 416,
      want: { "Content-Range": "bytes */5000" },
    },
    {
      description: "Range: items=0-5 (unknown unit) is ignored: 200 whole",
      target: blob,
      headers: { Range: "items=0-5" },
      status: 200,
      want: { "Content-Range": null },
      body: whole,
    },
    {
      description: "Range: bytes=0-0,10-19 (several ranges) is 200 whole",
      target: blob,
      headers: { Range: "bytes=0-0,10-19" },
      status: 200,
      body: whole,
    },
    {
      description: "Range: bytes=abc (malformed) is ignored: 200 whole",
      target: blob,
      headers: { Range: "bytes=abc" },
      status: 200,
      body: whole,
    },
    {
      description: "If-Range with the current ETag honours the range",
      target: blob,
      headers: { Range: "bytes=0-9", "If-Range": etag },
      status: 206,
      body: (x) => assert.deepEqual(x, l.layerBytes.subarray(0, 10)),
    },
    {
      description: "If-Range with another ETag is 200 whole",
      target: blob,
      headers: { Range: "bytes=0-9", "If-Range": `"sha256:${"2".repeat(64)}"` },
      status: 200,
      body: whole,
    },
    {
      description: "If-Range with a date (no Last-Modified here) is 200 whole",
      target: blob,
      headers: { Range: "bytes=0-9", "If-Range": "Wed, 21 Oct 2015 07:28:00 GMT" },
      status: 200,
      body: whole,
    },
    {
      description: "If-Range with the weak form of the ETag is 200 whole",
      target: blob,
      headers: { Range: "bytes=0-9", "If-Range": `W/${etag}` },
      status: 200,
      body: whole,
    },
    {
      description: "If-None-Match with the blob's ETag is 304",
      target: blob,
      headers: { "If-None-Match": etag },
      status: 304,
      body: (x) => assert.equal(x.length, 0),
    },
    {
      description: "If-None-Match: a list holding the weak ETag is 304",
      target: blob,
      headers: { "If-None-Match": `"x", W/${etag}` },
      status: 304,
    },
    { description: "If-None-Match on HEAD is 304 too", method: "HEAD", target: blob, headers: { "If-None-Match": etag }, status: 304 },
    { description: "an absent blob is 404 BLOB_UNKNOWN", target: `${b}/sha256:${"1".repeat(64)}`, status: 404, code: "BLOB_UNKNOWN" },
    {
      description: "a blob of another repository is not served here",
      target: `${b}/${l.otherLayer.digest}`,
      status: 404,
      code: "BLOB_UNKNOWN",
    },
    { description: "a bad digest is 400 DIGEST_INVALID", target: `${b}/sha256:xyz`, status: 400, code: "DIGEST_INVALID" },
    { description: "blobs/%FF is 400 DIGEST_INVALID", target: `${b}/%FF`, status: 400, code: "DIGEST_INVALID" },
    { description: "an encoded path in a digest is 400", target: `${b}/..%2F..%2Fetc%2Fpasswd`, status: 400, code: "DIGEST_INVALID" },
    {
      description: "a dot-dot segment in the name is refused, not resolved",
      target: "/v2/quay.io/ns/x/../repo/manifests/t",
      status: 400,
      code: "NAME_INVALID",
    },
    {
      description: "an encoded dot-dot segment in the name is refused",
      target: "/v2/quay.io/ns/x/%2e%2e/repo/manifests/t",
      status: 400,
      code: "NAME_INVALID",
    },
    { description: "a dot segment after /v2/ is refused", target: `/v2/./${REPO}/manifests/t`, status: 400, code: "NAME_INVALID" },
    { description: "/v2/../v2/ before the name is refused", target: `/v2/../v2/${REPO}/manifests/t`, status: 400, code: "NAME_INVALID" },
    { description: "a dot segment before the resource is refused", target: `/v2/${REPO}/./manifests/t`, status: 400, code: "NAME_INVALID" },
    { description: "dot-dot out of /v2/ is no endpoint", target: "/v2/../../etc/passwd", status: 404, code: "NOT_FOUND" },
    {
      description: "an absolute-form target with dot segments is refused too",
      target: `http://registry.test/v2/quay.io/ns/x/../repo/manifests/t`,
      status: 400,
      code: "NAME_INVALID",
    },
    {
      description: "an encoded slash in the name is NAME_INVALID",
      target: "/v2/quay.io%2Fns%2Frepo/tags/list",
      status: 400,
      code: "NAME_INVALID",
    },
    { description: "an upper-case name is NAME_INVALID", target: "/v2/Quay.io/ns/repo/tags/list", status: 400, code: "NAME_INVALID" },
    { description: "an empty path component is NAME_INVALID", target: "/v2/quay.io//repo/tags/list", status: 400, code: "NAME_INVALID" },
    {
      description: "an unknown repository is NAME_UNKNOWN",
      target: "/v2/quay.io/nobody/here/tags/list",
      status: 404,
      code: "NAME_UNKNOWN",
    },
    { description: "an unknown endpoint is 404", target: "/v2/nothing", status: 404, code: "NOT_FOUND" },
    {
      description: "tags/list",
      target: `/v2/${REPO}/tags/list`,
      status: 200,
      body: (x) => assert.deepEqual(json(x), { name: REPO, tags: ["t"] }),
    },
    { description: "tags/other is no endpoint", target: `/v2/${REPO}/tags/other`, status: 404, code: "NOT_FOUND" },
    {
      description: "the catalog lists every repository",
      target: "/v2/_catalog",
      status: 200,
      body: (x) => assert.deepEqual(json(x), { repositories: [OTHER, REPO] }),
    },
    {
      description: "the catalog paginates with n and a Link to the next page",
      target: "/v2/_catalog?n=1",
      status: 200,
      want: { Link: `</v2/_catalog?n=1&last=${encodeURIComponent(OTHER)}>; rel="next"` },
      body: (x) => assert.deepEqual(json(x), { repositories: [OTHER] }),
    },
    {
      description: "the catalog's next page after last",
      target: `/v2/_catalog?n=1&last=${encodeURIComponent(OTHER)}`,
      status: 200,
      want: { Link: null },
      body: (x) => assert.deepEqual(json(x), { repositories: [REPO] }),
    },
    {
      description: "referrers: an image index of the manifests whose subject is the digest, with artifactType and annotations",
      target: `${ref}/${l.image.digest}`,
      status: 200,
      want: { "Content-Type": "application/vnd.oci.image.index.v1+json", "OCI-Filters-Applied": null },
      body: (x) =>
        assert.deepEqual(json(x), { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: referrers }),
    },
    {
      description: "referrers ?artifactType= filters and says so in OCI-Filters-Applied",
      target: `${ref}/${l.image.digest}?artifactType=${encodeURIComponent(SBOM_TYPE)}`,
      status: 200,
      want: { "OCI-Filters-Applied": "artifactType" },
      body: (x) => assert.deepEqual(json(x).manifests, referrers.filter((d) => d.artifactType === SBOM_TYPE)),
    },
    {
      description: "referrers filtered by a type nobody has: an empty index",
      target: `${ref}/${l.image.digest}?artifactType=application%2Fnone`,
      status: 200,
      want: { "OCI-Filters-Applied": "artifactType" },
      body: (x) => assert.deepEqual(json(x).manifests, []),
    },
    {
      description: "referrers of a digest nothing refers to: 200 and an empty index",
      target: `${ref}/${l.sig.digest}`,
      status: 200,
      want: { "Content-Type": "application/vnd.oci.image.index.v1+json" },
      body: (x) => assert.deepEqual(json(x), { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] }),
    },
    {
      description: "referrers are per repository: none in another",
      target: `/v2/${OTHER}/referrers/${l.image.digest}`,
      status: 200,
      body: (x) => assert.deepEqual(json(x).manifests, []),
    },
    {
      description: "referrers HEAD: headers, no body",
      method: "HEAD",
      target: `${ref}/${l.image.digest}`,
      status: 200,
      body: (x) => assert.equal(x.length, 0),
    },
    { description: "referrers of a bad digest is 400 DIGEST_INVALID", target: `${ref}/sha256:nope`, status: 400, code: "DIGEST_INVALID" },
    { description: "referrers of a tag is 400 DIGEST_INVALID", target: `${ref}/t`, status: 400, code: "DIGEST_INVALID" },
    {
      description: "a negative n is 400 PAGINATION_NUMBER_INVALID",
      target: "/v2/_catalog?n=-1",
      status: 400,
      code: "PAGINATION_NUMBER_INVALID",
    },
  ];
}

Deno.test("registryHandler() answers each request of the table as the specification and RFC 9110 say", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "isoload-handler-" });
  try {
    const layout = await buildLayout(join(dir, "layout"));
    const built = await contentInPlace([layout.dir], {}, quiet);
    const handle = registryHandler(built.content);
    for (const row of rows(layout)) {
      await t.step(row.description, async () => {
        const url = /^[a-z]+:\/\//.test(row.target) ? row.target : `http://registry.test${row.target}`;
        const method = row.method ?? "GET";
        const req = new Request(url, { method, headers: row.headers, body: ["POST", "PUT", "PATCH"].includes(method) ? "x" : undefined });
        const res = await handle(req, row.target);
        const body = new Uint8Array(await res.arrayBuffer());
        assert.equal(res.status, row.status, `${method} ${row.target}: ${new TextDecoder().decode(body)}`);
        if (row.code) {
          assert.equal(res.headers.get("Content-Type"), "application/json");
          if (method !== "HEAD") assert.equal(json(body).errors[0].code, row.code);
        }
        for (const [k, v] of Object.entries(row.want ?? {})) assert.equal(res.headers.get(k), v, k);
        row.body?.(body, res);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
