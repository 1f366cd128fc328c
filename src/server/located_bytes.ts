/**
 * Reading a located blob's bytes (a whole file in DIR, or a byte range of the
 * archive in place, in pieces when a split archive's chunks cut it): as a stream of 256 KiB chunks that never holds the blob in
 * memory, whole for small manifests, or hashed.
 */
import { newHasher } from "../image/digest.ts";
import type { Located } from "./content.ts";
import { type FileSpan, spansOf } from "../archive/source.ts";
import { CHUNK, countChunk } from "./chunk_collector.ts";

/**
 * Reads byte ranges of files (a blob's pieces: one, or several when a split
 * archive's chunk boundary cuts it) as one stream, CHUNK bytes at a time
 * (fresh buffers: the response body keeps them; chunk_collector.ts frees them).
 * With `onEnd`, the last chunk is held back until `onEnd` approves (true): a
 * blob that fails verification is cut short, so no client ever receives it whole.
 */
export function rangeStream(
  spans: readonly FileSpan[],
  onChunk?: (c: Uint8Array) => void,
  onEnd?: () => boolean,
): ReadableStream<Uint8Array> {
  let f: Deno.FsFile | undefined;
  let next = 0;
  let left = 0;
  let held: Uint8Array | undefined;
  const close = () => {
    f?.close();
    f = undefined;
  };
  const open = async () => {
    close();
    const s = spans[next++];
    f = await Deno.open(s.file);
    await f.seek(s.offset, Deno.SeekMode.Start);
    left = s.size;
  };
  return new ReadableStream<Uint8Array>({
    async start() {
      if (spans.length) await open();
    },
    async pull(ctl) {
      // Each pull must enqueue, close or error: a pull that only holds a chunk back would stall the stream.
      for (;;) {
        if (left === 0 && next < spans.length) {
          await open();
          continue;
        }
        if (left === 0) {
          close();
          // Ending short of Content-Length makes the server drop the connection: the client sees a failed download.
          if (onEnd?.() === false) return ctl.close();
          if (held) ctl.enqueue(held);
          return ctl.close();
        }
        const buf = new Uint8Array(Math.min(left, CHUNK));
        countChunk(buf.length);
        const n = await f!.read(buf);
        if (n === null) {
          // The file shrank: end short of Content-Length, which drops the connection (no half blob passes as whole).
          close();
          return ctl.close();
        }
        const chunk = buf.subarray(0, n);
        left -= n;
        onChunk?.(chunk);
        if (!onEnd) return ctl.enqueue(chunk);
        const out = held;
        held = chunk;
        if (out) return ctl.enqueue(out);
      }
    },
    cancel() {
      close();
    },
  });
}

/** Reads a whole located blob (small: manifests). */
export async function readLocated(l: Located): Promise<Uint8Array> {
  const out = new Uint8Array(l.size);
  let o = 0;
  for await (const c of rangeStream(spansOf(l))) {
    out.set(c, o);
    o += c.length;
  }
  if (o < l.size) throw new Error(`${l.file} ended early`);
  return out;
}

/** Hashes a located blob whole, for a range request on a blob not yet verified. */
export async function hashLocated(l: Located): Promise<string> {
  const hasher = newHasher();
  for await (const c of rangeStream(spansOf(l))) hasher.update(c);
  return hasher.digest();
}
