/**
 * Reading a located blob's bytes (a whole file in DIR, or a byte range of the
 * archive in place): as a stream of 1 MiB chunks that never holds the blob in
 * memory, whole for small manifests, or hashed.
 */
import { newHasher } from "../image/digest.ts";
import type { Located } from "./content.ts";

/**
 * Reads `length` bytes of a file from `offset` as a stream, 1 MiB at a time.
 * With `onEnd`, the last chunk is held back until `onEnd` approves (true): a
 * blob that fails verification is cut short, so no client ever receives it whole.
 */
export function rangeStream(
  file: string,
  offset: number,
  length: number,
  onChunk?: (c: Uint8Array) => void,
  onEnd?: () => boolean,
): ReadableStream<Uint8Array> {
  let f: Deno.FsFile | undefined;
  let left = length;
  let held: Uint8Array | undefined;
  const close = () => {
    f?.close();
    f = undefined;
  };
  return new ReadableStream<Uint8Array>({
    async start() {
      f = await Deno.open(file);
      await f.seek(offset, Deno.SeekMode.Start);
    },
    async pull(ctl) {
      // Each pull must enqueue, close or error: a pull that only holds a chunk back would stall the stream.
      for (;;) {
        if (left === 0) {
          close();
          // Ending short of Content-Length makes the server drop the connection: the client sees a failed download.
          if (onEnd?.() === false) return ctl.close();
          if (held) ctl.enqueue(held);
          return ctl.close();
        }
        const buf = new Uint8Array(Math.min(left, 1 << 20));
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
  const f = await Deno.open(l.file);
  try {
    await f.seek(l.offset, Deno.SeekMode.Start);
    let o = 0;
    while (o < l.size) {
      const n = await f.read(out.subarray(o));
      if (n === null) throw new Error(`${l.file} ended early`);
      o += n;
    }
  } finally {
    f.close();
  }
  return out;
}

/** Hashes a located blob whole, for a range request on a blob not yet verified. */
export async function hashLocated(l: Located): Promise<string> {
  const hasher = newHasher();
  for await (const c of rangeStream(l.file, l.offset, l.size)) hasher.update(c);
  return `sha256:${hasher.digest("hex")}`;
}
