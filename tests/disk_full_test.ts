/**
 * Full disks, on small tmpfs mounts: refused early with both numbers when the
 * archive cannot fit; when the disk fills anyway (here: 10,000 tiny blobs,
 * each taking a page), the error says so, nothing half-written is visible,
 * and a re-run after space is freed completes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildLargeLayout, tarDirectory } from "../tools/payload.ts";
import { pullAll } from "./_containers.ts";
import { checkTree, sampleFixture, tinyBlobsArchive, withTempDir } from "./_fixtures.ts";
import { isoload, tool } from "./_process.ts";

/** Runs `fn` with a tmpfs of `mb` megabytes mounted in a temp dir. */
async function withTmpfs(mb: number, fn: (mount: string) => Promise<void>): Promise<void> {
  await withTempDir("tmpfs", async (dir) => {
    const mount = join(dir, "fs");
    await Deno.mkdir(mount);
    await tool("mount", ["-t", "tmpfs", "-o", `size=${mb}m`, "tmpfs", mount]);
    try {
      await fn(mount);
    } finally {
      await tool("umount", [mount]);
    }
  });
}

Deno.test("load: an archive larger than the free space is refused before writing, with both numbers", async () => {
  await withTempDir("space", async (dir) => {
    const layout = await buildLargeLayout(join(dir, "layout"), 3, 20_000_000);
    const tar = join(dir, "big.tar");
    await tarDirectory(layout.dir, tar);
    await withTmpfs(48, async (fs) => {
      const data = join(fs, "data");
      const r = await isoload(["load", tar, "--data-dir", data, "--no-registries-conf"]);
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /Cannot load .*: it needs about \d+(\.\d+)? MB and the filesystem of .* has \d+(\.\d+)? MB free/);
      assert.deepEqual((await checkTree(data)).filter((f) => f.includes("/blobs/")), [], "no blob written");
    });
  });
});

Deno.test("load: when the disk fills mid-load the error says so, nothing half-written shows, a re-run after freeing completes", async () => {
  const { fixture } = await sampleFixture();
  await withTempDir("fill", async (dir) => {
    const tar = join(dir, "tiny.tar");
    await tinyBlobsArchive(tar, 10_000);
    const archiveMb = (await Deno.stat(tar)).size / 1e6;
    // Room for the archive's bytes and the slack, not for 10,000 pages of tiny blobs.
    await withTmpfs(Math.ceil(archiveMb + 20), async (fs) => {
      const data = join(fs, "data");
      const r = await isoload(["load", tar, "--data-dir", data, "--no-registries-conf"]);
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr.trim().split("\n").at(-1)!, /^isoload load: Cannot (write|load) .*(no space left on device|has only .* free)/);
      await checkTree(data);
      const records = JSON.parse(await Deno.readTextFile(join(data, "isoload", "images.json")));
      assert.equal(records.complete, false, "the records do not call the load complete");

      await tool("mount", ["-o", "remount,size=256m", fs]);
      const again = await isoload(["load", tar, "--data-dir", data, "--no-registries-conf"]);
      assert.equal(again.code, 0, again.stderr);
      await checkTree(data);
      await pullAll(data, fixture, dir);
    });
  });
});

Deno.test("load: 10,000 tiny entries load", async () => {
  await withTempDir("tiny", async (dir) => {
    const tar = join(dir, "tiny.tar");
    await tinyBlobsArchive(tar, 10_000);
    const r = await isoload(["load", tar, "--data-dir", join(dir, "data"), "--no-registries-conf"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /wrote 10014 blobs/);
  });
});
