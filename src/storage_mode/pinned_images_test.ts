import assert from "node:assert/strict";
import { join } from "node:path";
import { checkPinnedImages, renderPinnedImages, writePinnedImages } from "./pinned_images.ts";

Deno.test("renderPinnedImages() is sorted, deduplicated, valid TOML and stable", () => {
  const refs = ["quay.io/b/c:v1", "quay.io/a/b@sha256:" + "1".repeat(64), "quay.io/b/c:v1"];
  const text = renderPinnedImages(refs, "about");
  assert.equal(text, renderPinnedImages([...refs].reverse(), "about"));
  assert.match(text, /^# Written by isoload/);
  checkPinnedImages(text, refs, "f");
  assert.throws(() => checkPinnedImages(text, ["quay.io/other:1"], "f"), /does not list/);
});

Deno.test("writePinnedImages() replaces its own file, never another's", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "d", "50-pins.conf");
    assert.equal(await writePinnedImages(path, ["quay.io/a/b:1"], "x"), true);
    assert.equal(await writePinnedImages(path, ["quay.io/a/b:1"], "x"), false, "same input: nothing rewritten");
    assert.equal(await writePinnedImages(path, ["quay.io/a/b:2"], "x"), true);
    const foreign = join(dir, "foreign.conf");
    await Deno.writeTextFile(foreign, "[crio.image]\n");
    await assert.rejects(writePinnedImages(foreign, ["quay.io/a/b:1"], "x"), /isoload did not write it/);
    assert.equal(await Deno.readTextFile(foreign), "[crio.image]\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
