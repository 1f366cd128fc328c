import assert from "node:assert/strict";
import type { LoadedImage } from "../image/loaded_image.ts";
import type { ParsedManifest } from "../image/manifest.ts";
import { hostPlatform, planStorage } from "./storage_plan.ts";

const d = (c: string) => `sha256:${c.repeat(64)}`;
const image = (digest: string, extra: Partial<LoadedImage> = {}): LoadedImage => ({
  source: "quay.io/ns/app",
  repository: "quay.io/ns/app",
  digest,
  mediaType: "m",
  tags: [],
  ...extra,
});
const amd64 = { os: "linux", architecture: "amd64" };
const arm64 = { os: "linux", architecture: "arm64" };
const manifests = new Map<string, ParsedManifest>([
  [d("1"), {
    kind: "index",
    mediaType: "application/vnd.oci.image.index.v1+json",
    children: [
      { digest: d("2"), size: 1, mediaType: "m", platform: amd64 },
      { digest: d("3"), size: 1, mediaType: "m", platform: arm64 },
    ],
  }],
  [d("4"), { kind: "image", mediaType: "m", config: { digest: d("5"), size: 1, mediaType: "c" }, layers: [] }],
]);

Deno.test("planStorage() names an image by digest then tags, and pins the host child of an index", () => {
  const plan = planStorage(
    { images: [image(d("1"), { tags: ["v1", "v2"], children: [d("2"), d("3")] })], missing: [] },
    manifests,
    new Map(),
    amd64,
  );
  assert.deepEqual(plan.failures, []);
  assert.deepEqual(plan.copies[0].targets, [`quay.io/ns/app@${d("1")}`, "quay.io/ns/app:v1", "quay.io/ns/app:v2"]);
  assert.deepEqual(plan.copies[0].accepts, [d("1"), d("2")]);
  assert.deepEqual(plan.copies[0].pins, [`quay.io/ns/app@${d("1")}`, `quay.io/ns/app@${d("2")}`, "quay.io/ns/app:v1", "quay.io/ns/app:v2"]);
});

Deno.test("planStorage() fails an index whose host manifest is absent or corrupt, and one with no such platform", () => {
  const absent = planStorage({ images: [image(d("1"), { children: [d("3")] })], missing: [] }, manifests, new Map(), amd64);
  assert.equal(absent.copies.length, 0);
  assert.match(absent.failures[0].reason, /linux\/amd64 manifest sha256:2{64} is not in the archive/);

  const corrupt = planStorage(
    { images: [image(d("1"), { children: [d("3")] })], missing: [] },
    manifests,
    new Map([[d("2"), "bytes hash to something else; the archive is corrupt"]]),
    amd64,
  );
  assert.match(corrupt.failures[0].reason, /corrupt/);

  const other = planStorage({ images: [image(d("1"), { children: [d("2"), d("3")] })], missing: [] }, manifests, new Map(), {
    os: "linux",
    architecture: "s390x",
  });
  assert.equal(other.failures[0].reason, "its index has no linux/s390x manifest (it has linux/amd64, linux/arm64)");
});

Deno.test("planStorage() fails an image with a missing blob, giving the corruption when there was one", () => {
  const ref = `quay.io/ns/app@${d("4")}`;
  const plan = planStorage(
    { images: [image(d("4")), image(d("1"), { children: [d("2")] })], missing: [{ image: ref, ref, digest: d("5"), what: "config" }] },
    manifests,
    new Map([[d("5"), "Cannot load blob: corrupt"]]),
    amd64,
  );
  assert.deepEqual(plan.failures, [{ ref, reason: "Cannot load blob: corrupt" }]);
  assert.deepEqual(plan.copies.map((c) => c.ref), [`quay.io/ns/app@${d("1")}`]);
});

Deno.test("hostPlatform() spells Deno's architectures as OCI does", () => {
  assert.deepEqual(hostPlatform("x86_64"), amd64);
  assert.deepEqual(hostPlatform("aarch64"), arm64);
});
