/**
 * The bundle (`deno task bundle` → dist/isoload.js) is the offline proof of
 * the module graph `deno compile` ships: copied alone into an empty
 * directory, with no node_modules and no deno.json, it loads, serves and
 * a pull through it works.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { skopeoPull } from "./_containers.ts";
import { checkTree, sampleFixture, withTempDir } from "./_fixtures.ts";
import { compilePermissions, freePort, isoload, ROOT, serve, tool } from "./_process.ts";
import { planRelease, writeRelease } from "../tools/release_payload.ts";

Deno.test("dist/isoload.js alone, with only the compiled binary's permissions, runs load, serve, verify and its hashing workers end to end", async () => {
  await tool(Deno.execPath(), ["task", "bundle"]);
  const { tar, fixture } = await sampleFixture();
  await withTempDir("bundle", async (dir) => {
    const bin = join(dir, "bin");
    await Deno.mkdir(bin);
    const entry = join(bin, "isoload.js");
    await Deno.copyFile(join(ROOT, "dist", "isoload.js"), entry);
    const entries = [];
    for await (const e of Deno.readDir(bin)) entries.push(e.name);
    assert.deepEqual(entries, ["isoload.js"], "nothing beside the bundle");
    // The permissions the compiled binary gets, not --allow-all: they must be enough for load and serve.
    const opts = { entry, cwd: bin, env: { DENO_DIR: join(dir, "deno-dir"), DENO_NO_PACKAGE_JSON: "1" }, perms: compilePermissions() };
    const help = await isoload(["--help"], opts);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Commands:/);
    const port = freePort();
    const data = join(dir, "data");
    const conf = join(dir, "r.conf");
    const load = await isoload(["load", tar, "--data-dir", data, "--mirror", `127.0.0.1:${port}`, "--registries-conf", conf], opts);
    assert.equal(load.code, 0, load.stderr);
    const served = await serve(
      ["--data-dir", data, "--listen", `127.0.0.1:${port}`, "--registry-command", "/usr/bin/docker-registry"],
      opts,
    );
    try {
      const img = fixture.images[0];
      assert.equal(await skopeoPull(conf, `${img.source}@${img.digest}`, join(dir, "pull")), img.digest);
    } finally {
      await served.stop();
    }
    // The hashing workers run from the bundle too: large blobs are hashed off the main thread by load, every blob by verify.
    const release = await writeRelease(planRelease({ totalBytes: 24e6, images: 4, seed: 5 }), { out: join(dir, "release.tar") });
    const big = join(dir, "big");
    const loadBig = await isoload(["load", release.paths[0], "--data-dir", big, "--no-registries-conf"], opts);
    assert.equal(loadBig.code, 0, loadBig.stderr);
    const sizes = (await checkTree(big)).filter((f) => f.endsWith("/data")).map((f) => Deno.statSync(f).size);
    assert.ok(sizes.some((n) => n > 4 << 20), `a blob larger than one hashing buffer was loaded (largest ${Math.max(...sizes)})`);
    const verified = await isoload(["verify", "--data-dir", big], opts);
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stderr, new RegExp(`Verified .*: ${sizes.length} blobs .*: all good`));
  });
});
