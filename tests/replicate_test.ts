/**
 * Replication from peer isoload registries (`load https://PEER…`) and serving
 * while incomplete (`serve --data-dir DIR --peer URL`): real isoload
 * processes on 127.0.0.1, skopeo pulling from the replica, faults made by
 * killing real peers or serving a tree with damaged blobs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildLargeLayout, type Fixture, tarDirectory } from "../tools/payload.ts";
import { pullAll, skopeoPull } from "./_containers.ts";
import { checkTree, sampleFixture, withTempDir } from "./_fixtures.ts";
import { DirectFile } from "../src/util/direct_file.ts";
import { freePort, isoload, serve, type Served, spawnIsoload } from "./_process.ts";

const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
const expectedPull = (img: Fixture["images"][number]) =>
  img.children ? img.children.find((c) => c.platform?.architecture === arch)!.digest : img.digest;

/** Every file of a data directory's registry tree with its content, for comparing two trees. */
async function treeOf(dataDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const v2 = join(dataDir, "docker", "registry", "v2");
  for (const f of await checkTree(v2)) {
    const st = await Deno.stat(f);
    out.set(f.slice(v2.length), f.endsWith("/link") ? await Deno.readTextFile(f) : `${st.size}`);
  }
  return out;
}

/** Pulls every image of the fixture by digest, by tag and each child through registries.conf; digests must match. */
async function pullEveryWay(fixture: Fixture, conf: string, work: string): Promise<void> {
  await Deno.mkdir(work, { recursive: true });
  for (const [i, img] of fixture.images.entries()) {
    assert.equal(await skopeoPull(conf, `${img.source}@${img.digest}`, join(work, `d${i}`)), expectedPull(img), img.name);
    if (!img.name.includes("@")) assert.equal(await skopeoPull(conf, img.name, join(work, `t${i}`)), expectedPull(img), img.name);
    for (const [j, c] of (img.children ?? []).entries()) {
      assert.equal(await skopeoPull(conf, `${img.source}@${c.digest}`, join(work, `c${i}-${j}`)), c.digest);
    }
  }
}

/** Whether `dir`'s filesystem takes O_DIRECT writes from this process. */
function directWorks(dir: string): boolean {
  const path = join(dir, "direct-probe");
  const probe = DirectFile.create(path);
  probe?.abandon();
  try {
    Deno.removeSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e; // without libc, create() makes no file
  }
  return probe !== undefined;
}

/** Bytes of the files under DIR/isoload/tmp: a copy in progress. */
async function tempBytes(dataDir: string): Promise<number> {
  let n = 0;
  try {
    for await (const e of Deno.readDir(join(dataDir, "isoload", "tmp"))) {
      n += (await Deno.stat(join(dataDir, "isoload", "tmp", e.name)).catch(() => ({ size: 0 }))).size;
    }
  } catch { /* not yet */ }
  return n;
}

/** Config and layer blobs (over 1 MB) already at their final path. */
async function landedLayers(dataDir: string): Promise<number> {
  let n = 0;
  const blobs = join(dataDir, "docker", "registry", "v2", "blobs", "sha256");
  try {
    for await (const a of Deno.readDir(blobs)) {
      for await (const b of Deno.readDir(join(blobs, a.name))) {
        if ((await Deno.stat(join(blobs, a.name, b.name, "data")).catch(() => ({ size: 0 }))).size > 1 << 20) n++;
      }
    }
  } catch { /* not yet */ }
  return n;
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A slow link in front of a real peer: passes requests through and sends
 * response bodies at `bytesPerSec`. Stopping the peer behind it cuts what it
 * is sending, as a peer that goes away mid-copy would.
 */
function slowLink(upstreamPort: number, bytesPerSec: number): { port: number; sent: () => number; close(): Promise<void> } {
  let sent = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const u = new URL(req.url);
    let res: Response;
    try {
      res = await fetch(`http://127.0.0.1:${upstreamPort}${u.pathname}${u.search}`, { method: req.method, headers: req.headers });
    } catch {
      return new Response(null, { status: 502 });
    }
    const slow = new TransformStream<Uint8Array, Uint8Array>({
      async transform(chunk, out) {
        for (let o = 0; o < chunk.length; o += 64 << 10) {
          const part = chunk.subarray(o, o + (64 << 10));
          await new Promise((r) => setTimeout(r, (part.length / bytesPerSec) * 1000));
          out.enqueue(part);
          sent += part.length;
        }
      },
    });
    return new Response(res.body?.pipeThrough(slow), { status: res.status, headers: res.headers });
  });
  return { port: server.addr.port, sent: () => sent, close: () => server.shutdown() };
}

