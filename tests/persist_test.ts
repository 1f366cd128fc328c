/**
 * A control-plane node that still has its ISO (`serve --data-dir DIR --source
 * ARCHIVE --persist | --peer URL…`): it serves the archive in place at once,
 * copies it into DIR meanwhile, and once the archive is gone serves DIR alone;
 * an archive that cannot be read hands over to the peers; a peer list naming
 * the node itself is skipped. And `status` says where the images come from and
 * how much is local. Real isoload processes on 127.0.0.1, skopeo pulling.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pullAll } from "./_containers.ts";
import { corruptLayerArchive, sampleFixture, withTempDir } from "./_fixtures.ts";
import type { Fixture } from "../tools/payload.ts";
import { freePort, isoload, serve, tool } from "./_process.ts";

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Pulls every image with skopeo from 127.0.0.1:PORT into a fresh directory under `work`. */
async function pullEverything(fixture: Fixture, work: string, port: number): Promise<void> {
  await Deno.mkdir(work, { recursive: true });
  await pullAll(undefined, fixture, work, port);
}

/** `isoload status --json`'s registry part. */
async function statusOf(dataDir: string) {
  const r = await isoload(["status", "--data-dir", dataDir, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).registry;
}

/**
 * While the serve goes on, `status` says the copy stopped and why, in --json and in text, and no longer that the
 * disk is being copied to or filled.
 */
async function assertCopyStopped(data: string, cause: RegExp, stillServing: string): Promise<void> {
  await until("the copy's failure in the state file", async () => (await statusOf(data)).serving.copy.state === "stopped");
  const st = await statusOf(data);
  assert.equal(st.serving.running, true);
  assert.equal(st.serving.answering, true);
  assert.deepEqual(st.serving.origin.filling, true, "the serve was set to copy");
  assert.match(st.serving.copy.error, cause);
  assert.doesNotMatch(st.serving.copy.error, /\n/);
  assert.equal(st.serving.copy.stillServing, stillServing);
  assert.equal(st.complete, false);
  const text = (await isoload(["status", "--data-dir", data])).stdout;
  assert.match(text, /^Registry tree: +UNFINISHED \(the running serve's copy into it stopped: see Disk copy\)/m);
  assert.match(text, /^Disk copy: +STOPPED \(.*\): .*; still serving .* meanwhile$/m);
  assert.ok(text.includes(`: ${st.serving.copy.error}; still serving ${stillServing} meanwhile\n`), text);
  assert.match(text, /^Images from: +this node's disk \(.*\), then the archive in place \([^,]*\)$/m);
  assert.doesNotMatch(text, /being copied|being filled/);
}

Deno.test("serve --source --persist: serves the ISO in place, keeps it on disk, then serves the disk once the ISO is gone; status says so", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("persist", async (dir) => {
    const iso = join(dir, "iso");
    await Deno.mkdir(iso);
    const archive = join(iso, "images.tar");
    await Deno.copyFile(tar, archive);
    const data = join(dir, "var-lib-isoload");
    const port = freePort();
    const first = await serve(["--data-dir", data, "--source", archive, "--persist", "--listen", `127.0.0.1:${port}`]);
    try {
      await pullEverything(fixture, join(dir, "pulls-iso"), port);
      await until("the background copy", async () => (await statusOf(data)).complete === true);
      // The records say complete just before the serve records the copy's end.
      await until("the copy's end in the state file", async () => (await statusOf(data)).serving.copy.state === "complete");
      const st = await statusOf(data);
      assert.deepEqual(st.serving.origin, { inPlace: [archive], dataDir: data, filling: true });
      assert.equal(st.serving.running, true);
      assert.equal(st.complete, true);
      assert.equal(st.serving.copy.error, undefined);
      assert.ok(Date.parse(st.serving.copy.at) >= Date.parse(st.serving.started));
      assert.equal(st.local.imagesComplete, fixture.images.length);
      assert.equal(st.local.imagesTotal, fixture.images.length);
      assert.equal(st.local.blobs, st.local.blobsTotal);
      assert.equal(st.local.bytes, st.local.bytesTotal);
      const text = await isoload(["status", "--data-dir", data]);
      assert.match(text.stdout, /^Registry tree: +complete:/m);
      assert.match(
        text.stdout,
        /^Images from: +this node's disk \(.*\), then the archive in place \(.*images\.tar, copied to the disk\)$/m,
      );
      assert.match(text.stdout, /^Disk copy: +complete \(.*\): every blob is served from this node's disk$/m);
      assert.doesNotMatch(text.stdout, /being copied|being filled/);
      assert.match(
        text.stdout,
        new RegExp(`^On this disk: +(\\d+) of \\1 blobs .*, ${fixture.images.length} of ${fixture.images.length} images complete$`, "m"),
      );
    } finally {
      assert.equal(await first.stop(), 0, first.stderr());
    }
    // What was served last keeps the copy's outcome.
    const last = await statusOf(data);
    assert.deepEqual([last.serving.running, last.serving.copy.state], [false, "complete"]);
    assert.equal((await isoload(["verify", "--data-dir", data])).code, 0);

    // The ISO is ejected: the same command serves the complete disk and never reads the archive.
    await Deno.remove(archive);
    const second = await serve(["--data-dir", data, "--source", archive, "--persist", "--listen", `127.0.0.1:${port}`]);
    try {
      assert.match(second.stderr(), /is complete: serving it; neither .* nor the peers are read/);
      await pullEverything(fixture, join(dir, "pulls-disk"), port);
      const st = await statusOf(data);
      assert.deepEqual(st.serving.origin, { dataDir: data });
      assert.equal(st.serving.copy, undefined, "nothing to copy");
      assert.equal(st.local.imagesComplete, fixture.images.length);
    } finally {
      assert.equal(await second.stop(), 0, second.stderr());
    }
  });
});

Deno.test("serve --source --persist: a data directory with no room (or in RAM) fails the copy, and the ISO goes on being served in place", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("persist-full", async (dir) => {
    const disk = join(dir, "disk");
    await Deno.mkdir(disk);
    // A 1 MB filesystem cannot take the sample: the copy is refused, and restarting would only be refused again.
    await tool("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", disk]);
    try {
      const port = freePort();
      const data = join(disk, "data");
      const served = await serve(["--data-dir", data, "--source", tar, "--persist", "--listen", `127.0.0.1:${port}`]);
      try {
        await until("the copy's failure", () => Promise.resolve(/background load stopped/.test(served.stderr())));
        assert.match(served.stderr(), /background load stopped \(Cannot .*\); still serving from the archive in place/);
        await pullEverything(fixture, join(dir, "pulls"), port);
        await assertCopyStopped(data, /^Cannot load .* it needs about .* has .* free/, "from the archive in place");
      } finally {
        assert.equal(await served.stop(), 5, "the copy's failure is the exit code once stopped: " + served.stderr());
      }
      const last = await statusOf(data);
      assert.deepEqual([last.serving.running, last.serving.copy.state, last.serving.copy.stillServing], [false, "stopped", undefined]);
      assert.match((await isoload(["status", "--data-dir", data])).stdout, /^Disk copy: +stopped \(.*\): Cannot .*$/m);
    } finally {
      await tool("umount", [disk]);
    }

    // A RAM-backed DIR (the live ISO's /var) with room to spare is refused too, before any write, and says so.
    const ram = join(dir, "ram");
    await Deno.mkdir(ram);
    await tool("mount", ["-t", "tmpfs", "tmpfs", ram]);
    try {
      const port = freePort();
      const data = join(ram, "data");
      const env = { ISOLOAD_TEST_MEMAVAILABLE: String(4_000_000) };
      const served = await serve(["--data-dir", data, "--source", tar, "--persist", "--listen", `127.0.0.1:${port}`], { env });
      try {
        await assertCopyStopped(data, /^Cannot load .* into a tmpfs \(RAM\)/, "from the archive in place");
      } finally {
        assert.equal(await served.stop(), 5, served.stderr());
      }
    } finally {
      await tool("umount", [ram]);
    }
  });
});

Deno.test("serve --source --persist: a corrupt blob stops the copy, not the registry: the rest goes on being served in place", async () => {
  await withTempDir("persist-corrupt", async (dir) => {
    const { tar: bad, layout, layer } = await corruptLayerArchive(dir, 3_000_000);
    const port = freePort();
    const data = join(dir, "data");
    const served = await serve(["--data-dir", data, "--source", bad, "--persist", "--listen", `127.0.0.1:${port}`]);
    try {
      await until("the copy's failure", () => Promise.resolve(/background load stopped/.test(served.stderr())));
      assert.match(served.stderr(), /background load stopped \(.*\); still serving from the archive in place/);
      // The other image pulls whole (skopeo, digests checked).
      await pullEverything({ ...layout, images: [layout.images[1]] }, join(dir, "other"), port);
      const url = `http://127.0.0.1:${port}/v2/${layout.images[0].source}/blobs/${layer}`;
      await assert.rejects(async () => await (await fetch(url)).arrayBuffer(), "the corrupt blob's GET is cut before its end");
      const again = await fetch(url);
      await again.body?.cancel();
      assert.equal(again.status, 404, "then it is withheld");
      await assertCopyStopped(data, new RegExp(layer.slice(7)), "from the archive in place");
    } finally {
      assert.equal(await served.stop(), 3, "the copy's failure (bad input) is the exit code once stopped: " + served.stderr());
    }
  });
});

Deno.test("serve --source --persist: DIR held by another run stops the copy, not the registry; status says why", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("persist-busy", async (dir) => {
    const data = join(dir, "data");
    await Deno.mkdir(join(data, "isoload"), { recursive: true });
    // Another run holds DIR's lock (flock(1) takes the same lock isoload does) for as long as the test needs.
    const holder = new Deno.Command("flock", { args: [join(data, "isoload", "lock"), "sleep", "300"], stdout: "null", stderr: "null" })
      .spawn();
    try {
      const lock = join(data, "isoload", "lock");
      await until(
        "the other run's lock",
        async () => (await new Deno.Command("flock", { args: ["-n", lock, "true"] }).output()).code !== 0,
      );
      const port = freePort();
      const served = await serve(["--data-dir", data, "--source", tar, "--persist", "--listen", `127.0.0.1:${port}`]);
      try {
        await assertCopyStopped(data, /another isoload run holds/, "from the archive in place");
        await pullEverything(fixture, join(dir, "pulls"), port);
      } finally {
        assert.equal(await served.stop(), 7, "busy is the exit code once stopped: " + served.stderr());
      }
    } finally {
      holder.kill();
      await holder.status;
    }
  });
});

Deno.test("serve --source --peer: an ISO that cannot be read hands over to the peers; a peer that is this very process is skipped", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("persist-peers", async (dir) => {
    const peer = await serve(["--source", tar, "--listen", `127.0.0.1:${freePort()}`]);
    const data = join(dir, "data");
    const port = freePort();
    // The node's own address first: api-int resolving to this node. Its own registry answers 508 with its instance id.
    const node = await serve([
      "--data-dir",
      data,
      "--source",
      join(dir, "no-iso", "mirror_*.tar"),
      "--peer",
      `http://127.0.0.1:${port}`,
      "--peer",
      `http://127.0.0.1:${peer.port}`,
      "--listen",
      `127.0.0.1:${port}`,
    ]);
    try {
      assert.match(node.stderr(), /cannot serve .*no-iso.* in place .*: serving .* with the peers behind it instead/);
      await pullEverything(fixture, join(dir, "pulls"), port);
      await until("the background fill", async () => (await statusOf(data)).complete === true);
      await until("the fill's end in the state file", async () => (await statusOf(data)).serving.copy.state === "complete");
      assert.match(node.stderr(), /skipping peer http:\/\/127\.0\.0\.1:\d+: it is this isoload itself/);
      const st = await statusOf(data);
      assert.deepEqual(st.serving.origin, {
        dataDir: data,
        peers: [`http://127.0.0.1:${port}`, `http://127.0.0.1:${peer.port}`],
        filling: true,
      });
      assert.equal(st.local.imagesComplete, fixture.images.length);
      const text = await isoload(["status", "--data-dir", data]);
      assert.match(
        text.stdout,
        /^Images from: +this node's disk \(.*\), then peers http:\/\/127\.0\.0\.1:\d+, http:\/\/127\.0\.0\.1:\d+ \(copied/m,
      );
      assert.match(text.stdout, /^Registry tree: +complete:/m);
      assert.match(text.stdout, /^Disk copy: +complete \(.*\): every blob is served from this node's disk$/m);
      // A request carrying the node's own instance id is refused at once; its answers name the instance.
      const r = await fetch(`http://127.0.0.1:${port}/v2/`);
      await r.body?.cancel();
      assert.match(r.headers.get("Isoload-Instance") ?? "", /^[0-9a-f-]{36}$/);
      const loop = await fetch(`http://127.0.0.1:${port}/v2/`, { headers: { "Isoload-Instance": r.headers.get("Isoload-Instance")! } });
      await loop.body?.cancel();
      assert.equal(loop.status, 508);
    } finally {
      assert.equal(await node.stop(), 0, node.stderr());
      await peer.stop();
    }
    assert.equal((await isoload(["verify", "--data-dir", data])).code, 0);
  });
});

Deno.test("serve --persist: usage rules", async () => {
  for (
    const [args, re] of [
      [["--persist", "--data-dir", "/tmp/x"], /--persist goes with --source/],
      [["--source", "/tmp/a.tar", "--persist"], /--source with --persist needs --data-dir/],
      [["--source", "/tmp/a.tar", "--peer", "https://a:1"], /--source with --peer needs --data-dir/],
      [["--source", "/tmp/a.tar", "--data-dir", "/tmp/x", "--no-fill"], /--no-fill goes with --peer/],
    ] as const
  ) {
    const r = await isoload(["serve", ...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, re);
  }
});
