/**
 * A buffered, position-aware reader over a file, able to skip by seeking.
 * Chunks it hands out are views of its own buffer: valid until the next call.
 */

/** The file operations the reader needs; `Deno.FsFile` has them. */
export interface ReadableFile {
  read(p: Uint8Array): Promise<number | null>;
  seek?(offset: number | bigint, whence: Deno.SeekMode): Promise<number>;
}

/** Bytes the first read after a seek asks for: a tar header and a small entry's data, with room to spare. */
const AFTER_SEEK = 16 << 10;

/** Thrown when the input ends before the bytes a caller needed. */
export class TruncatedError extends Error {}

/** Buffered reads with an absolute position and seek-based skipping. */
export class ByteReader {
  #file: ReadableFile;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #eof = false;
  /** Absolute offset of `#buf[#start]` in the input. */
  #pos = 0;
  /**
   * Most bytes the next read asks for. After a seek it starts small and
   * doubles with each read (read-ahead as the kernel does it): a header pass
   * that seeks past every layer reads a few KiB per entry, not a whole buffer.
   */
  #readAhead: number;

  constructor(file: ReadableFile, bufferSize = 1 << 20) {
    this.#file = file;
    this.#buf = new Uint8Array(bufferSize);
    this.#readAhead = bufferSize;
  }

  /** Absolute offset of the next byte to be read. */
  get position(): number {
    return this.#pos;
  }

