import assert from "node:assert/strict";
import { parseManifest } from "./manifest.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const d = (c: string, mediaType = "application/vnd.oci.image.manifest.v1+json") => ({
  mediaType,
  digest: `sha256:${c.repeat(64)}`,
  size: 2,
});

Deno.test("parseManifest() keeps an OCI 1.1 artifact's artifactType, subject and annotations", () => {
  const m = parseManifest(enc({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: "application/spdx+json",
    config: d("a", "application/vnd.oci.empty.v1+json"),
    layers: [d("b", "application/spdx+json")],
    subject: d("c"),
    annotations: { "org.example": "x" },
  }));
  assert.equal(m.kind, "image");
  assert.equal(m.artifactType, "application/spdx+json");
  assert.equal(m.subject?.digest, `sha256:${"c".repeat(64)}`);
  assert.deepEqual(m.annotations, { "org.example": "x" });
});

Deno.test("parseManifest() reads an index's subject too, and leaves out a subject it cannot read", () => {
  const idx = parseManifest(enc({ schemaVersion: 2, manifests: [d("a")], subject: d("c") }));
  assert.equal(idx.subject?.digest, `sha256:${"c".repeat(64)}`);
  assert.equal(idx.artifactType, undefined);
  const bad = parseManifest(enc({ schemaVersion: 2, config: d("a"), layers: [], subject: { digest: "md5:x" }, annotations: { n: 1 } }));
  assert.equal(bad.subject, undefined);
  assert.equal(bad.annotations, undefined);
});
