/** Small byte helpers: a stream of chunks of known size into one buffer, and byte equality. */

/**
 * Reads `chunks`, whose total is `size` bytes, into one buffer. The callers
 * bound `size` first (manifests, tar metadata); more bytes than announced is
 * a RangeError, as Uint8Array.set throws.
 */
export async function collectChunks(chunks: AsyncIterable<Uint8Array>, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let o = 0;
  for await (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Whether two byte arrays hold the same bytes. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