  /** Buffers at least `min` bytes unless the input ends first; returns what is buffered. */
  async #fill(min: number): Promise<number> {
    while (this.#end - this.#start < min && !this.#eof) {
      if (this.#start > 0 && this.#buf.length - this.#end < min) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      if (this.#end === this.#buf.length) break;
      const want = Math.max(min - (this.#end - this.#start), this.#readAhead);
      const n = await this.#file.read(this.#buf.subarray(this.#end, Math.min(this.#buf.length, this.#end + want)));
      this.#readAhead = Math.min(this.#buf.length, this.#readAhead * 2);
      if (n === null) this.#eof = true;
      else this.#end += n;
    }
    return this.#end - this.#start;
  }

  /**
   * Reads exactly `n` bytes (n ≤ buffer size) into a fresh array, or returns
   * null at a clean end of input. Throws TruncatedError when the input ends inside.
   */
  async readExact(n: number): Promise<Uint8Array | null> {
    const have = await this.#fill(n);
    if (have === 0) return null;
    if (have < n) throw new TruncatedError(`input ends at offset ${this.#pos + have}, inside a ${n}-byte record`);
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    this.#pos += n;
    return out;
  }

  /** Yields the next `n` bytes as views of the internal buffer. */
  async *chunks(n: number): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      if (this.#end === this.#start) {
        this.#start = this.#end = 0;
        await this.#fill(1);
        if (this.#end === 0) {
          throw new TruncatedError(`input ends at offset ${this.#pos}, ${left} bytes short of an entry's data`);
        }
      }
      const take = Math.min(left, this.#end - this.#start);
      const view = this.#buf.subarray(this.#start, this.#start + take);
      this.#start += take;
      this.#pos += take;
      left -= take;
      yield view;
    }
  }

  /**
   * Reads up to `dst.length` bytes into `dst` (the caller's memory: nothing
   * is kept): what is buffered first, then straight from the file, bypassing
   * the buffer. Resolves to the count, 0 only at the end of input.
   */
  async readInto(dst: Uint8Array): Promise<number> {
    if (dst.length === 0) return 0;
    const buffered = this.#end - this.#start;
    let n: number;
    if (buffered > 0) {
      n = Math.min(buffered, dst.length);
      dst.set(this.#buf.subarray(this.#start, this.#start + n));
      this.#start += n;
    } else if (dst.length < this.#buf.length / 4) {
      // Small reads go through the buffer: fewer system calls.
      n = Math.min(await this.#fill(1), dst.length);
      dst.set(this.#buf.subarray(this.#start, this.#start + n));
      this.#start += n;
    } else {
      this.#start = this.#end = 0;
      n = this.#eof ? 0 : (await this.#file.read(dst)) ?? 0;
      if (n === 0) this.#eof = true;
    }
    this.#pos += n;
    return n;
  }

  /** Skips `n` bytes, seeking when the file can and the gap is large. */
  async skip(n: number): Promise<void> {
    const buffered = this.#end - this.#start;
    if (n <= buffered) {
      this.#start += n;
      this.#pos += n;
      return;
    }
    if (this.#file.seek) {
      const target = this.#pos + n;
      const size = await this.#file.seek(0, Deno.SeekMode.End);
      if (target > size) {
        throw new TruncatedError(`input ends at offset ${size}, ${target - size} bytes short of an entry's data`);
      }
      await this.#file.seek(target, Deno.SeekMode.Start);
      this.#start = this.#end = 0;
      this.#eof = false;
      this.#readAhead = Math.min(this.#buf.length, AFTER_SEEK);
      this.#pos = target;
      return;
    }
    for await (const _ of this.chunks(n)) { /* discard */ }
  }
}

/** One file of a concatenation, with the size it had when the source was opened. */
export interface ConcatMember {
  path: string;
  size: number;
}

/**
 * The chunks of a split file read as one file: reads run on across chunk
 * boundaries and seeks land in the right chunk. One chunk is open at a time.
 */
export class ConcatFile implements ReadableFile {
  readonly size: number;
  #members: readonly ConcatMember[];
  #starts: number[];
  #pos = 0;
  #open?: { index: number; file: Deno.FsFile; at: number };

  constructor(members: readonly ConcatMember[]) {
    this.#members = members;
    this.#starts = [];
    let o = 0;
    for (const m of members) {
      this.#starts.push(o);
      o += m.size;
    }
    this.size = o;
  }

  /** The member holding byte `offset` of the whole, and the offset within it. */
  memberAt(offset: number): { index: number; path: string; offset: number } {
    let i = this.#starts.length - 1;
    while (i > 0 && this.#starts[i] > offset) i--;
    return { index: i, path: this.#members[i].path, offset: offset - this.#starts[i] };
  }

  /** The ranges of member files that hold bytes [offset, offset+size) of the whole (one empty range for size 0). */
  spans(offset: number, size: number): { file: string; offset: number; size: number }[] {
    const at = this.memberAt(offset);
    if (size === 0) return [{ file: at.path, offset: at.offset, size: 0 }];
    const out: { file: string; offset: number; size: number }[] = [];
    let { index, offset: o } = at;
    for (let left = size; left > 0 && index < this.#members.length; index++, o = 0) {
      const take = Math.min(left, this.#members[index].size - o);
      if (take > 0) out.push({ file: this.#members[index].path, offset: o, size: take });
      left -= take;
    }
    return out;
  }

  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#pos >= this.size) return null;
      const { index, offset } = this.memberAt(this.#pos);
      const left = this.#members[index].size - offset;
      if (left <= 0) {
        // An empty member: step over it.
        this.#pos = this.#starts[index] + this.#members[index].size;
        if (index === this.#members.length - 1) return null;
        this.#pos = this.#starts[index + 1];
        continue;
      }
      const file = await this.#fileAt(index, offset);
      const n = await file.read(p.subarray(0, Math.min(p.length, left)));
      if (n === null || n === 0) {
        throw new TruncatedError(`${this.#members[index].path} ends at ${offset} bytes, short of the ${this.#members[index].size} it had`);
      }
      this.#pos += n;
      this.#open!.at += n;
      return n;
    }
  }

  async #fileAt(index: number, offset: number): Promise<Deno.FsFile> {
    if (this.#open?.index !== index) {
      this.close();
      this.#open = { index, file: await Deno.open(this.#members[index].path), at: 0 };
    }
    if (this.#open.at !== offset) {
      await this.#open.file.seek(offset, Deno.SeekMode.Start);
      this.#open.at = offset;
    }
    return this.#open.file;
  }

  seek(offset: number | bigint, whence: Deno.SeekMode): Promise<number> {
    const base = whence === Deno.SeekMode.Start ? 0 : whence === Deno.SeekMode.End ? this.size : this.#pos;
    this.#pos = Math.max(0, base + Number(offset));
    return Promise.resolve(this.#pos);
  }

  /** Closes the chunk open now, if any. */
  close(): void {
    try {
      this.#open?.file.close();
    } catch { /* already closed */ }
    this.#open = undefined;
  }
}
