/**
 * Sources in several files, with the real tools: an oc-mirror archive in
 * parts (blobs spread across them, as archiveSize makes it) and an OCI layout
 * tar cut into chunks at arbitrary byte offsets (mid-header and mid-blob, as
 * ISO 9660 tooling splits big files) are inspected, loaded, served in place and
 * pulled with skopeo by digest and by tag; missing and extra parts are named.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { buildOcMirrorArchive } from "../tools/oc_mirror_fixture.ts";
import { splitFile } from "../tools/payload.ts";
import type { Fixture } from "../tools/payload.ts";
import { skopeoPull } from "./_containers.ts";
import { fileDigest, sampleFixture, withTempDir } from "./_fixtures.ts";
import { freePort, isoload, serve, tool } from "./_process.ts";
import { mirrorRepositoryFor } from "../src/image/reference.ts";

const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";

/** The manifest digest skopeo stores for an image (this host's child for an index). */
function stored(img: Fixture["images"][number]): string {
  return img.children ? img.children.find((c) => c.platform?.architecture === arch)!.digest : img.digest;
}

/**
 * Pulls every image from a registry at 127.0.0.1:port directly, by digest and by tag; digests must match.
 * `served` (inspect's images) says which repository serves each (oc-mirror's own names for its archives).
 */
