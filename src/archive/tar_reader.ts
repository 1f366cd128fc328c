/**
 * A streaming reader of POSIX tar archives (ustar, PAX and GNU long names),
 * strict about what it accepts: bad checksums, bad numbers and truncation are
 * errors, never guesses. Data not read by the caller is skipped by seeking.
 */
import { type ByteReader, TruncatedError } from "./byte_reader.ts";
import { collectChunks } from "../util/bytes.ts";

/** What an entry is, reduced to the kinds isoload cares about. */
export type TarEntryKind = "file" | "directory" | "symlink" | "hardlink" | "special";

/** One archive member. */
export interface TarEntry {
  /** Path as recorded (PAX/GNU long names applied), not yet normalised. */
  name: string;
  kind: TarEntryKind;
  /** The raw typeflag character, for messages. */
  typeflag: string;
  size: number;
  linkname: string;
  /** Absolute offset of the entry's data in the archive. */
  dataOffset: number;
}

const BLOCK = 512;
// Metadata records (PAX, GNU long names) are tiny in sound archives; a huge one is hostile.
const MAX_META = 1 << 20;
const decoder = new TextDecoder("utf-8", { fatal: false });

function cString(b: Uint8Array, off: number, len: number): string {
  const field = b.subarray(off, off + len);
  const nul = field.indexOf(0);
  return decoder.decode(nul === -1 ? field : field.subarray(0, nul));
}