/** A big-layer fixture (so a copy can be caught mid-way), as an OCI layout tar. */
async function largeFixture(dir: string): Promise<{ fixture: Fixture; tar: string }> {
  const fixture = await buildLargeLayout(join(dir, "layout"), 4, 24 << 20);
  const tar = join(dir, "large.tar");
  await tarDirectory(fixture.dir, tar);
  return { fixture, tar };
}

Deno.test("load from a peer: the replica's tree and records are the archive load's; skopeo pulls everything from it; verify passes; a re-run writes nothing", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("replicate", async (dir) => {
    const loaded = join(dir, "loaded");
    assert.equal((await isoload(["load", tar, "--data-dir", loaded, "--no-registries-conf", "--quiet"])).code, 0);
    // One peer serving the archive in place, one serving a data directory.
    const inPlace = await serve(["--source", tar, "--listen", `127.0.0.1:${freePort()}`]);
    const fromDir = await serve(["--data-dir", loaded, "--listen", `127.0.0.1:${freePort()}`]);
    const servers: Served[] = [inPlace, fromDir];
    try {
      for (const [name, peer] of [["in-place", inPlace], ["data-dir", fromDir]] as const) {
        const replica = join(dir, `replica-${name}`);
        const port = freePort();
        const conf = join(dir, `registries-${name}.conf`);
        const args = [
          "load",
          `http://127.0.0.1:${peer.port}`,
          "--data-dir",
          replica,
          "--mirror",
          `127.0.0.1:${port}`,
          "--registries-conf",
          conf,
        ];
        const r = await isoload(args);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /Loaded 4 images from http:\/\/127\.0\.0\.1:\d+/);
        // The same tree, file for file, and the same image records as the archive load.
        assert.deepEqual(await treeOf(replica), await treeOf(loaded), name);
        const rec = JSON.parse(await Deno.readTextFile(join(replica, "isoload", "images.json")));
        const archiveRec = JSON.parse(await Deno.readTextFile(join(loaded, "isoload", "images.json")));
        assert.equal(rec.complete, true);
        assert.deepEqual(rec.images, archiveRec.images);
        assert.deepEqual([rec.blobs, rec.bytes], [archiveRec.blobs, archiveRec.bytes]);
        assert.deepEqual(rec.loads, [{ source: `http://127.0.0.1:${peer.port}`, format: "isoload-peer" }]);

        const again = await isoload(args);
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stderr, /Nothing to do/);
        assert.equal((await isoload(["verify", "--data-dir", replica])).code, 0);
        for (const cmd of [["status", "--data-dir", replica], ["mirror-config", "--data-dir", replica, "--mirror", "m:5000"]]) {
          const s = await isoload(cmd);
          assert.equal(s.code, 0, s.stderr);
        }
        const served = await serve(["--data-dir", replica, "--listen", `127.0.0.1:${port}`]);
        servers.push(served);
        await pullEveryWay(fixture, conf, join(dir, `pulls-${name}`));
        assert.equal(await served.stop(), 0);
      }
    } finally {
      for (const s of servers) await s.stop();
    }
  });
});

