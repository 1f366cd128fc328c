/**
 * Hostile archives, generated: a fixed seed and a bounded count of mutations
 * of a small valid archive (headers, sizes, names, link targets, manifest
 * JSON, truncation, duplicates, PAX records). For every case: exit 0 or 3
 * (bad input; never 1, a bug, nor 5, the host's fault), no stack trace,
 * nothing outside DIR, and no blob at a final path that does not match its digest.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { writeImage, writeIndex, writeLayoutIndex } from "../tools/payload.ts";
import { checkTree, withTempDir } from "./_fixtures.ts";
import { isoload } from "./_process.ts";
import { prng } from "../tools/release_payload.ts";
import { header, layoutEntries, makeTar, type RawEntry } from "./_tar.ts";

// CI runs a fixed, bounded set; FUZZ_SEED and FUZZ_CASES explore further by hand.
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 424242);
const CASES = Number(Deno.env.get("FUZZ_CASES") ?? 160);
/** A hostile archive is bad input (3) or, when its damage is harmless, loads (0): never a host failure or a bug. */
const EXPECTED = new Set([0, 3]);

/** A small valid OCI layout: a tagged image and a two-platform index, tiny layers. */
async function baseEntries(dir: string): Promise<RawEntry[]> {
  const layer = (text: string) => makeTar([{ name: "hello.txt", data: text }]);
  const a = await writeImage(dir, { layers: [layer("a\n")], cmd: ["/hello"] });
  const amd = await writeImage(dir, { layers: [layer("amd\n")], arch: "amd64" });
  const arm = await writeImage(dir, { layers: [layer("arm\n")], arch: "arm64", gzipLayers: true });
  const idx = await writeIndex(dir, [amd, arm]);
  await writeLayoutIndex(dir, [{ desc: a, name: "quay.io/fuzz/a:v1" }, { desc: idx, name: "quay.io/fuzz/multi:v1" }]);
  return await layoutEntries(dir);
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: T[]): T => xs[Math.floor(r() * xs.length)];
const bytesOf = (d: RawEntry["data"]) => (typeof d === "string" ? new TextEncoder().encode(d) : new Uint8Array(d ?? new Uint8Array()));
const digestName = (b: Uint8Array) => `blobs/sha256/${createHash("sha256").update(b).digest("hex")}`;

