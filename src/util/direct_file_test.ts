import assert from "node:assert/strict";
import { join } from "node:path";
import { alignedView, DIRECT_ALIGN, DirectFile } from "./direct_file.ts";

/** Bytes that differ from offset to offset, so a write in the wrong place shows. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

/** Writes `pieces` through a DirectFile (each via an aligned view of a reused buffer) and returns what the file holds. */
async function writeThrough(file: DirectFile, pieces: Uint8Array[]): Promise<Uint8Array> {
  const size = Math.max(...pieces.map((p) => p.length));
  const buf = new ArrayBuffer(Math.ceil(size / DIRECT_ALIGN) * DIRECT_ALIGN + DIRECT_ALIGN);
  const view = alignedView(buf, buf.byteLength - DIRECT_ALIGN)!;
  let total = 0;
  for (const p of pieces) {
    view.fill(0xee); // stale bytes past each piece: the padding of the last write must not reach the file
    view.set(p);
    await file.write(view, p.length);
    total += p.length;
  }
  await file.finish(total);
  return await Deno.readFile(file.path);
}

Deno.test("direct_file: aligned views start on a direct-I/O boundary and keep the buffer's memory", () => {
  const buf = new ArrayBuffer(3 * DIRECT_ALIGN);
  const view = alignedView(buf, 2 * DIRECT_ALIGN);
  if (!view) return console.log("direct_file: libc cannot be loaded here; the page-cache path is the only one");
  assert.equal(view.buffer, buf);
  assert.equal(view.length, 2 * DIRECT_ALIGN);
  assert.ok(view.byteOffset < DIRECT_ALIGN);
  // The offset is the same every time for the same memory: a pool's buffer can be viewed again after a round trip.
  assert.equal(alignedView(buf, 2 * DIRECT_ALIGN)!.byteOffset, view.byteOffset);
});

/** Runs `check` with a DirectFile at a new path in a temp dir (removed after), or says why there is none here. */
async function withDirectFile(name: string, check: (file: DirectFile) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "isoload-direct-" });
  try {
    const file = DirectFile.create(join(dir, name));
    if (!file) return console.log(`direct_file: ${dir}'s filesystem or this libc refuses O_DIRECT; nothing to check`);
    await check(file);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("direct_file: whole blocks and a short last piece land byte for byte, cut to their size", () =>
  withDirectFile("blob", async (file) => {
    const pieces = [pattern(2 * DIRECT_ALIGN, 1), pattern(DIRECT_ALIGN, 2), pattern(1000, 3)];
    const got = await writeThrough(file, pieces);
    assert.equal(file.direct, true, "every piece went direct");
    assert.equal(got.length, 3 * DIRECT_ALIGN + 1000);
    assert.deepEqual(got, new Uint8Array([...pieces[0], ...pieces[1], ...pieces[2]]));
  }));

Deno.test("direct_file: a piece that cannot go direct (unaligned) goes through the page cache, and the rest after it", () =>
  withDirectFile("blob", async (file) => {
    // 1000 bytes first: the next write starts off a block boundary, which O_DIRECT cannot do.
    const pieces = [pattern(1000, 4), pattern(DIRECT_ALIGN, 5), pattern(7, 6)];
    assert.deepEqual(await writeThrough(file, pieces), new Uint8Array([...pieces[0], ...pieces[1], ...pieces[2]]));
    assert.equal(file.direct, false, "the unaligned piece and the rest went through the page cache");
  }));

Deno.test("direct_file: an empty file is created empty", () =>
  withDirectFile("empty", async (file) => {
    await file.finish(0);
    assert.equal((await Deno.stat(file.path)).size, 0);
  }));
