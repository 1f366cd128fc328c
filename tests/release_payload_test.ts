import assert from "node:assert/strict";
import { join } from "node:path";
import { pullAll } from "./_containers.ts";
import { withTempDir } from "./_fixtures.ts";
import { isoload } from "./_process.ts";
import { asFixture, layerTarBytes, parseSize, planRelease, writeRelease } from "../tools/release_payload.ts";

Deno.test("planRelease() is deterministic, release-shaped, and scales its layers to the total size", () => {
  for (const totalBytes of [1e9, 8e9]) {
    const plan = planRelease({ totalBytes, seed: 7 });
    assert.deepEqual(plan, planRelease({ totalBytes, seed: 7 }));
    assert.equal(plan.images.length, 190);
    const bases = new Set(plan.images.map((l) => l.slice(0, 2).join()));
    assert.ok(bases.size > 1 && bases.size <= 3, "a few shared base chains");
    for (const layers of plan.images) assert.ok(layers.length - 2 >= 2 && layers.length - 2 <= 4, "2–4 own layers");
    const blobs = plan.layers.length + 2 * plan.images.length;
    assert.ok(blobs > 800 && blobs < 1000, `~900 blobs, got ${blobs}`);
    const bytes = plan.layers.reduce((s, l) => s + layerTarBytes(l.bytes), 0);
    assert.ok(Math.abs(bytes - totalBytes) / totalBytes < 0.01, `${bytes} within 1% of ${totalBytes}`);
    const sizes = plan.layers.map((l) => l.bytes).sort((a, b) => a - b);
    assert.ok(sizes.at(-1)! > 20 * sizes[Math.floor(sizes.length / 2)], "log-uniform: the largest layers dwarf the median");
  }
  assert.notDeepEqual(planRelease({ totalBytes: 1e9, seed: 1 }), planRelease({ totalBytes: 1e9, seed: 2 }));
  assert.equal(parseSize("8G"), 8e9);
  assert.equal(parseSize("512M"), 512e6);
});

Deno.test("writeRelease() writes the same images as an OCI tar, a directory and an oc-mirror archive, each loadable and pullable", async () => {
  await withTempDir("release", async (work) => {
    const plan = planRelease({ totalBytes: 20e6, images: 12, seed: 3 });
    const oci = await writeRelease(plan, { out: join(work, "oci.tar") });
    const dir = await writeRelease(plan, { dir: join(work, "layout") });
    const ocm = await writeRelease(plan, { out: join(work, "ocm.tar"), format: "oc-mirror" });
    assert.deepEqual(dir.images, oci.images);
    assert.deepEqual(ocm.images.map((i) => i.digest), oci.images.map((i) => i.digest));
    assert.equal(oci.images.length, 12);
    assert.ok(oci.images[0].name.endsWith(":4.19.0-x86_64") && oci.images[1].name.includes("@sha256:"));
    for (const [name, p] of [["oci", oci], ["dir", dir], ["ocm", ocm]] as const) {
      const source = p.paths[0];
      const data = join(work, `data-${name}`);
      const r = await isoload(["load", source, "--data-dir", data, "--no-registries-conf", "--quiet"]);
      assert.equal(r.code, 0, r.stderr);
      await pullAll(data, asFixture(source, p), work);
    }
  });
});