Deno.test("load from a peer: usage and failures exit with the documented codes", async () => {
  await withTempDir("replicate-bad", async (dir) => {
    const data = join(dir, "data");
    const dead = await isoload(["load", `http://127.0.0.1:${freePort()}`, "--data-dir", data, "--no-registries-conf"]);
    assert.equal(dead.code, 5, dead.stderr);
    assert.match(dead.stderr, /Cannot get the image list from any peer/);
    const mixed = await isoload(["load", `http://127.0.0.1:${freePort()}`, "some.tar", "--data-dir", data]);
    assert.equal(mixed.code, 2, mixed.stderr);
    const path = await isoload(["load", "https://127.0.0.1:1/v2/", "--data-dir", data]);
    assert.equal(path.code, 2, path.stderr);
    const storage = await isoload(["load", "https://127.0.0.1:5000", "--data-dir", data, "--mode", "storage"]);
    assert.equal(storage.code, 2, storage.stderr);
    // A registry that is not isoload's (no image list): refused by name.
    const { tar } = await sampleFixture();
    const loaded = join(dir, "loaded");
    assert.equal((await isoload(["load", tar, "--data-dir", loaded, "--no-registries-conf", "--quiet"])).code, 0);
    const other = await serve([
      "--data-dir",
      loaded,
      "--listen",
      `127.0.0.1:${freePort()}`,
      "--registry-command",
      "/usr/bin/docker-registry",
    ]);
    try {
      const r = await isoload(["load", `http://127.0.0.1:${other.port}`, "--data-dir", data, "--no-registries-conf"]);
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /not an isoload registry/);
    } finally {
      await other.stop();
    }
  });
});

Deno.test("load from a peer over TLS: the CA from --ca, --tls-dir or --certs-dir; without it the peer is not trusted (exit 5)", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("replicate-tls", async (dir) => {
    const tlsData = join(dir, "tls-data");
    const port = freePort();
    const peer = await serve(["--source", tar, "--data-dir", tlsData, "--tls", "--listen", `127.0.0.1:${port}`]);
    try {
      const ca = join(tlsData, "isoload", "tls", "ca.crt");
      const url = `https://127.0.0.1:${port}`;
      const untrusted = await isoload(["load", url, "--data-dir", join(dir, "r0"), "--no-registries-conf"]);
      assert.equal(untrusted.code, 5, untrusted.stderr);
      const certs = join(dir, "certs.d");
      await Deno.mkdir(join(certs, `127.0.0.1:${port}`), { recursive: true });
      await Deno.copyFile(ca, join(certs, `127.0.0.1:${port}`, "ca.crt"));
      for (
        const [i, trust] of [["--ca", ca], ["--tls-dir", join(tlsData, "isoload", "tls")], ["--certs-dir", certs]].entries()
      ) {
        const r = await isoload(["load", url, "--data-dir", join(dir, `r${i + 1}`), "--no-registries-conf", ...trust]);
        assert.equal(r.code, 0, `${trust[0]}: ${r.stderr}`);
        assert.equal((await isoload(["verify", "--data-dir", join(dir, `r${i + 1}`)])).code, 0);
      }
    } finally {
      await peer.stop();
    }
  });
});

