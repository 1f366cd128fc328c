/**
 * The one streaming pass: every entry of the source is classified by its
 * format; blobs are verified and put in place (or skipped when already there),
 * metadata is kept in memory for naming the images afterwards.
 */
import { newHasher } from "../image/digest.ts";
import { collectChunks, equalBytes } from "../util/bytes.ts";
import { InputError } from "../util/errors.ts";
import type { ArchiveFormat } from "./format.ts";
import { MAX_META_BYTES } from "./format.ts";
import { looksLikeOciLayout, ociLayout } from "./oci_layout.ts";
import { looksLikeOcMirror, looksLikeOcMirrorV1, ocMirror } from "./oc_mirror.ts";
import { checkInterrupt } from "../util/interrupt.ts";
import { CorruptBlobError } from "../store/storage_tree.ts";
import type { BlobLocation, Source, SourceEntry } from "./source.ts";
import { LocationReader } from "./location_reader.ts";
import type { WantedBlob } from "../store/landings.ts";

/** What the pass saw and did. */
export interface IngestResult {
  format: ArchiveFormat;
  meta: Map<string, Uint8Array>;
  /** Blob digests the source carried, with sizes. */
  blobs: Map<string, number>;
  written: { blobs: number; bytes: number };
  skipped: { blobs: number; bytes: number };
  /** Blobs read out of order, before the pass reached them, because a client waited for them (`outOfOrder`). */
  readAhead: { blobs: number; bytes: number };
  /** Blobs left out because their bytes did not verify (only with `keepGoing`), with the reason. */
  corrupt: Map<string, string>;
}

/** How a pass treats a blob that does not verify. */
export interface IngestOptions {
  progress?: IngestProgress;
  /**
   * Leave a corrupt blob out and go on (storage mode: the images that need it fail, the others load).
   * Without it the first corrupt blob stops the pass.
   */
  keepGoing?: boolean;
  /** Stops the pass (InterruptedError) at the next chunk once aborted. */
  signal?: AbortSignal;
  /** What the pass is part of, for the interruption message. */
  doing?: string;
  /**
   * Blobs clients wait for (`load --serve`), read between entries from where
   * they lie, before the sequential pass reaches them; the pass then skips
   * them (a seek). Every byte is still read once.
   */
  outOfOrder?: { nextWanted(): WantedBlob | undefined };
}

/**
 * A blob's bytes as a pass hands them to a sink: iterate the chunks (views of
 * the source's buffer), or read them into the sink's own buffers. One or the
 * other, once.
 */
export interface BlobBytes extends AsyncIterable<Uint8Array> {
  /** Reads the next bytes into `dst`; resolves to the count, 0 once all are read. */
  read(dst: Uint8Array): Promise<number>;
}

/** An entry's (or a location's) bytes, checking for an interrupt before each chunk or read. */
function interruptible(
  entry: { chunks(): AsyncIterable<Uint8Array>; read(dst: Uint8Array): Promise<number> },
  signal: AbortSignal | undefined,
  doing: string,
): BlobBytes {
  return {
    async *[Symbol.asyncIterator]() {
      for await (const c of entry.chunks()) {
        checkInterrupt(signal, doing);
        yield c;
      }
    },
    read(dst) {
      checkInterrupt(signal, doing);
      return entry.read(dst);
    },
  };
}

/** Where verified blobs go; RegistryStore is one, inspect keeps manifests in memory. */
export interface BlobSink {
  /** Size of a blob already in place, or undefined. */
  blobSize(digest: string): Promise<number | undefined>;
  /**
   * Takes a blob's bytes (it may leave them unread: the reader then skips them); `where` says where they lie in the source.
   * Resolves once the bytes are consumed; a sink still checking them by then returns `verified`, which settles when
   * that check does (rejecting as putBlob itself would), so the pass reads on meanwhile.
   */
  putBlob(digest: string, size: number, bytes: BlobBytes, label: string, where: BlobLocation): Promise<void | { verified: Promise<void> }>;
  /** Called once before the pass starts. */
  start?(): void;
  /**
   * Called once the pass ends: `completed` when every entry was read, false
   * when it stopped on an error. A sink that defers work (making blobs
   * durable in batches) finishes it here, and frees what it holds either way.
   */
  finish?(completed: boolean): Promise<void>;
}

/** Progress callback: bytes of the source consumed so far, and the entry at hand. */
export type IngestProgress = (position: number, entry: string) => void;

/** Decides the format from the first path that is characteristic of one. */
export function detectFormat(path: string): ArchiveFormat | undefined {
  if (looksLikeOcMirrorV1(path)) {
    throw new InputError(
      "Cannot read source: it is an oc-mirror v1 archive (v2/, publish/); isoload reads oc-mirror v2 archives and OCI layouts",
    );
  }
  if (looksLikeOcMirror(path)) return ocMirror;
  if (looksLikeOciLayout(path)) return ociLayout;
  return undefined;
}

async function readSmall(entry: SourceEntry, max: number): Promise<Uint8Array> {
  if (entry.size > max) throw new InputError(`Cannot read ${entry.path}: ${entry.size} bytes is more than the ${max}-byte limit`);
  return await collectChunks(entry.chunks(), entry.size);
}