async function pullDirect(port: number, fixture: Fixture, served: { digest: string; repository: string }[], work: string): Promise<void> {
  for (const [i, img] of fixture.images.entries()) {
    const repo = `127.0.0.1:${port}/${served.find((s) => s.digest === img.digest)!.repository}`;
    const refs = [`${repo}@${img.digest}`];
    if (!img.name.includes("@")) refs.push(`${repo}:${img.name.slice(img.name.lastIndexOf(":") + 1)}`);
    for (const [j, ref] of refs.entries()) {
      const out = join(work, `direct-${port}-${i}-${j}`);
      await tool("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `dir:${out}`]);
      assert.equal(await fileDigest(join(out, "manifest.json")), stored(img), ref);
    }
  }
}

/** Loads SOURCE… into DIR, serves DIR with docker-registry, pulls by source digest and tag through the written registries.conf. */
async function loadAndPull(sources: string[], fixture: Fixture, dir: string): Promise<void> {
  const port = freePort();
  const data = join(dir, "data");
  const conf = join(dir, "registries.conf");
  const load = await isoload(["load", ...sources, "--data-dir", data, "--mirror", `127.0.0.1:${port}`, "--registries-conf", conf]);
  assert.equal(load.code, 0, load.stderr);
  const served = await serve(["--data-dir", data, "--listen", `127.0.0.1:${port}`, "--registry-command", "/usr/bin/docker-registry"]);
  try {
    for (const img of fixture.images) {
      assert.equal(await skopeoPull(conf, `${img.source}@${img.digest}`, join(dir, `pull-${img.digest.slice(7, 19)}`)), stored(img));
      if (!img.name.includes("@")) {
        assert.equal(await skopeoPull(conf, img.name, join(dir, `tag-${img.digest.slice(7, 19)}`)), stored(img), img.name);
      }
    }
  } finally {
    assert.equal(await served.stop(), 0);
  }
  const again = await isoload(["load", ...sources, "--data-dir", data, "--mirror", `127.0.0.1:${port}`, "--registries-conf", conf]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /Nothing to do/);
  const records = JSON.parse(await Deno.readTextFile(join(data, "isoload", "images.json")));
  assert.equal(records.loads.length, 1, "a re-run of the same parts is the same load");
}

/** Entries of a tar with the byte offset of their data and their size (GNU tar -tvR). */
async function tarLayout(tar: string): Promise<{ name: string; data: number; size: number }[]> {
  const out = (await tool("tar", ["-tvR", "-f", tar])).stdout;
  const list: { name: string; data: number; size: number }[] = [];
  for (const line of out.split("\n")) {
    const m = /^block (\d+): \S+ \S+\s+(\d+) \S+ \S+ (.+)$/.exec(line);
    if (m) list.push({ name: m[3], data: (Number(m[1]) + 1) * 512, size: Number(m[2]) });
  }
  return list;
}

Deno.test("multi-part oc-mirror archive: blobs spread over parts; inspect, load (parts and glob) and serve --source in place all pull every image", async () => {
  const { fixture } = await sampleFixture();
  await withTempDir("mp-ocm", async (dir) => {
    const one = join(dir, "one", "mirror_000001.tar");
    for (const d of ["one", "w1", "w3"]) await Deno.mkdir(join(dir, d));
    await buildOcMirrorArchive(fixture, join(dir, "w1"), one);
    const parts = join(dir, "parts");
    await buildOcMirrorArchive(fixture, join(dir, "w3"), parts, { parts: 3 });
    const files = (await Array.fromAsync(Deno.readDir(parts))).map((e) => join(parts, e.name)).sort();
    assert.deepEqual(files.map((f) => basename(f)), ["mirror_000001.tar", "mirror_000002.tar", "mirror_000003.tar"]);
    for (const f of files) {
      assert.match((await tool("tar", ["-tf", f])).stdout, /blobs\/sha256\/..\/[0-9a-f]{64}\/data/, `${f} holds blobs`);
    }
    assert.doesNotMatch((await tool("tar", ["-tf", files[0]])).stdout, /working-dir/, "the mirror sets are in a later part");

    // inspect: the parts in any order, or a glob, report what the single tar reports.
    const single = JSON.parse((await isoload(["inspect", "--json", one])).stdout);
    const r = await isoload(["inspect", "--json", files[2], files[0], files[1]]);
    assert.equal(r.code, 0, r.stderr);
    const multi = JSON.parse(r.stdout);
    assert.deepEqual(multi.parts, files, "parts are read in their numeric order");
    assert.deepEqual(multi.images, single.images);
    assert.equal(multi.blobs, single.blobs);
    const glob = JSON.parse((await isoload(["inspect", "--json", join(parts, "mirror_*.tar")])).stdout);
    assert.deepEqual(glob.images, single.images);
    const text = await isoload(["inspect", join(parts, "mirror_*.tar")]);
    assert.match(text.stdout, /Parts: +\S+mirror_000001\.tar\n +\S+mirror_000002\.tar\n +\S+mirror_000003\.tar/);

    await loadAndPull([join(parts, "mirror_*.tar")], fixture, join(dir, "glob"));
    await loadAndPull(files, fixture, join(dir, "list"));

    // In place, from every part: --source repeated, and as a glob.
    for (const args of [files.flatMap((f) => ["--source", f]), ["--source", join(parts, "mirror_*.tar")]]) {
      const port = freePort();
      const s = await serve([...args, "--listen", `127.0.0.1:${port}`]);
      try {
        assert.match(s.stderr(), /3 parts/);
        await pullDirect(port, fixture, single.images, dir);
      } finally {
        assert.equal(await s.stop(), 0);
      }
    }
  });
});

Deno.test("split OCI layout tar: chunks cut mid-header and mid-blob load, serve in place (ranges across a cut) and pull", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("mp-split", async (dir) => {
    const layout = await tarLayout(tar);
    const big = layout.reduce((a, b) => (b.size > a.size ? b : a));
    const small = layout.find((e) => e.size > 0 && e.size < 2000 && e.name.startsWith("blobs/"))!;
    // Inside the largest blob's data, and inside a header (100 bytes into the 512 before a small entry's data).
    const cutInBlob = big.data + Math.floor(big.size / 2);
    const cuts = [small.data - 412, cutInBlob, cutInBlob + 777];
    const chunks = await splitFile(tar, cuts, join(dir, "images.tar."));
    assert.equal(chunks.length, 4);

    const r = await isoload(["inspect", "--json", join(dir, "images.tar.*")]);
    assert.equal(r.code, 0, r.stderr);
    const { images } = JSON.parse((await isoload(["inspect", "--json", tar])).stdout);
    assert.deepEqual(JSON.parse(r.stdout).images, images);

    await loadAndPull([join(dir, "images.tar.*")], fixture, join(dir, "load"));

    const port = freePort();
    const s = await serve(["--source", join(dir, "images.tar.*"), "--listen", `127.0.0.1:${port}`]);
    try {
      await pullDirect(port, fixture, images, dir);
      // A range across the first cut inside the big blob, asked of a blob not yet served whole: the bytes are the archive's.
      const digest = `sha256:${big.name.slice(big.name.lastIndexOf("/") + 1)}`;
      const from = Math.floor(big.size / 2) - 100;
      let res: Response | undefined;
      for (const img of fixture.images) {
        res = await fetch(`http://127.0.0.1:${port}/v2/${mirrorRepositoryFor(img.source)}/blobs/${digest}`, {
          headers: { Range: `bytes=${from}-${from + 999}` },
        });
        if (res.status !== 404) break;
        await res.body?.cancel();
      }
      assert.equal(res!.status, 206);
      const got = new Uint8Array(await res!.arrayBuffer());
      const whole = await Deno.readFile(tar);
      assert.deepEqual(got, whole.subarray(big.data + from, big.data + from + 1000));
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });
});

Deno.test("multi-part sources: a missing or extra part, or a glob matching nothing, is refused naming it (exit 3)", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("mp-bad", async (dir) => {
    const parts = join(dir, "parts");
    await Deno.mkdir(join(dir, "w"));
    await buildOcMirrorArchive(fixture, join(dir, "w"), parts, { parts: 3 });
    const p = (n: number) => join(parts, `mirror_00000${n}.tar`);
    const data = join(dir, "data");
    const cases: [string[], RegExp][] = [
      [["inspect", p(1), p(3)], /part \S+mirror_000002\.tar is missing/],
      [
        ["load", p(1), p(2), "--data-dir", data, "--no-registries-conf"],
        /part \S+mirror_000003\.tar belongs with the parts given but was not given/,
      ],
      [["inspect", p(1)], /mirror_000002\.tar belongs with the parts given/],
      [["inspect", p(2), p(3)], /part \S+mirror_000001\.tar is missing/],
      [
        ["inspect", p(1), p(2), p(3), tar],
        /Cannot use \S+sample-oci\.tar as a part of the same source as \S+mirror_000001\.tar: it is an extra part/,
      ],
      [["inspect", join(dir, "nothing_*.tar")], /nothing_\*\.tar: the pattern matches no file/],
      [["inspect", parts, p(1)], /a directory is a whole source on its own/],
    ];
    // A second series beside the first: mirror_000001.tar twice.
    await Deno.mkdir(join(dir, "other"));
    await Deno.copyFile(p(1), join(dir, "other", "mirror_000001.tar"));
    cases.push([
      ["inspect", p(1), p(2), p(3), join(dir, "other", "mirror_000001.tar")],
      /other\/mirror_000001\.tar as a part: it is an extra part/,
    ]);
    // Chunks: a gap, and a chunk that is not a continuation (the end of the tar comes before it).
    const chunks = await splitFile(tar, [100_000, 200_000], join(dir, "images.tar."));
    cases.push([["inspect", chunks[0], chunks[2]], /chunk \S+images\.tar\.01 is missing/]);
    await Deno.copyFile(tar, join(dir, "images.tar.03"));
    cases.push([["inspect", join(dir, "images.tar.*")], /before \S+images\.tar\.03: that chunk is an extra one/]);
    for (const [args, want] of cases) {
      const r = await isoload(args);
      assert.equal(r.code, 3, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, want, args.join(" "));
    }
    assert.equal(await Deno.stat(data).then(() => true, () => false), false, "a refused load writes nothing");
    const port = freePort();
    const s = await isoload(["serve", "--source", p(1), "--source", p(3), "--listen", `127.0.0.1:${port}`]);
    assert.equal(s.code, 3);
    assert.match(s.stderr, /mirror_000002\.tar is missing/);
  });
});