Deno.test("load from a peer: SIGKILL mid-replication, then a re-run completes the copy", async () => {
  await withTempDir("replicate-kill", async (dir) => {
    const { fixture, tar } = await largeFixture(dir);
    const peer = await serve(["--source", tar, "--listen", `127.0.0.1:${freePort()}`]);
    const link = slowLink(peer.port, 24 << 20);
    const replica = join(dir, "replica");
    try {
      const run = spawnIsoload(["load", `http://127.0.0.1:${link.port}`, "--data-dir", replica, "--no-registries-conf", "--jobs", "2"]);
      await until(
        "a layer landed and another half-copied",
        async () => (await landedLayers(replica)) >= 1 && (await tempBytes(replica)) > 4 << 20,
      );
      run.child.kill("SIGKILL");
      const killed = await run.output();
      assert.equal(killed.signal, "SIGKILL");
      // Nothing half-written at a final path.
      await checkTree(join(replica, "docker"));
      const rec = JSON.parse(await Deno.readTextFile(join(replica, "isoload", "images.json")));
      assert.equal(rec.complete, false);
      const r = await isoload(["load", `http://127.0.0.1:${peer.port}`, "--data-dir", replica, "--no-registries-conf"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /kept [1-9]\d* already present/);
      // isoload's own permissions (the bundle's in the harness) let the copy write around the page cache wherever this
      // test, with every permission, can.
      assert.match(r.stderr, directWorks(dir) ? /Wrote [1-9]\d* of \d+ blobs over 1 MiB around the page cache/ : /through the page cache/);
      assert.equal((await isoload(["verify", "--data-dir", replica])).code, 0);
      await pullAll(replica, fixture, dir);
    } finally {
      await link.close();
      await peer.stop();
    }
  });
});

Deno.test("load from two peers: one killed mid-copy, the copy finishes from the other", async () => {
  await withTempDir("replicate-failover", async (dir) => {
    const { fixture, tar } = await largeFixture(dir);
    const dying = await serve(["--source", tar, "--listen", `127.0.0.1:${freePort()}`]);
    const staying = await serve(["--source", tar, "--listen", `127.0.0.1:${freePort()}`]);
    const slowDying = slowLink(dying.port, 16 << 20);
    const slowStaying = slowLink(staying.port, 16 << 20);
    const replica = join(dir, "replica");
    try {
      const run = spawnIsoload([
        "load",
        `http://127.0.0.1:${slowDying.port}`,
        `http://127.0.0.1:${slowStaying.port}`,
        "--data-dir",
        replica,
        "--no-registries-conf",
        "--jobs",
        "2",
      ]);
      await until("the first peer sending layers", () => Promise.resolve(slowDying.sent() > 4 << 20));
      assert.equal(await dying.stop(), 0);
      const out = await run.output();
      assert.equal(out.code, 0, out.stderr);
      assert.ok(slowDying.sent() < 4 * (24 << 20), "the killed peer did not send everything");
      assert.equal((await isoload(["verify", "--data-dir", replica])).code, 0);
      await pullAll(replica, fixture, dir);
    } finally {
      await slowDying.close();
      await slowStaying.close();
      await dying.stop();
      await staying.stop();
    }
  });
});

Deno.test("load from peers: a peer serving corrupt blobs is passed over for another; with no other peer, exit 3 naming the blob and image", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("replicate-corrupt", async (dir) => {
    const bad = join(dir, "bad");
    assert.equal((await isoload(["load", tar, "--data-dir", bad, "--no-registries-conf", "--quiet"])).code, 0);
    // Damage every layer and config (not the manifests, so the list and plan stay): same sizes, wrong bytes.
    const damaged: string[] = [];
    for (const img of fixture.images) {
      const manifests = img.children ? img.children.map((c) => c.digest) : [img.digest];
      for (const m of manifests) {
        const man = JSON.parse(await Deno.readTextFile(join(fixture.dir, "blobs", "sha256", m.slice(7))));
        for (const d of [man.config.digest, ...man.layers.map((l: { digest: string }) => l.digest)]) {
          const p = join(bad, "docker", "registry", "v2", "blobs", "sha256", d.slice(7, 9), d.slice(7), "data");
          const bytes = await Deno.readFile(p);
          if (damaged.includes(d)) continue;
          bytes[bytes.length >> 1] ^= 0xff;
          await Deno.writeFile(p, bytes);
          damaged.push(d);
        }
      }
    }
    const corrupt = await serve(["--data-dir", bad, "--listen", `127.0.0.1:${freePort()}`]);
    const good = await serve(["--source", tar, "--listen", `127.0.0.1:${freePort()}`]);
    try {
      const replica = join(dir, "replica");
      const r = await isoload([
        "load",
        `http://127.0.0.1:${corrupt.port}`,
        `http://127.0.0.1:${good.port}`,
        "--data-dir",
        replica,
        "--no-registries-conf",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /served sha256:[0-9a-f]{64} \(.*\) with bytes that do not match it; trying another peer/);
      assert.equal((await isoload(["verify", "--data-dir", replica])).code, 0);
      await pullAll(replica, fixture, dir);

      const alone = await isoload(["load", `http://127.0.0.1:${corrupt.port}`, "--data-dir", join(dir, "r2"), "--no-registries-conf"]);
      assert.equal(alone.code, 3, alone.stderr);
      assert.match(alone.stderr, /Cannot copy sha256:[0-9a-f]{64} \((config|layer) of quay\.io\/.*\): every peer that has it serves bytes/);
      await checkTree(join(dir, "r2", "docker"));
    } finally {
      await corrupt.stop();
      await good.stop();
    }
  });
});

Deno.test("serve --peer: an empty DIR serves at once; skopeo pulls every image through it; DIR keeps what was asked, the fill completes it, verify passes", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("serve-peer", async (dir) => {
    const peer = await serve(["--source", tar, "--listen", `127.0.0.1:${freePort()}`]);
    const data = join(dir, "data");
    const port = freePort();
    const conf = join(dir, "registries.conf");
    // The registries.conf a node would have: written by a load of the same images for this port.
    assert.equal(
      (await isoload(["load", tar, "--data-dir", join(dir, "c"), "--mirror", `127.0.0.1:${port}`, "--registries-conf", conf, "--quiet"]))
        .code,
      0,
    );
    try {
      // Only what is asked for: every blob that lands came through a request.
      const lazy = await serve([
        "--data-dir",
        data,
        "--peer",
        `http://127.0.0.1:${peer.port}`,
        "--no-fill",
        "--listen",
        `127.0.0.1:${port}`,
      ]);
      try {
        await pullEveryWay(fixture, conf, join(dir, "pulls-lazy"));
        const rec = JSON.parse(await Deno.readTextFile(join(data, "isoload", "images.json")));
        assert.equal(rec.complete, false);
      } finally {
        assert.equal(await lazy.stop(), 0);
      }
      // Every blob skopeo pulled is now in DIR, verified: the tagged image's layers, say.
      await checkTree(join(data, "docker"));
      const hello = fixture.images.find((i) => i.source.endsWith("/hello"))!;
      const helloManifest = JSON.parse(await Deno.readTextFile(join(fixture.dir, "blobs", "sha256", hello.digest.slice(7))));
      for (const d of [helloManifest.config.digest, ...helloManifest.layers.map((l: { digest: string }) => l.digest)]) {
        await Deno.stat(join(data, "docker", "registry", "v2", "blobs", "sha256", d.slice(7, 9), d.slice(7), "data"));
      }
      // With the fill: DIR ends complete, as a load would leave it.
      const full = await serve(["--data-dir", data, "--peer", `http://127.0.0.1:${peer.port}`, "--listen", `127.0.0.1:${port}`]);
      try {
        await until("the background fill", async () => {
          const rec = JSON.parse(await Deno.readTextFile(join(data, "isoload", "images.json")));
          return rec.complete === true;
        });
        await pullEveryWay(fixture, conf, join(dir, "pulls-full"));
      } finally {
        assert.equal(await full.stop(), 0);
      }
      assert.equal((await isoload(["verify", "--data-dir", data])).code, 0);
      assert.deepEqual(await treeOf(data), await treeOf(join(dir, "c")));
      // Complete now: it serves alone, with its peer gone.
      assert.equal(await peer.stop(), 0);
      const alone = await serve(["--data-dir", data, "--peer", `http://127.0.0.1:${freePort()}`, "--listen", `127.0.0.1:${port}`], {
        timeoutMs: 10_000,
      });
      try {
        await pullEveryWay(fixture, conf, join(dir, "pulls-alone"));
      } finally {
        assert.equal(await alone.stop(), 0);
      }
    } finally {
      await peer.stop();
    }
  });
});