/** Streams `source` into `store` once. */
export async function ingest(source: Source, store: BlobSink, options: IngestOptions = {}): Promise<IngestResult> {
  const { progress, signal } = options;
  const doing = options.doing ?? `read ${source.path}`;
  let format: ArchiveFormat | undefined;
  const meta = new Map<string, Uint8Array>();
  const blobs = new Map<string, number>();
  const written = { blobs: 0, bytes: 0 };
  const skipped = { blobs: 0, bytes: 0 };
  const corrupt = new Map<string, string>();
  // Blobs whose bytes are read but still being checked, and the first check that failed the pass.
  const checking = new Set<Promise<void>>();
  let failed: { error: unknown } | undefined;
  const landed = (size: number) => {
    written.blobs++;
    written.bytes += size;
  };
  /** A corrupt blob is left out with keepGoing (true); otherwise it fails the pass (false). */
  const noteCorrupt = (digest: string, e: unknown): boolean => {
    if (!(options.keepGoing && e instanceof CorruptBlobError)) return false;
    blobs.delete(digest);
    corrupt.set(digest, e.message);
    return true;
  };
  /** Puts a blob into the store; a large one may still be checked when this resolves (the pass reads on). */
  const put = async (digest: string, size: number, bytes: BlobBytes, label: string, where: BlobLocation) => {
    let landing;
    try {
      landing = await store.putBlob(digest, size, bytes, label, where);
    } catch (e) {
      if (!noteCorrupt(digest, e)) throw e;
      return;
    }
    if (!landing) landed(size);
    else {
      checking.add(landing.verified);
      landing.verified.then(() => landed(size), (e) => {
        if (!noteCorrupt(digest, e)) failed ??= { error: e };
      }).finally(() => checking.delete(landing.verified));
    }
  };
  /** Blobs read out of order, for clients waiting for them: the sequential pass skips their entries. */
  const early = new Set<string>();
  const readAhead = { blobs: 0, bytes: 0 };
  const readWanted = async () => {
    for (let w; (w = options.outOfOrder?.nextWanted());) {
      checkInterrupt(signal, doing);
      if (failed) throw failed.error;
      if (blobs.has(w.digest) || (await store.blobSize(w.digest)) === w.where.size) continue;
      blobs.set(w.digest, w.where.size);
      early.add(w.digest);
      readAhead.blobs++;
      readAhead.bytes += w.where.size;
      const reader = new LocationReader(w.where);
      try {
        const bytes = interruptible({ chunks: () => reader, read: (dst) => reader.read(dst) }, signal, doing);
        await put(w.digest, w.where.size, bytes, `at byte ${w.where.offset} of ${w.where.file}, read ahead for a client`, w.where);
      } finally {
        reader.close();
      }
    }
  };
  let completed = false;
  store.start?.();
  try {
    for await (const entry of source) {
      checkInterrupt(signal, doing);
      if (failed) throw failed.error;
      await readWanted();
      progress?.(source.position, entry.path);
      if (entry.kind === "directory" || entry.path === "") continue;
      if (!format) {
        format = detectFormat(entry.path);
        if (!format) continue;
      }
      if (entry.kind === "special") {
        throw new InputError(`Cannot read source: entry ${JSON.stringify(entry.path)} is a device, FIFO or other special file`);
      }
      const role = format.classify(entry.path);
      if (role.role === "ignore") continue;
      if (entry.kind !== "file") {
        throw new InputError(`Cannot read source: ${entry.path} is a ${entry.kind}, not a regular file`);
      }
      if (role.role === "meta") {
        const bytes = await readSmall(entry, MAX_META_BYTES);
        const prev = meta.get(entry.path);
        if (prev && !equalBytes(prev, bytes)) {
          throw new InputError(`Cannot read source: ${entry.path} appears twice with different content`);
        }
        meta.set(entry.path, bytes);
        continue;
      }
      const { digest } = role;
      const known = blobs.get(digest);
      if (known !== undefined && known !== entry.size) {
        throw new InputError(`Cannot read source: blob ${digest} appears twice with different sizes`);
      }
      if (early.delete(digest)) continue; // read already, out of order, for a client: its bytes are skipped
      if (known !== undefined) {
        // A second copy in the same archive: the first is in place; this one must agree or the archive contradicts itself.
        const hasher = newHasher();
        for await (const c of interruptible(entry, signal, doing)) hasher.update(c);
        if (hasher.digest() !== digest) {
          throw new InputError(`Cannot read source: blob ${digest} appears twice and the copy at ${entry.path} does not match its digest`);
        }
        continue;
      }
      blobs.set(digest, entry.size);
      const have = await store.blobSize(digest);
      if (have === entry.size) {
        // Already verified into place by an earlier run: leave the bytes unread (a seek on a file).
        skipped.blobs++;
        skipped.bytes += entry.size;
        continue;
      }
      await put(digest, entry.size, interruptible(entry, signal, doing), entry.path, entry.where);
    }
    await Promise.allSettled(checking);
    if (failed) throw failed.error;
    completed = true;
  } finally {
    if (!completed) await Promise.allSettled(checking);
    await store.finish?.(completed);
  }
  progress?.(source.position, "");
  if (!format) {
    throw new InputError(
      `Cannot read ${source.path}: it is neither an oc-mirror v2 archive (docker/registry/v2/) nor an OCI image layout (oci-layout, index.json)`,
    );
  }
  return { format, meta, blobs, written, skipped, readAhead, corrupt };
}
