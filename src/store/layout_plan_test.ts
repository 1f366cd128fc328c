import assert from "node:assert/strict";
import { blobDataPath, planLayout } from "./layout_plan.ts";
import type { ParsedManifest } from "../image/manifest.ts";

const d = (c: string) => `sha256:${c.repeat(64)}`;

Deno.test("planLayout() links revisions, layers and tags, and reports missing blobs and absent children", () => {
  const manifests = new Map<string, ParsedManifest>([
    [d("1"), {
      kind: "index",
      mediaType: "application/vnd.oci.image.index.v1+json",
      children: [
        { digest: d("2"), size: 1, mediaType: "m", platform: { os: "linux", architecture: "amd64" } },
        { digest: d("9"), size: 1, mediaType: "m", platform: { os: "linux", architecture: "arm64" } },
      ],
    }],
    [d("2"), {
      kind: "image",
      mediaType: "m",
      config: { digest: d("3"), size: 5, mediaType: "c" },
      layers: [
        { digest: d("4"), size: 7, mediaType: "l" },
        { digest: d("5"), size: 7, mediaType: "l" },
      ],
    }],
  ]);
  const have = new Set([d("1"), d("2"), d("3"), d("4")]);
  const plan = planLayout(
    [{ source: "quay.io/a/b", repository: "quay.io/a/b", digest: d("1"), tags: ["v1"], mediaType: "" }],
    manifests,
    (x) => have.has(x),
    () => 1,
  );
  const paths = plan.links.map(([p]) => p);
  const repo = "repositories/quay.io/a/b";
  for (
    const p of [
      `${repo}/_manifests/revisions/sha256/${"1".repeat(64)}/link`,
      `${repo}/_manifests/revisions/sha256/${"2".repeat(64)}/link`,
      `${repo}/_layers/sha256/${"3".repeat(64)}/link`,
      `${repo}/_layers/sha256/${"4".repeat(64)}/link`,
      `${repo}/_manifests/tags/v1/current/link`,
      `${repo}/_manifests/tags/v1/index/sha256/${"1".repeat(64)}/link`,
    ]
  ) assert.ok(paths.includes(p), p);
  assert.deepEqual(plan.missing, [{ image: "quay.io/a/b:v1", ref: `quay.io/a/b@${d("1")}`, digest: d("5"), what: "layer" }]);
  assert.deepEqual(plan.absentChildren.map((a) => a.platform), ["linux/arm64"]);
  assert.deepEqual(plan.images[0].platforms, ["linux/amd64"]);
  assert.equal(blobDataPath(d("a")), `blobs/sha256/aa/${"a".repeat(64)}/data`);
});