Deno.test("load into a tmpfs: refused past half of the memory available (exit 5, numbers given, nothing written); allowed with --allow-ram-target; blobs there count", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("ramtarget", async (dir) => {
    const mnt = join(dir, "var");
    await Deno.mkdir(mnt);
    await tool("mount", ["-t", "tmpfs", "-o", "size=64m", "isoload-test", mnt]);
    try {
      assert.equal((await tool("stat", ["-f", "-c", "%T", mnt])).stdout.trim(), "tmpfs");
      const data = join(mnt, "lib", "isoload");
      const args = ["load", tar, "--data-dir", data, "--no-registries-conf"];
      // The sample is ~5 MB: with 4 MB of memory available, half is 2 MB.
      const env = { ISOLOAD_TEST_MEMAVAILABLE: String(4_000_000) };
      const refused = await isoload(args, { env });
      assert.equal(refused.code, 5, refused.stderr);
      assert.match(
        refused.stderr,
        /it would write 5\.\d+ MB into a tmpfs \(RAM\), more than half of the 4\.00 MB of memory available \(limit 2\.00 MB\)/,
      );
      assert.match(refused.stderr, /--allow-ram-target/);
      assert.deepEqual(await Array.fromAsync(Deno.readDir(mnt)), [], "nothing was written");
      // Storage mode's scratch lies in DIR too.
      const storage = await isoload(["load", tar, "--data-dir", data, "--mode", "storage", "--pin", "none"], { env });
      assert.equal(storage.code, 5, storage.stderr);
      assert.match(storage.stderr, /into a tmpfs/);
      assert.deepEqual(await Array.fromAsync(Deno.readDir(mnt)), [], "nothing was written in storage mode either");

      const allowed = await isoload([...args, "--allow-ram-target"], { env });
      assert.equal(allowed.code, 0, allowed.stderr);
      // Re-run: the blobs are already in DIR, so nothing more would go to memory.
      const again = await isoload(args, { env });
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /Nothing to do/);
      await pullAllFrom(data, fixture, dir);
      // With the machine's real memory figure, a small archive goes into a tmpfs with no flag.
      const real = await isoload(["load", tar, "--data-dir", join(mnt, "real"), "--no-registries-conf"]);
      assert.equal(real.code, 0, real.stderr);
    } finally {
      await tool("umount", [mnt]);
    }
  });
});

/** Serves DIR with the built-in registry and pulls every image by digest from it. */
async function pullAllFrom(data: string, fixture: Fixture, work: string): Promise<void> {
  const port = freePort();
  const s = await serve(["--data-dir", data, "--listen", `127.0.0.1:${port}`]);
  try {
    const { images } = JSON.parse((await isoload(["inspect", "--json", data])).stdout);
    await pullDirect(port, fixture, images, work);
  } finally {
    assert.equal(await s.stop(), 0);
  }
}
