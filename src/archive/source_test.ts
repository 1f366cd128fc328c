import assert from "node:assert/strict";
import { join } from "node:path";
import { makeTar } from "../../tests/_tar.ts";
import { ByteReader, ConcatFile } from "./byte_reader.ts";
import { openSources, sliceSpans, spansOf } from "./source.ts";

async function withChunks<T>(bytes: Uint8Array, cuts: number[], fn: (files: string[], dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "isoload-chunks-" });
  try {
    const bounds = [0, ...cuts, bytes.length];
    const files: string[] = [];
    for (let i = 0; i + 1 < bounds.length; i++) {
      const f = join(dir, `images.tar.${String(i).padStart(2, "0")}`);
      await Deno.writeFile(f, bytes.subarray(bounds[i], bounds[i + 1]));
      files.push(f);
    }
    return await fn(files, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function readSpans(spans: { file: string; offset: number; size: number }[]): Promise<Uint8Array> {
  const out: number[] = [];
  for (const s of spans) {
    const f = await Deno.open(s.file);
    await f.seek(s.offset, Deno.SeekMode.Start);
    const b = new Uint8Array(s.size);
    let o = 0;
    while (o < s.size) o += (await f.read(b.subarray(o)))!;
    f.close();
    out.push(...b);
  }
  return new Uint8Array(out);
}

const data = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const tar = makeTar([
  { name: "a", data: data(5000, 1) },
  { name: "b", data: data(700, 2) },
  { name: "c", data: data(3000, 3) },
]);

Deno.test("ConcatFile reads across chunk boundaries and seeks into any chunk", async () => {
  await withChunks(tar, [1, 513, 700, 4000, 4001, 9000], async (files) => {
    const sizes = await Promise.all(files.map(async (f) => ({ path: f, size: (await Deno.stat(f)).size })));
    const file = new ConcatFile(sizes);
    try {
      const r = new ByteReader(file, 1024);
      const whole: number[] = [];
      for await (const c of r.chunks(tar.length)) whole.push(...c);
      assert.deepEqual(new Uint8Array(whole), tar);
      await file.seek(4000 - 3, Deno.SeekMode.Start);
      const b = new Uint8Array(6);
      let o = 0;
      while (o < 6) o += (await file.read(b.subarray(o)))!;
      assert.deepEqual(b, tar.subarray(3997, 4003));
      assert.equal(await file.seek(0, Deno.SeekMode.End), tar.length);
      assert.deepEqual(file.spans(600, 200), [{ file: files[2], offset: 87, size: 100 }, { file: files[3], offset: 0, size: 100 }]);
    } finally {
      file.close();
    }
  });
});

Deno.test("openSources() reads a split tar's chunks as one archive; each entry's location names the chunks holding it", async () => {
  for (const cuts of [[100], [512, 1024], [2000, 2001, 6000], [5632, 6400]]) {
    await withChunks(tar, cuts, async (files) => {
      const src = await openSources([...files].reverse());
      try {
        assert.equal(src.size, tar.length);
        const seen: [string, number][] = [];
        for await (const e of src) {
          const bytes = new Uint8Array(e.size);
          let o = 0;
          for await (const c of e.chunks()) {
            bytes.set(c, o);
            o += c.length;
          }
          seen.push([e.path, e.size]);
          assert.deepEqual(await readSpans(spansOf(e.where)), bytes, `${e.path} read back from its location (cuts ${cuts})`);
          const mid = sliceSpans(spansOf(e.where), 10, e.size - 20);
          assert.deepEqual(await readSpans(mid), bytes.subarray(10, e.size - 10));
        }
        assert.deepEqual(seen, [["a", 5000], ["b", 700], ["c", 3000]]);
        assert.equal(src.position, tar.length);
      } finally {
        src.close();
      }
    });
  }
});

Deno.test("openSources() names the chunk where a split tar turns corrupt", async () => {
  const bad = new Uint8Array(tar);
  bad[5632 + 10] ^= 1; // the header of b, in the second chunk
  await withChunks(bad, [5000], async (files) => {
    const src = await openSources(files);
    await assert.rejects(
      async () => {
        for await (const _ of src) { /* read */ }
      },
      (e: Error) => /bad tar header checksum/.test(e.message) && e.message.includes(`of ${files[1]}`),
    );
  });
});
