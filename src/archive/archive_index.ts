/**
 * An archive (or directory) indexed in place for serving without extracting
 * it: one pass over the entries that seeks past every large blob, keeping
 * where each blob lies and the small JSON ones (manifests, configs) in memory.
 * Time to index grows with the number of entries, not with the bytes of layers.
 */
import { digestOf } from "../image/digest.ts";
import { InputError } from "../util/errors.ts";
import type { BlobSink } from "./ingest.ts";
import { MAX_MANIFEST_BYTES } from "../image/manifest.ts";
import type { BlobLocation } from "./source.ts";

/** A BlobSink that records locations instead of writing, and a BlobReader over what it kept. */
export class ArchiveIndex implements BlobSink {
  readonly where = new Map<string, BlobLocation>();
  readonly #small = new Map<string, Uint8Array>();
  readonly #checked = new Set<string>();

  blobSize(digest: string): Promise<number | undefined> {
    return Promise.resolve(this.where.get(digest)?.size);
  }

  async putBlob(digest: string, size: number, chunks: AsyncIterable<Uint8Array>, label: string, where: BlobLocation): Promise<void> {
    this.where.set(digest, where);
    // Large blobs stay unread: the reader seeks past them. They are checked when first served.
    if (size > MAX_MANIFEST_BYTES) return;
    let buf: Uint8Array | undefined;
    let o = 0;
    for await (const c of chunks) {
      // Only JSON (manifests, indexes, configs) steers naming: a small layer is left unread too (its first bytes are
      // already buffered, the rest is skipped), and checked when first served like any layer.
      if (o === 0 && c[0] !== 0x7b) return;
      buf ??= new Uint8Array(size);
      buf.set(c, o);
      o += c.length;
    }
    if (!buf) buf = new Uint8Array(0);
    // Small blobs steer naming and planning: checked now, so a corrupt manifest never shapes what is served.
    if (digestOf(buf) !== digest) {
      throw new InputError(`Cannot serve blob ${digest} (${label}) in place: its bytes do not match its digest; the archive is corrupt`);
    }
    this.#checked.add(digest);
    if (buf[0] === 0x7b) this.#small.set(digest, buf);
  }

  readBlob(digest: string, max: number): Promise<Uint8Array | undefined> {
    const b = this.#small.get(digest);
    return Promise.resolve(b && b.length <= max ? b : undefined);
  }

  /** Digests already checked (the small JSON ones). */
  verified(): Set<string> {
    return new Set(this.#checked);
  }
}
