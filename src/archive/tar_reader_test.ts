import assert from "node:assert/strict";
import { ByteReader, type ReadableFile } from "./byte_reader.ts";
import { parsePax, TarReader } from "./tar_reader.ts";
import { makeTar } from "../../tests/_tar.ts";

function memFile(bytes: Uint8Array): ReadableFile {
  let pos = 0;
  return {
    read(p) {
      if (pos >= bytes.length) return Promise.resolve(null);
      const n = Math.min(p.length, bytes.length - pos, 1000); // short reads on purpose
      p.set(bytes.subarray(pos, pos + n));
      pos += n;
      return Promise.resolve(n);
    },
  };
}

async function entries(bytes: Uint8Array, readData = true) {
  const tar = new TarReader(new ByteReader(memFile(bytes), 4096));
  const out: { name: string; kind: string; data?: string; linkname: string }[] = [];
  for await (const e of tar) {
    const data = readData && e.kind === "file" ? new TextDecoder().decode(await tar.readAll(e)) : undefined;
    out.push({ name: e.name, kind: e.kind, data, linkname: e.linkname });
  }
  return out;
}

function pax(records: Record<string, string>): string {
  return Object.entries(records).map(([k, v]) => {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    return `${len}${body}`;
  }).join("");
}

Deno.test("TarReader reads files, directories and links, with data read or skipped", async () => {
  const tar = makeTar([
    { name: "d/", type: "5" },
    { name: "d/a", data: "x".repeat(5000) },
    { name: "d/l", type: "2", linkname: "a" },
    { name: "d/b", data: "bee" },
  ]);
  assert.deepEqual((await entries(tar)).map((e) => [e.name, e.kind, e.data?.length, e.linkname]), [
    ["d/", "directory", undefined, ""],
    ["d/a", "file", 5000, ""],
    ["d/l", "symlink", undefined, "a"],
    ["d/b", "file", 3, ""],
  ]);
  assert.deepEqual((await entries(tar, false)).map((e) => e.name), ["d/", "d/a", "d/l", "d/b"]);
});

Deno.test("TarReader applies PAX path and GNU long names", async () => {
  const long = "blobs/sha256/" + "a".repeat(64) + "/" + "b".repeat(80);
  const tar = makeTar([
    { name: "PaxHeader", type: "x", data: pax({ path: long }) },
    { name: "short", data: "pax" },
    { name: "././@LongLink", type: "L", data: long + "-gnu\0" },
    { name: "short2", data: "gnu" },
  ]);
  assert.deepEqual((await entries(tar)).map((e) => [e.name, e.data]), [[long, "pax"], [`${long}-gnu`, "gnu"]]);
});

Deno.test("TarReader refuses bad checksums and truncation", async () => {
  const good = makeTar([{ name: "a", data: "hello" }]);
  const bad = new Uint8Array(good);
  bad[10] ^= 1;
  await assert.rejects(entries(bad), /checksum/);
  await assert.rejects(entries(good.subarray(0, 600)), /ends at offset/);
  await assert.rejects(entries(good.subarray(0, 300)), /truncated/);
});

Deno.test("parsePax() refuses malformed records", () => {
  assert.deepEqual([...parsePax(new TextEncoder().encode("11 path=ab\n"))], [["path", "ab"]]);
  assert.throws(() => parsePax(new TextEncoder().encode("99 path=ab\n")), SyntaxError);
});