/** One mutation: a description and the archive bytes. */
function mutate(base: RawEntry[], r: Rand, caseDir: string): { what: string; tar: Uint8Array } {
  const entries = base.map((e) => ({ ...e }));
  const i = Math.floor(r() * entries.length);
  const e = entries[i];
  const kind = Math.floor(r() * 10);
  switch (kind) {
    case 0: { // a raw byte of a header flipped (checksum left as it is)
      const tar = makeTar(entries);
      let off = 0;
      for (let k = 0; k < i; k++) off += 512 + Math.ceil(bytesOf(entries[k].data).length / 512) * 512;
      tar[off + Math.floor(r() * 512)] ^= 1 << Math.floor(r() * 8);
      return { what: `header byte of ${e.name} flipped`, tar };
    }
    case 1: { // a header field rewritten with a valid checksum
      const tar = makeTar(entries);
      let off = 0;
      for (let k = 0; k < i; k++) off += 512 + Math.ceil(bytesOf(entries[k].data).length / 512) * 512;
      const h = header(
        { ...e, type: pick(r, ["0", "5", "1", "2", "7", "g", "K", "L", "S"]), linkname: pick(r, ["", "x", "../x"]) },
        bytesOf(e.data).length,
      );
      tar.set(h, off);
      return { what: `header of ${e.name} retyped`, tar };
    }
    case 2: // a size that lies
      entries[i] = { ...e, claimedSize: pick(r, [0, 1, 511, 513, bytesOf(e.data).length * 2, 2 ** 33, 1e11]) };
      return { what: `${e.name} claims size ${entries[i].claimedSize}`, tar: makeTar(entries) };
    case 3: // a hostile or odd name
      entries[i] = {
        ...e,
        name: pick(r, [
          "../evil",
          "/tmp/isoload-fuzz-escape",
          "a/../../b",
          "blobs/sha256/../../../x",
          "blobs/sha256/" + "0".repeat(64),
          "",
          "./index.json",
          `blobs/sha256/${"a".repeat(63)}`,
          "x".repeat(300),
        ]),
        gnuLongName: r() < 0.3,
      };
      return { what: `${e.name} renamed ${JSON.stringify(entries[i].name.slice(0, 40))}`, tar: makeTar(entries) };
    case 4: // a link where a file was, pointing in or out
      entries[i] = {
        ...e,
        type: pick(r, ["1", "2"]),
        linkname: pick(r, ["../../../etc/passwd", "/etc/passwd", join(caseDir, "outside", "x"), entries[(i + 1) % entries.length].name]),
        data: "",
      };
      return { what: `${e.name} made a link to ${entries[i].linkname}`, tar: makeTar(entries) };
    case 5: { // manifest or index JSON damaged; sometimes renamed to its new digest so it passes verification
      const j = entries.findIndex((x, k) => k >= i && bytesOf(x.data)[0] === 0x7b) >= 0
        ? entries.findIndex((x, k) => k >= i && bytesOf(x.data)[0] === 0x7b)
        : entries.findIndex((x) => x.name === "index.json");
      const data = bytesOf(entries[j].data);
      const text = new TextDecoder().decode(data);
      const changed = pick(r, [
        () => text.slice(0, Math.floor(r() * text.length)),
        () => text.replace(/sha256:[0-9a-f]{6}/, "sha256:ffffff"),
        () => text.replace(/"size":\d+/, `"size":${pick(r, [-1, 0, 1e15, 3.5])}`),
        () => text.replace(/"mediaType":"[^"]*"/, '"mediaType":"text/html"'),
        () => text.replace(/"(manifests|layers)":\[/, '"$1":[null,'),
        () => text.replace(/"schemaVersion":2/, '"schemaVersion":"two"'),
        () => "[]",
      ])();
      const bytes = new TextEncoder().encode(changed);
      const rename = entries[j].name !== "index.json" && r() < 0.5;
      entries[j] = { ...entries[j], data: bytes, name: rename ? digestName(bytes) : entries[j].name };
      return { what: `${entries[j].name} JSON damaged${rename ? " (renamed to its digest)" : ""}`, tar: makeTar(entries) };
    }
    case 6: { // truncated anywhere
      const tar = makeTar(entries);
      const at = Math.floor(r() * tar.length);
      return { what: `truncated at ${at} of ${tar.length}`, tar: tar.subarray(0, at) };
    }
    case 7: { // an entry duplicated (sometimes with other bytes), dropped, or moved
      const op = pick(r, ["dup", "dup-diff", "drop", "move"]);
      if (op === "dup") entries.push({ ...e });
      if (op === "dup-diff") {
        const d = bytesOf(e.data);
        if (d.length) d[Math.floor(r() * d.length)] ^= 0xff;
        entries.push({ ...e, data: d });
      }
      if (op === "drop") entries.splice(i, 1);
      if (op === "move") entries.push(...entries.splice(i, 1));
      return { what: `${e.name}: ${op}`, tar: makeTar(entries) };
    }
    case 8: // PAX records of every sort
      entries[i] = {
        ...e,
        pax: pick<Record<string, string>>(r, [
          { path: "../pax-escape" }, // relative: resolved against DIR or the working directory, both watched below
          { path: "../../../outside/pax-escape" }, // from DIR (case/a/b/data) up into case/outside
          { path: join(caseDir, "outside", "pax-escape") },
          { size: "99999999999" },
          { size: "-5" },
          { path: e.name, linkpath: "/etc/shadow" },
          { "GNU.sparse.major": "1", "GNU.sparse.minor": "0" },
          { path: "" },
          { path: e.name + "\0hidden" },
        ]),
      };
      return { what: `${e.name} with PAX ${JSON.stringify(entries[i].pax)}`, tar: makeTar(entries) };
    default: { // a random run of bytes overwritten anywhere
      const tar = makeTar(entries);
      const at = Math.floor(r() * tar.length);
      const len = 1 + Math.floor(r() * 64);
      for (let k = at; k < Math.min(tar.length, at + len); k++) tar[k] = Math.floor(r() * 256);
      return { what: `${len} random bytes at ${at}`, tar };
    }
  }
}

Deno.test(`fuzz: ${CASES} mutated archives (seed ${SEED}) all end cleanly`, async () => {
  await withTempDir("fuzz", async (dir) => {
    const base = await baseEntries(join(dir, "base"));
    const sanity = join(dir, "base.tar");
    await Deno.writeFile(sanity, makeTar(base));
    const ok = await isoload(["load", sanity, "--data-dir", join(dir, "base-data"), "--no-registries-conf"]);
    assert.equal(ok.code, 0, `the unmutated archive loads: ${ok.stderr}`);

    const r = prng(SEED);
    const cases = Array.from({ length: CASES }, (_, n) => {
      const caseDir = join(dir, `case-${n}`);
      return { n, caseDir, ...mutate(base, r, caseDir) };
    });
    const codes = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++];
        const data = join(c.caseDir, "a", "b", "data");
        await Deno.mkdir(join(c.caseDir, "outside"), { recursive: true });
        const tar = join(c.caseDir, "in.tar");
        await Deno.writeFile(tar, c.tar);
        // The working directory is watched too: a relative PAX path resolved against it would land in case/outside.
        const cwd = join(c.caseDir, "outside", "cwd");
        await Deno.mkdir(cwd);
        const res = await isoload(["load", tar, "--data-dir", data, "--registries-conf", join(c.caseDir, "a", "b", "r.conf")], {
          timeoutMs: 60_000,
          cwd,
        });
        const where = `case ${c.n} (${c.what})`;
        codes.set(res.code, (codes.get(res.code) ?? 0) + 1);
        assert.ok(EXPECTED.has(res.code), `${where}: exit ${res.code}: ${res.stderr}`);
        assert.doesNotMatch(res.stderr, /\bat .*\.ts:\d+|internal error|Uncaught/, `${where}: no stack trace`);
        if (res.code !== 0) assert.match(res.stderr.trim().split("\n").at(-1)!, /^isoload load: Cannot /, `${where}: one-line cause`);
        assert.deepEqual([...Deno.readDirSync(join(c.caseDir, "outside"))].map((x) => x.name), ["cwd"], `${where}: nothing outside DIR`);
        assert.deepEqual([...Deno.readDirSync(cwd)], [], `${where}: nothing in the working directory`);
        const besideData = [...Deno.readDirSync(join(c.caseDir, "a", "b"))].map((x) => x.name).filter((n) =>
          n !== "data" && n !== "r.conf"
        );
        assert.deepEqual(besideData, [], `${where}: nothing beside DIR but registries.conf`);
        assert.deepEqual(
          [...Deno.readDirSync(c.caseDir)].map((x) => x.name).sort(),
          ["a", "in.tar", "outside"],
          `${where}: nothing beside DIR`,
        );
        assert.deepEqual([...Deno.readDirSync(join(c.caseDir, "a"))].map((x) => x.name), ["b"], `${where}: nothing above DIR`);
        await checkTree(data).catch((e) => assert.fail(`${where}: ${e.message}`));
        await Deno.remove(c.caseDir, { recursive: true });
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    for (const p of ["/tmp/isoload-fuzz-escape", "/tmp/pax-escape"]) await assert.rejects(Deno.stat(p), `${p} not written`);
    console.log(`fuzz: ${CASES} cases, seed ${SEED}; exit codes: ${[...codes].sort().map(([c, k]) => `${c}×${k}`).join(", ")}`);
  });
});
