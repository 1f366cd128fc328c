/**
 * Faults during load, with real processes: SIGKILL at 20 seeded points of a
 * 200 MB payload, SIGTERM, a second load and a serve while a load runs. After
 * each, a re-run completes, every blob hashes to its name, and skopeo pulls
 * every image from the served tree.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildLargeLayout, type Fixture, tarDirectory } from "../tools/payload.ts";
import { containersEnv, pullAll } from "./_containers.ts";
import { checkTree, withTempDir } from "./_fixtures.ts";
import { isoload, spawnIsoload, tool } from "./_process.ts";
import { prng } from "../tools/release_payload.ts";

let big: Promise<{ fixture: Fixture; tar: string; size: number }> | undefined;

/** 8 images × 26 MB of random layer: a 208 MB OCI layout archive, built once per test process. */
function bigFixture() {
  big ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "isoload-big-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const fixture = await buildLargeLayout(join(dir, "layout"), 8, 26_000_000);
    const tar = join(dir, "big.tar");
    await tarDirectory(fixture.dir, tar);
    return { fixture, tar, size: (await Deno.stat(tar)).size };
  })();
  return big;
}

const loadArgs = (tar: string, data: string) => ["load", tar, "--data-dir", data, "--no-registries-conf"];

/** After a fault: the re-run completes, the tree verifies, temp files are gone. */
async function rerunAndCheck(tar: string, data: string): Promise<void> {
  const again = await isoload(loadArgs(tar, data));
  assert.equal(again.code, 0, `re-run: ${again.stderr}`);
  await checkTree(data);
  assert.deepEqual([...Deno.readDirSync(join(data, "isoload", "tmp"))], [], "no temp file left");
}

Deno.test("load: SIGKILL at 20 seeded points of a 208 MB archive; each re-run completes and every image pulls", async () => {
  const { fixture, tar, size } = await bigFixture();
  const rand = prng(20261128);
  const points = Array.from({ length: 20 }, () => Math.floor(size * (0.02 + 0.96 * rand()))).sort((a, b) => a - b);
  let killed = 0;
  await withTempDir("crash", async (dir) => {
    for (const [i, point] of points.entries()) {
      const data = join(dir, `data-${i}`);
      const run = spawnIsoload(loadArgs(tar, data));
      if (await run.reached(tar, point)) {
        run.child.kill("SIGKILL");
        killed++;
      }
      const out = await run.output();
      assert.ok(out.signal === "SIGKILL" || out.code === 0, `killed or finished: ${out.stderr}`);
      await checkTree(data); // before the re-run too: no blob at a final path is half-written
      await rerunAndCheck(tar, data);
      if (i % 4 === 0 || i === points.length - 1) await pullAll(data, fixture, dir);
      await Deno.remove(data, { recursive: true });
    }
  });
  assert.ok(killed >= 18, `the kill landed mid-load at ${killed} of 20 points`);
});

Deno.test("load: SIGTERM mid-load exits 130 with a message; the re-run completes", async () => {
  const { fixture, tar, size } = await bigFixture();
  await withTempDir("term", async (dir) => {
    const data = join(dir, "data");
    const run = spawnIsoload(loadArgs(tar, data));
    assert.ok(await run.reached(tar, size / 2), "the load reached half way");
    run.child.kill("SIGTERM");
    const out = await run.output();
    assert.equal(out.code, 130, out.stderr);
    assert.match(
      out.stderr.trim().split("\n").at(-1)!,
      /^isoload load: Cannot load .*: interrupted by SIGTERM; nothing half-written is left/,
    );
    await checkTree(data);
    assert.deepEqual([...Deno.readDirSync(join(data, "isoload", "tmp"))], [], "the blob in progress was removed");
    const serveEarly = await isoload(["serve", "--data-dir", data, "--registry-command", "/usr/bin/docker-registry"]);
    assert.equal(serveEarly.code, 3, "serve refuses an unfinished load");
    assert.match(serveEarly.stderr, /the load into .* is unfinished \(run isoload load again\)/);
    await rerunAndCheck(tar, data);
    await pullAll(data, fixture, dir);
  });
});

Deno.test("load: a second load, or a serve, while a load runs on the same DIR is refused, naming the holder", async () => {
  const { tar, size } = await bigFixture();
  await withTempDir("busy", async (dir) => {
    const data = join(dir, "data");
    const first = spawnIsoload(loadArgs(tar, data));
    assert.ok(await first.reached(tar, size / 10));
    // Paused mid-load, it keeps holding the lock for as long as the others take.
    first.child.kill("SIGSTOP");
    const second = await isoload(loadArgs(tar, data));
    const served = await isoload(["serve", "--data-dir", data, "--registry-command", "/usr/bin/docker-registry"], { timeoutMs: 20_000 });
    first.child.kill("SIGCONT");
    const out = await first.output();
    assert.equal(out.code, 0, out.stderr);
    assert.equal(second.code, 7, second.stderr);
    assert.match(second.stderr, /another isoload run holds .*\/isoload\/lock \(pid \d+, load /);
    // serve either finds the records unfinished (3) or the lock held (7): both refuse, neither serves.
    assert.ok(served.code === 7 || served.code === 3, served.stderr);
    assert.match(served.stderr, /another isoload run holds|is unfinished/);
    await checkTree(data);
  });
});

Deno.test("load --mode storage: SIGKILL and SIGTERM while copying; the re-run completes", async () => {
  const { fixture, tar } = await bigFixture();
  await withTempDir("storage-crash", async (dir) => {
    const env = await containersEnv(join(dir, "containers"));
    const data = join(dir, "data");
    const args = ["load", tar, "--mode", "storage", "--data-dir", data, "--storage-conf", env.CONTAINERS_STORAGE_CONF, "--pin", "none"];
    for (const sig of ["SIGKILL", "SIGTERM"] as const) {
      const run = spawnIsoload(args);
      // Once the archive is read, the copies run: stop it among them.
      let copying = false;
      while (!copying) {
        const kids = await new Deno.Command("pgrep", { args: ["-P", String(run.child.pid), "skopeo"], stdout: "piped" }).output();
        copying = kids.code === 0;
        if (!copying) await new Promise((r) => setTimeout(r, 5));
      }
      run.child.kill(sig);
      const out = await run.output();
      if (sig === "SIGTERM") {
        assert.equal(out.code, 130, out.stderr);
        assert.match(out.stderr, /interrupted by SIGTERM/);
      } else assert.equal(out.signal, "SIGKILL");
    }
    const again = await isoload(args);
    assert.equal(again.code, 0, again.stderr);
    for (const img of fixture.images) {
      const raw = await tool("skopeo", ["inspect", "--raw", `containers-storage:${img.source}@${img.digest}`], env);
      assert.ok(raw.stdout.includes('"layers"'), img.name);
    }
  });
});