/** Parses a numeric field: octal text, or GNU base-256 when the high bit is set. */
export function parseNumber(b: Uint8Array, off: number, len: number, what: string): number {
  const field = b.subarray(off, off + len);
  if (field[0] & 0x80) {
    if (field[0] === 0xff) throw new SyntaxError(`negative ${what} in base-256`);
    let v = field[0] & 0x7f;
    for (let i = 1; i < field.length; i++) {
      v = v * 256 + field[i];
      if (v > Number.MAX_SAFE_INTEGER) throw new SyntaxError(`${what} too large`);
    }
    return v;
  }
  const text = decoder.decode(field).replace(/[\0 ]+$/, "").replace(/^ +/, "");
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new SyntaxError(`${what} field is not an octal number: ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

function checksumOk(h: Uint8Array): boolean {
  const recorded = parseNumber(h, 148, 8, "checksum");
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 32 : h[i];
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return recorded === unsigned || recorded === signed;
}

function kindOf(flag: string): TarEntryKind {
  switch (flag) {
    case "0":
    case "\0":
    case "7":
    case "":
      return "file";
    case "5":
      return "directory";
    case "2":
      return "symlink";
    case "1":
      return "hardlink";
    default:
      return "special";
  }
}

/** Parses PAX extended header records ("<len> <key>=<value>\n"). */
export function parsePax(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break;
    let sp = i;
    while (sp < data.length && data[sp] !== 0x20) sp++;
    const len = Number(decoder.decode(data.subarray(i, sp)));
    if (!Number.isInteger(len) || len <= sp - i || i + len > data.length) {
      throw new SyntaxError(`malformed PAX record at byte ${i}`);
    }
    const rec = decoder.decode(data.subarray(sp + 1, i + len - 1));
    const eq = rec.indexOf("=");
    if (eq <= 0 || data[i + len - 1] !== 0x0a) throw new SyntaxError(`malformed PAX record at byte ${i}`);
    out.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

/**
 * Reads a tar archive entry by entry. Consume `data()` of an entry before
 * asking for the next one, or leave it and it is skipped.
 *
 * @example
 * ```ts
 * const tar = new TarReader(new ByteReader(await Deno.open("a.tar")));
 * for await (const e of tar) console.log(e.name, e.size);
 * ```
 */
export class TarReader implements AsyncIterable<TarEntry> {
  #r: ByteReader;
  #pendingSkip = 0;
  #dataLeft = 0;

  constructor(reader: ByteReader) {
    this.#r = reader;
  }

  /** The entry's data, in order; call at most once per entry, before the next entry. */
  async *data(entry: TarEntry): AsyncGenerator<Uint8Array> {
    if (this.#r.position !== entry.dataOffset || this.#dataLeft !== entry.size) {
      throw new Error(`data of ${entry.name} is no longer readable`);
    }
    for await (const chunk of this.#r.chunks(entry.size)) {
      this.#dataLeft -= chunk.length;
      yield chunk;
    }
  }

  /**
   * Reads the entry's next bytes into `dst` (at most what is left of the
   * entry); resolves to the count, 0 once the entry is read whole. Mixes with
   * `data()` only if that generator is not mid-way.
   */
  async readInto(entry: TarEntry, dst: Uint8Array): Promise<number> {
    if (this.#r.position !== entry.dataOffset + entry.size - this.#dataLeft) {
      throw new Error(`data of ${entry.name} is no longer readable`);
    }
    if (this.#dataLeft === 0) return 0;
    const n = await this.#r.readInto(dst.subarray(0, Math.min(dst.length, this.#dataLeft)));
    if (n === 0) throw new TruncatedError(`input ends at offset ${this.#r.position}, ${this.#dataLeft} bytes short of an entry's data`);
    this.#dataLeft -= n;
    return n;
  }

  /** Reads a small entry's data whole. */
  async readAll(entry: TarEntry): Promise<Uint8Array> {
    return await collectChunks(this.data(entry), entry.size);
  }

  async #readMeta(size: number, what: string): Promise<Uint8Array> {
    if (size > MAX_META) throw new SyntaxError(`${what} of ${size} bytes is larger than ${MAX_META}`);
    const out = await collectChunks(this.#r.chunks(size), size);
    await this.#r.skip(padding(size));
    return out;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<TarEntry> {
    let longName: string | undefined;
    let longLink: string | undefined;
    let pax = new Map<string, string>();
    let globalPax = new Map<string, string>();
    for (;;) {
      if (this.#dataLeft > 0 || this.#pendingSkip > 0) {
        await this.#r.skip(this.#dataLeft + this.#pendingSkip);
        this.#dataLeft = 0;
        this.#pendingSkip = 0;
      }
      const at = this.#r.position;
      let h: Uint8Array | null;
      try {
        h = await this.#r.readExact(BLOCK);
      } catch (e) {
        throw e instanceof TruncatedError ? new TruncatedError(`archive is truncated: ${e.message}`) : e;
      }
      if (h === null) {
        // A missing end-of-archive marker after whole entries: GNU tar accepts it with a warning; so do we.
        if (longName !== undefined || pax.size > 0) throw new TruncatedError("archive is truncated after a long-name header");
        return;
      }
      if (h.every((b) => b === 0)) return;
      if (!checksumOk(h)) throw new SyntaxError(`bad tar header checksum at offset ${at}`);
      const flag = String.fromCharCode(h[156]).replace("\0", "0");
      const size = parseNumber(h, 124, 12, "size");
      if (flag === "x" || flag === "g") {
        const recs = parsePax(await this.#readMeta(size, "PAX header"));
        if (flag === "g") globalPax = new Map([...globalPax, ...recs]);
        else pax = new Map([...pax, ...recs]);
        continue;
      }
      if (flag === "L" || flag === "K") {
        const text = cString(await this.#readMeta(size, "GNU long name"), 0, size);
        if (flag === "L") longName = text;
        else longLink = text;
        continue;
      }
      const magic = decoder.decode(h.subarray(257, 263));
      let name = cString(h, 0, 100);
      if (magic === "ustar\0") {
        const prefix = cString(h, 345, 155);
        if (prefix) name = `${prefix}/${name}`;
      }
      const all = new Map([...globalPax, ...pax]);
      name = all.get("path") ?? longName ?? name;
      const linkname = all.get("linkpath") ?? longLink ?? cString(h, 157, 100);
      let realSize = size;
      const paxSize = all.get("size");
      if (paxSize !== undefined) {
        if (!/^\d+$/.test(paxSize) || Number(paxSize) > Number.MAX_SAFE_INTEGER) {
          throw new SyntaxError(`bad PAX size ${JSON.stringify(paxSize)} for ${name}`);
        }
        realSize = Number(paxSize);
      }
      pax = new Map();
      longName = longLink = undefined;
      const kind = kindOf(flag);
      // Only regular files carry data; other kinds with a size field are skipped per the format.
      const dataSize = kind === "file" ? realSize : (kind === "special" && flag !== "3" && flag !== "4" && flag !== "6" ? realSize : 0);
      this.#dataLeft = dataSize;
      this.#pendingSkip = padding(dataSize);
      yield { name, kind, typeflag: flag, size: kind === "file" ? realSize : 0, linkname, dataOffset: this.#r.position };
    }
  }
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}
