/**
 * `load --serve` reads the archive once: clients that pull while the load runs
 * are served from the bytes the load reads (a blob the load has not reached is
 * read next, out of order), never from a second read of the archive. The count
 * is the kernel's: every read-family system call of the isoload process on the
 * archive's path, traced with strace (tools/archive_reads.ts).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { planRelease, type ReleasePayload, type ReleasePlan, writeRelease } from "../tools/release_payload.ts";
import { archiveReads, haveStrace, straceArgs, tracedChild } from "../tools/archive_reads.ts";
import { pullEveryImage } from "../tools/pull_clients.ts";
import { waitForV2 } from "../tools/registry_process.ts";
import { fileDigest, withTempDir } from "./_fixtures.ts";
import { freePort, isoload, spawnIsoload, tool } from "./_process.ts";

Deno.test("load --serve: 4 clients and skopeo pull every image during the load, digests match, and the archive is read once", async () => {
  await withTempDir("readonce", async (dir) => {
    const plan = planRelease({ totalBytes: 480_000_000 });
    const tar = join(dir, "release.tar");
    const payload = await writeRelease(plan, { out: tar });
    const size = (await Deno.stat(tar)).size;
    const data = join(dir, "data");
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    const traced = await haveStrace();
    if (!traced) console.warn("NOTICE: strace is not installed: the archive's reads are not counted (correctness is still checked)");
    const prefix = join(dir, "trace");
    const run = spawnIsoload(
      ["load", tar, "--data-dir", data, "--no-registries-conf", "--serve", "--listen", `127.0.0.1:${port}`],
      traced ? { wrap: straceArgs(prefix) } : {},
    );
    const pid = traced ? await tracedChild(run.child.pid) : run.child.pid;
    try {
      await waitForV2(`127.0.0.1:${port}`, 60_000);
      // The archive's last layer, asked for at once: the load reads it out of order instead of after everything else.
      const layer = await lastLayerUrl(base, plan, payload);
      const early = fetch(layer.url).then(async (r) => {
        assert.equal(r.status, 200);
        return await fileDigestOf(r);
      });
      // Four clients each pull every image (every manifest, config and layer, checked), and skopeo two images.
      const skopeo = [payload.images[0], payload.images.at(-1)!].map(async (im, i) => {
        const out = join(dir, `skopeo${i}`);
        await tool("skopeo", [
          "copy",
          "--quiet",
          "--src-tls-verify=false",
          `docker://127.0.0.1:${port}/${im.repository}@${im.digest}`,
          `dir:${out}`,
        ]);
        assert.equal(await fileDigest(join(out, "manifest.json")), im.digest, "skopeo got the image's manifest");
      });
      const pulled = await pullEveryImage(base, payload.images, 4, { verify: true });
      await Promise.all(skopeo);
      assert.equal(await early, layer.digest, "the archive's last layer, asked for first, arrived whole and matching");
      const distinct = new Set<string>();
      for (const ids of plan.images) for (const id of ids) distinct.add(String(id));
      assert.equal(pulled.blobs, 4 * (distinct.size + payload.images.length), "every client got every layer and config");
      // The load finishes (its records say complete) while serving goes on.
      for (let i = 0; i < 600; i++) {
        const rec = await Deno.readTextFile(join(data, "isoload", "images.json")).catch(() => "{}");
        if (JSON.parse(rec).complete === true) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      try {
        Deno.kill(pid, "SIGTERM");
      } catch { /* it ended: its output says why */ }
    }
    const out = await run.output();
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, /The background load finished/);
    const ahead = /\((\d+) blobs, [^)]*, read ahead of the archive's order for waiting clients\)/.exec(out.stderr);
    assert.ok(ahead && Number(ahead[1]) >= 1, `clients waited for blobs the load had not reached, and got them read ahead: ${out.stderr}`);
    assert.equal((await isoload(["verify", "--data-dir", data, "--quiet"])).code, 0, "the loaded DIR verifies");
    if (traced) {
      const read = await archiveReads(prefix, [await Deno.realPath(tar)]);
      assert.ok(read >= 0.99 * size, `the count sees the load's reads (${read} of ${size} bytes)`);
      assert.ok(
        read <= 1.05 * size,
        `the archive was read once: ${read} bytes read of a ${size}-byte archive (${(read / size).toFixed(3)}×)`,
      );
    }
  });
});

Deno.test("load --serve: a blob the load has not reached in time is served from the archive in place, checked, not waited for", async () => {
  await withTempDir("meanwhile", async (dir) => {
    const plan = planRelease({ totalBytes: 480_000_000 });
    const tar = join(dir, "release.tar");
    const payload = await writeRelease(plan, { out: tar });
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    // No wait at all (10 s in use): every blob asked for before its copy starts takes the in-place path.
    const run = spawnIsoload(
      ["load", tar, "--data-dir", join(dir, "data"), "--no-registries-conf", "--serve", "--listen", `127.0.0.1:${port}`],
      { env: { ISOLOAD_MEANWHILE_AFTER_MS: "0" } },
    );
    try {
      await waitForV2(`127.0.0.1:${port}`, 60_000);
      // The archive's last layer, asked for at once, and then every image by 2 clients: all whole and matching.
      const layer = await lastLayerUrl(base, plan, payload);
      const r = await fetch(layer.url);
      assert.equal(r.status, 200);
      assert.equal(await fileDigestOf(r), layer.digest, "the last layer arrived whole and matching");
      await pullEveryImage(base, payload.images, 2, { verify: true });
    } finally {
      try {
        run.child.kill("SIGTERM");
      } catch { /* it ended: its output says why */ }
    }
    const out = await run.output();
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, /the load has not reached it after 0 s; serving it from the archive in place/);
  });
});

/** The archive's last layer (written last): its digest and its blob URL at `base`, through the manifest of an image that has it. */
async function lastLayerUrl(base: string, plan: ReleasePlan, payload: ReleasePayload): Promise<{ digest: string; url: string }> {
  const lastLayer = plan.layers.length - 1;
  const owner = plan.images.findIndex((ids) => ids.includes(lastLayer));
  const img = payload.images[owner];
  const manifest = await (await fetch(`${base}/v2/${img.repository}/manifests/${img.digest}`)).json();
  const digest = manifest.layers[plan.images[owner].indexOf(lastLayer)].digest as string;
  return { digest, url: `${base}/v2/${img.repository}/blobs/${digest}` };
}

/** The sha256 of a response's body, as a digest. */
async function fileDigestOf(r: Response): Promise<string> {
  const { createHash } = await import("node:crypto");
  const h = createHash("sha256");
  for await (const c of r.body!) h.update(c);
  return `sha256:${h.digest("hex")}`;
}
