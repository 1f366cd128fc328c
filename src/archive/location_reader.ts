/**
 * A blob's bytes read where an index found them (one byte range of a file, or
 * several when a split archive's chunk boundary cuts it), into the caller's
 * buffers: a pass reads a blob a client waits for out of order this way.
 */
import { TruncatedError } from "./byte_reader.ts";
import { type BlobLocation, type FileSpan, spansOf } from "./source.ts";

/** Reads a location's bytes once, in order; `close` releases the open file. */
export class LocationReader {
  readonly #spans: FileSpan[];
  #next = 0;
  #left = 0;
  #file: Deno.FsFile | undefined;

  constructor(where: BlobLocation) {
    this.#spans = spansOf(where).filter((s) => s.size > 0);
  }

  /** Reads the next bytes into `dst`; resolves to the count, 0 once all are read. */
  async read(dst: Uint8Array): Promise<number> {
    if (dst.length === 0) return 0;
    while (this.#left === 0) {
      this.close();
      if (this.#next === this.#spans.length) return 0;
      const s = this.#spans[this.#next++];
      this.#file = await Deno.open(s.file);
      await this.#file.seek(s.offset, Deno.SeekMode.Start);
      this.#left = s.size;
    }
    const n = await this.#file!.read(dst.subarray(0, Math.min(dst.length, this.#left)));
    if (!n) throw new TruncatedError(`${this.#spans[this.#next - 1].file} ends ${this.#left} bytes short of a blob's data`);
    this.#left -= n;
    return n;
  }

  /** The bytes as chunks (fresh arrays), for sinks that iterate. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      const buf = new Uint8Array(1 << 20);
      const n = await this.read(buf);
      if (n === 0) return;
      yield buf.subarray(0, n);
    }
  }

  close(): void {
    try {
      this.#file?.close();
    } catch { /* closed */ }
    this.#file = undefined;
  }
}
