/**
 * Bad input: each case exits non-zero with a one-line cause, leaves no blob
 * that does not match its digest, and touches nothing outside DIR.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkTree, sampleFixture, withTempDir } from "./_fixtures.ts";
import { isoload } from "./_process.ts";
import { layoutEntries, makeTar, type RawEntry } from "./_tar.ts";

async function expectRefused(entries: RawEntry[] | Uint8Array, pattern: RegExp, opts: { end?: boolean; code?: number } = {}) {
  await withTempDir("bad", async (dir) => {
    const tar = join(dir, "in.tar");
    await Deno.writeFile(tar, entries instanceof Uint8Array ? entries : makeTar(entries, { end: opts.end ?? true }));
    const outside = join(dir, "outside");
    await Deno.mkdir(outside);
    const data = join(dir, "work", "data");
    const conf = join(dir, "work", "r.conf");
    const r = await isoload(["load", tar, "--quiet", "--data-dir", data, "--registries-conf", conf], { cwd: join(dir) });
    assert.equal(r.code, opts.code ?? 3, `exit code (stderr: ${r.stderr})`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `one line: ${r.stderr}`);
    assert.match(lines[0], pattern);
    assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/, "no stack trace");
    assert.deepEqual(await checkTree(outside), [], "nothing written outside DIR");
    await assert.rejects(Deno.stat(conf), "no registries.conf written");
    await checkTree(data);
    await assert.rejects(Deno.stat(join(dir, "etc")));
  });
}

async function sampleEntries(): Promise<RawEntry[]> {
  return await layoutEntries((await sampleFixture()).fixture.dir);
}

Deno.test("load: a blob whose bytes do not match its digest is refused and never placed", async () => {
  const entries = await sampleEntries();
  const i = entries.findIndex((e) => e.name.startsWith("blobs/") && (e.data as Uint8Array).length > 100_000);
  const data = new Uint8Array(entries[i].data as Uint8Array);
  data[5000] ^= 0xff;
  entries[i] = { ...entries[i], data };
  await expectRefused(entries, /Cannot load blob sha256:[0-9a-f]{64} .*hash to sha256:/);
});

Deno.test("load: a truncated archive is refused", async () => {
  const whole = makeTar(await sampleEntries());
  await expectRefused(whole.subarray(0, Math.floor(whole.length / 2) + 100), /truncated/);
});

Deno.test("load: entries with .. or an absolute path are refused", async () => {
  const entries = await sampleEntries();
  await expectRefused([...entries.slice(0, 3), { name: "blobs/../../outside/evil", data: "x" }], /escapes the archive root/);
  await expectRefused([...entries.slice(0, 3), { name: "/tmp/evil-abs", data: "x" }], /absolute path/);
});

Deno.test("load: symlinks and hard links leading outside are refused", async () => {
  const entries = await sampleEntries();
  await expectRefused([...entries.slice(0, 3), { name: "blobs/sha256/link", type: "2", linkname: "../../../outside" }], /points outside/);
  await expectRefused([...entries.slice(0, 3), { name: "blobs/sha256/hl", type: "1", linkname: "../outside/x" }], /points outside/);
  await expectRefused([...entries.slice(0, 3), { name: "blobs/sha256/abs", type: "2", linkname: "/etc/passwd" }], /points outside/);
});

Deno.test("load: an archive of neither format is refused", async () => {
  await expectRefused(
    [{ name: "hello.txt", data: "hello" }, { name: "dir/x", data: "y" }],
    /neither an oc-mirror v2 archive .* nor an OCI image layout/,
  );
  await expectRefused(new TextEncoder().encode("this is not a tar archive at all".repeat(40)), /not a tar archive/);
});

Deno.test("load: device files and FIFOs are refused", async () => {
  const entries = await sampleEntries();
  await expectRefused([...entries.slice(0, 2), { name: "blobs/sha256/fifo", type: "6" }], /special file/);
});

Deno.test("load: a manifest naming a missing blob is refused, naming the image", async () => {
  const entries = await sampleEntries();
  const { fixture } = await sampleFixture();
  const hello = fixture.images[0];
  const manifest = JSON.parse(new TextDecoder().decode(entries.find((e) => e.name.endsWith(hello.digest.slice(7)))!.data as Uint8Array));
  const layer = manifest.layers[0].digest.slice(7);
  await expectRefused(entries.filter((e) => !e.name.endsWith(layer)), /quay\.io\/isoload-test\/hello:v1 needs layer sha256:/);
});

Deno.test("load: a malformed existing registries.conf drop-in is left byte for byte and nothing is loaded", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("badconf", async (dir) => {
    const d = join(dir, "etc", "containers", "registries.conf.d");
    await Deno.mkdir(d, { recursive: true });
    const bad = "[[registry]\nprefix = quay.io\n";
    await Deno.writeTextFile(join(d, "50-broken.conf"), bad);
    await Deno.writeTextFile(join(d, "99-isoload.conf"), bad);
    const data = join(dir, "data");
    const r = await isoload(["load", tar, "--quiet", "--data-dir", data, "--registries-conf", join(d, "99-isoload.conf")]);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /Cannot use .*99-isoload\.conf: not valid TOML/);
    assert.equal(await Deno.readTextFile(join(d, "99-isoload.conf")), bad);
    assert.equal(await Deno.readTextFile(join(d, "50-broken.conf")), bad);
    await assert.rejects(Deno.stat(data), "nothing loaded");
    // The other drop-in alone broken: refused as well, naming it.
    await Deno.remove(join(d, "99-isoload.conf"));
    const r2 = await isoload(["load", tar, "--data-dir", data, "--registries-conf", join(d, "99-isoload.conf")]);
    assert.equal(r2.code, 4);
    assert.match(r2.stderr, /50-broken\.conf/);
    await assert.rejects(Deno.stat(join(d, "99-isoload.conf")));
  });
});

Deno.test("load: an unnamed image or a name without registry is refused unless --source-registry says it", async () => {
  const entries = await sampleEntries();
  const index = JSON.parse(new TextDecoder().decode(entries[1].data as Uint8Array));
  index.manifests = [index.manifests[0]];
  index.manifests[0].annotations = { "org.opencontainers.image.ref.name": "isoload-test/hello:v1" };
  const e2 = [entries[0], { name: "index.json", data: JSON.stringify(index) }, ...entries.slice(2)];
  await expectRefused(e2, /names no registry; give --source-registry HOST/);
  index.manifests[0].annotations = { "org.opencontainers.image.ref.name": "v1" };
  await expectRefused([entries[0], { name: "index.json", data: JSON.stringify(index) }, ...entries.slice(2)], /only a tag/);
  await withTempDir("srcreg", async (dir) => {
    index.manifests[0].annotations = { "org.opencontainers.image.ref.name": "isoload-test/hello:v1" };
    await Deno.writeFile(
      join(dir, "a.tar"),
      makeTar([entries[0], { name: "index.json", data: JSON.stringify(index) }, ...entries.slice(2)]),
    );
    const r = await isoload(["inspect", join(dir, "a.tar"), "--source-registry", "quay.io", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).images[0].source, "quay.io/isoload-test/hello");
  });
});

Deno.test("load: an oc-mirror v1 archive is refused by name", async () => {
  await expectRefused([{ name: "v2/ns/repo/manifests/x", data: "{}" }, { name: "publish/.metadata.json", data: "{}" }], /oc-mirror v1/);
});

Deno.test("load: an entry claiming a size far beyond the archive is refused as truncated", async () => {
  const entries = await sampleEntries();
  entries.splice(2, 0, { name: "blobs/sha256/" + "a".repeat(64), data: "x", claimedSize: 1e12 });
  await expectRefused(entries, /truncated/);
});

Deno.test("load: a 100 MB manifest, or a 100 MB index.json, is refused by its size", async () => {
  const { createHash } = await import("node:crypto");
  const entries = await sampleEntries();
  const huge = new Uint8Array(100_000_000).fill(0x20);
  huge[0] = 0x7b;
  huge[huge.length - 1] = 0x7d;
  const digest = `sha256:${createHash("sha256").update(huge).digest("hex")}`;
  const index = JSON.parse(new TextDecoder().decode(entries[1].data as Uint8Array));
  index.manifests = [{
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest,
    size: huge.length,
    annotations: {
      "org.opencontainers.image.ref.name": "quay.io/isoload-test/huge:v1",
    },
  }];
  await expectRefused([entries[0], { name: "index.json", data: JSON.stringify(index) }, {
    name: `blobs/sha256/${digest.slice(7)}`,
    data: huge,
  }], /more than the \d+-byte limit/);
  await expectRefused([entries[0], { name: "index.json", data: huge }, ...entries.slice(2)], /index\.json: 100000000 bytes is more than/);
});

Deno.test("load: duplicate entries with different content are refused", async () => {
  const entries = await sampleEntries();
  const blob = entries.findIndex((e) => e.name.startsWith("blobs/"));
  const other = new Uint8Array(entries[blob].data as Uint8Array);
  other[0] ^= 0xff;
  await expectRefused(
    [...entries, { name: entries[blob].name, data: other }],
    /appears twice and the copy at blobs\/sha256\/[0-9a-f]{64} does not match its digest/,
  );
  await expectRefused([...entries, { name: "index.json", data: "{}" }], /index\.json appears twice with different content/);
});

Deno.test("load: PAX and GNU long names are accepted when sound", async () => {
  const entries: RawEntry[] = (await sampleEntries()).map((e) => ({ ...e, pax: { path: e.name, mtime: "1700000000.5" } }));
  entries.push({ name: `docs/${"a-long-directory-name/".repeat(8)}README.txt`, data: "ignored\n", gnuLongName: true });
  entries.push({
    name: `docs/${"another-long-name/".repeat(8)}NOTES.txt`,
    data: "ignored\n",
    pax: { path: `docs/${"another-long-name/".repeat(8)}NOTES.txt` },
  });
  await withTempDir("longnames", async (dir) => {
    await Deno.writeFile(join(dir, "long.tar"), makeTar(entries));
    const r = await isoload(["load", join(dir, "long.tar"), "--data-dir", join(dir, "data"), "--no-registries-conf"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Loaded 4 images/);
    await checkTree(join(dir, "data"));
  });
});