Deno.test("serve --peer: concurrent requests for a missing blob copy it once; a blob no peer has right is cut, never kept", async () => {
  await withTempDir("serve-peer-once", async (dir) => {
    const { fixture, tar } = await largeFixture(dir);
    const peer = await serve(["--source", tar, "--listen", `127.0.0.1:${freePort()}`, "--access-log"]);
    const link = slowLink(peer.port, 32 << 20);
    const data = join(dir, "data");
    const port = freePort();
    const replica = await serve([
      "--data-dir",
      data,
      "--peer",
      `http://127.0.0.1:${link.port}`,
      "--no-fill",
      "--listen",
      `127.0.0.1:${port}`,
    ]);
    try {
      const img = fixture.images[0];
      const manifest = JSON.parse(await Deno.readTextFile(join(fixture.dir, "blobs", "sha256", img.digest.slice(7))));
      const layer = manifest.layers[0];
      const url = `http://127.0.0.1:${port}/v2/${img.source}/blobs/${layer.digest}`;
      const digests = await Promise.all([0, 1, 2].map(async (i) => {
        await new Promise((r) => setTimeout(r, i * 150));
        const r = await fetch(url);
        assert.equal(r.status, 200);
        const { createHash } = await import("node:crypto");
        const h = createHash("sha256");
        for await (const c of r.body!) h.update(c);
        return `sha256:${h.digest("hex")}`;
      }));
      assert.deepEqual(digests, [layer.digest, layer.digest, layer.digest]);
      const gets = peer.stderr().split("\n").filter((l) => l.startsWith(`GET /v2/${img.source}/blobs/${layer.digest}`));
      assert.equal(gets.length, 1, peer.stderr());
      await checkTree(join(data, "docker"));
    } finally {
      await replica.stop();
      await link.close();
    }

    // A peer whose copy of a layer is damaged: the download is cut short and DIR does not keep it.
    const bad = join(dir, "bad");
    assert.equal((await isoload(["load", tar, "--data-dir", bad, "--no-registries-conf", "--quiet"])).code, 0);
    const img = fixture.images[1];
    const layer = JSON.parse(await Deno.readTextFile(join(fixture.dir, "blobs", "sha256", img.digest.slice(7)))).layers[0];
    const path = join(bad, "docker", "registry", "v2", "blobs", "sha256", layer.digest.slice(7, 9), layer.digest.slice(7), "data");
    const f = await Deno.open(path, { write: true });
    await f.seek(layer.size - 1, Deno.SeekMode.Start);
    await f.write(new Uint8Array([0x55]));
    f.close();
    const corrupt = await serve(["--data-dir", bad, "--listen", `127.0.0.1:${freePort()}`]);
    const data2 = join(dir, "data2");
    const replica2 = await serve([
      "--data-dir",
      data2,
      "--peer",
      `http://127.0.0.1:${corrupt.port}`,
      "--no-fill",
      "--listen",
      `127.0.0.1:${port}`,
    ]);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/v2/${img.source}/blobs/${layer.digest}`);
      let got = 0;
      let failed = false;
      if (r.status === 200) {
        try {
          for await (const c of r.body!) got += c.length;
        } catch {
          failed = true;
        }
        assert.ok(failed || got < layer.size, "the corrupt blob was not served whole");
      } else assert.equal(r.status, 404);
      await r.body?.cancel().catch(() => {});
      assert.equal(
        await Deno.stat(join(data2, "docker", "registry", "v2", "blobs", "sha256", layer.digest.slice(7, 9), layer.digest.slice(7), "data"))
          .then(() => true, () => false),
        false,
      );
    } finally {
      await replica2.stop();
      await corrupt.stop();
      await peer.stop();
    }
  });
});
