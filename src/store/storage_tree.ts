/**
 * The distribution 2.8 storage tree under a data directory: blobs written
 * through a temp file and renamed into place only once their digest verifies,
 * link files written atomically.
 */
import { dirname, join } from "node:path";
import { TruncatedError } from "../archive/byte_reader.ts";
import { syncDir, syncFilesystem, tempPathFor, writeAll, writeAllSync } from "../util/atomic_write.ts";
import { digestHex, newHasher } from "../image/digest.ts";
import { type DigestSession, DigestWorker } from "../image/digest_worker.ts";
import { BufferPool } from "../util/buffer_pool.ts";
import { alignedView, DIRECT_ALIGN, DirectFile } from "../util/direct_file.ts";
import type { BlobBytes } from "../archive/ingest.ts";
import { freeBytes, onMemoryFs } from "../util/disk_space.ts";
import { EnvironmentError, InputError, wrapFsError } from "../util/errors.ts";
import { formatBytes } from "../util/log.ts";
import { blobFile, type DataDirPaths, dataDirPaths, storageTreeParts, storageTreeV2 } from "./paths.ts";
import type { Landings } from "./landings.ts";

/** A blob whose bytes do not hash to its digest; the reader is past it, so a pass may go on without it. */
export class CorruptBlobError extends InputError {
  constructor(readonly digest: string, message: string) {
    super(message);
  }
}

/**
 * Verified blobs are made durable and renamed into place in batches of this
 * many bytes or files (128 MiB: the disk writes a batch back while the pass
 * copies the next, so little is left to flush at the end; 512 MiB was 20%
 * slower at 1 GB on ext4), or once the oldest has waited this long (a slow medium
 * still sees its blobs land, and an interrupted load lose little, within seconds).
 */
const DURABLE_BATCH_BYTES = 128 << 20;
const DURABLE_BATCH_FILES = 1024;
const DURABLE_BATCH_MS = 3000;
/**
 * An eager pass (a copy from peers) starts its next flush this long after the last one started, at the soonest,
 * unless a client waits for a blob: each flush runs a `sync -f` process, and back to back they were ~100 per GB of
 * a replication, ~9% of its CPU.
 */
const EAGER_FLUSH_GAP_MS = 250;
/** Link files written at once on a disk ({@link RegistryStore.writeLinks}). */
const LINK_LANES = 4;
/** Buffers read into, written from and hashed: 6 × 4 MiB bounds memory while keeping the worker fed. */
const BUFFERS = 6;
const BUFFER_BYTES = 4 << 20;
/** Blobs up to this size are hashed on this thread. */
const INLINE_HASH_BYTES = 1 << 20;
/** Reused buffers kept for later copies, at most (more at once are left to the garbage collector). */
const KEPT_BUFFERS = 8;

/** Blobs up to this size (manifests, configs) are read into a buffer of their own size. */
const EXACT_BYTES = 64 << 10;

/** Keeps `buf` for a later copy unless enough are kept already. */
function keep(list: Uint8Array[], buf: Uint8Array): void {
  if (list.length < KEPT_BUFFERS) list.push(buf);
}

/** A fetched blob is written as each read of up to this much arrives, while the bytes are still in the CPU's cache. */
const FETCH_CHUNK = 256 << 10;
/** The worker reads a written temp file back in pieces of this size to hash it. */
const HASH_FILE_CHUNK = 1 << 20;

/** The hashing worker and the buffers it hashes, for one pass. */
class Hashing {
  readonly worker = new DigestWorker();
  /** Each DIRECT_ALIGN bytes longer than it is used: room for an aligned view of BUFFER_BYTES (direct writes). */
  readonly pool = new BufferPool(BUFFERS, BUFFER_BYTES + DIRECT_ALIGN);
  #fail!: (e: unknown) => void;
  /** Rejects once the worker has failed: buffers it held never come back, so nobody may wait for one. */
  readonly #failed = new Promise<never>((_, reject) => (this.#fail = reject));

  constructor() {
    this.#failed.catch(() => {});
  }

  /** A free buffer, or the worker's failure. */
  take(): Promise<ArrayBuffer> {
    return Promise.race([this.pool.take(), this.#failed]);
  }

  /** Hands `n` bytes of `buf` from `off` to the worker; the buffer returns to the pool once hashed. */
  hash(session: DigestSession, buf: ArrayBuffer, n: number, off = 0): void {
    session.update(buf, n, off).then((b) => this.pool.give(b), (e) => this.#fail(e));
  }

  close(): void {
    this.worker.close();
  }
}

/** The tree isoload lays out, and its own state beside it. */
export class RegistryStore {
  /** `DIR/docker/registry/v2`. */
  readonly v2: string;
  /** Its `blobs` and `repositories` directories. */
  readonly blobsDir: string;
  readonly repositoriesDir: string;
  /** The data directory's paths: its records, lock, temp files, registry config (path mapper). */
  readonly paths: DataDirPaths;
  /** Where blobs are written before they verify and are renamed into the tree. */
  readonly tmpDir: string;

  /** Called once before the first write, so records can say a load is under way. */
  beforeWrite?: () => Promise<void>;
  /** Told of each blob a pass writes, verifies and lands, for a server following them (`load --serve`). */
  landings?: Landings;
  #wrote = false;
  #hashing: Hashing | undefined;
  /** Buffers of {@link RegistryStore.putFetched}'s copies, reused from blob to blob (a few kept, not one per copy ever at once). */
  readonly #fetchBuffers: Uint8Array[] = [];
  readonly #smallBuffers: Uint8Array[] = [];
  /** Blobs over {@link INLINE_HASH_BYTES} copied from peers, and how many of them went around the page cache. */
  readonly fetched = { large: 0, direct: 0 };
  /**
   * Blobs are written through the runtime's I/O threads, not on this one ({@link writeAllSync}), when this thread has
   * other work that a blocked write would stall: a server answering here (`load --serve`, `serve --peer`, `serve
   * --persist`), where a write the kernel throttles (a slow disk, many dirty pages) should hold the copy and not every
   * client; and a copy from peers that cannot write around the page cache ({@link DirectFile}, whose writes wait on
   * threads of their own), where this thread reads every connection's socket and a stalled write stalls them all. An 8
   * GB replication into a new ext4, alternated: writes here took 15.1–18.9 s, and twice in seven runs ~30 s
   * (28 s of system time); off this thread 15.3–18.5 s, never more. A load from an archive has nothing else for this
   * thread and writes here.
   */
  writesOffThread = false;
  /** Verified blobs in tmp/ waiting for their batch to be made durable and renamed. */
  #pending: { tmp: string; digest: string }[] = [];
  /** Digests verified in this pass and not yet renamed into place, with whoever waits for them to land. */
  readonly #unsettled = new Map<string, PromiseWithResolvers<void> | undefined>();
  /** Large blobs whose last buffers the worker is still hashing. */
  readonly #verifying = new Set<Promise<void>>();
  #settling: Promise<void> | undefined;
  /** The eager pass's next flush, waiting out {@link EAGER_FLUSH_GAP_MS}. */
  #nextFlush: ReturnType<typeof setTimeout> | undefined;
  #settleFailed: { error: unknown } | undefined;
  #pendingBytes = 0;
  #pendingSince = 0;
  #inPass = false;
  #eager = false;
  /** A client waits for a blob ({@link RegistryStore.landSoon}): the next flush starts at once, not after the gap. */
  #hurried = false;
  /** Free space as last asked of the filesystem, less what was written since. */
  #free: { asked: number; left: number; sinceAsked: number } | undefined;

  /** `paths` defaults to `root`'s; storage mode keeps its scratch tree (`DIR/scratch`) with DIR's own state. */
  constructor(readonly root: string, paths: DataDirPaths = dataDirPaths(root)) {
    this.v2 = storageTreeV2(root);
    ({ blobs: this.blobsDir, repositories: this.repositoriesDir } = storageTreeParts(root));
    this.paths = paths;
    this.tmpDir = paths.tmp;
  }

  /** Absolute path of a blob's data file. */
  blobPath(digest: string): string {
    return blobFile(this.root, digest);
  }

  /** The temp file a blob is written to before its rename (one writer per digest at a time: one process holds DIR). */
  tempPath(digest: string): string {
    return join(this.tmpDir, `${digestHex(digest)}.${Deno.pid}`);
  }

  /** The size of a blob in place, or undefined when it is absent. */
  blobSize(digest: string): Promise<number | undefined> {
    try {
      // Synchronous: a few microseconds, asked once per blob of a pass.
      const st = Deno.statSync(this.blobPath(digest));
      return Promise.resolve(st.isFile ? st.size : undefined);
    } catch {
      return Promise.resolve(undefined);
    }
  }

  /** Removes temp files an interrupted run left; call with the lock held. */
  async clearTemp(): Promise<void> {
    await Deno.remove(this.tmpDir, { recursive: true }).catch(() => {});
    await Deno.mkdir(this.tmpDir, { recursive: true });
  }

  /**
   * Streams a blob into a temp file, hashing it as it goes, and checks it
   * against its digest and size; a blob at its final path hashes to its name,
   * even after a power cut. A mismatch deletes the temp file and throws
   * InputError (CorruptBlobError for bytes that do not hash to the digest).
   *
   * Within a pass ({@link RegistryStore.start}) and given `read`, a large blob
   * is hashed by a worker while this thread reads and writes, and may resolve
   * with `verified` still pending; verified blobs wait in `tmp/` for their
   * batch to be made durable, then are renamed to their final paths. Outside a
   * pass (a peer copy), the blob is at its final path when this resolves.
   */
  async putBlob(
    digest: string,
    size: number,
    bytes: BlobBytes | AsyncIterable<Uint8Array>,
    label: string,
  ): Promise<void | { verified: Promise<void> }> {
    if (!this.#inPass || !("read" in bytes)) return await this.#putLanded(digest, size, bytes, label);
    if (this.#settleFailed) throw this.#settleFailed.error;
    await this.#announceWrite();
    await this.#checkSpace(digest, size, label);
    const tmp = this.tempPath(digest);
    this.landings?.begin(digest, tmp);
    const check = (written: number, got: string) => this.#queue(digest, size, label, tmp, written, got);
    const fail = (e: unknown) => this.#failed(digest, label, tmp, e);
    if (size <= INLINE_HASH_BYTES) {
      try {
        const r = await this.#copySmall(tmp, bytes, size, digest);
        check(r.written, r.digest);
        return;
      } catch (e) {
        return await fail(e);
      }
    }
    // A large blob: the worker may still be hashing its last buffers; the pass reads on meanwhile.
    let copied;
    try {
      copied = await this.#copyLarge(tmp, bytes, digest);
    } catch (e) {
      return await fail(e);
    }
    const verified = copied.digest.then((got) => check(copied.written, got)).catch(fail);
    this.#verifying.add(verified);
    verified.catch(() => {}).finally(() => this.#verifying.delete(verified));
    return { verified };
  }

  /** Checks a blob written to `tmp` in a pass and queues it to land with its batch. */
  #queue(digest: string, size: number, label: string, tmp: string, written: number, got: string): void {
    if (written !== size) throw new InputError(`Cannot load blob ${digest} (${label}): got ${written} bytes, expected ${size}`);
    if (got !== digest) {
      throw new CorruptBlobError(digest, `Cannot load blob ${digest} (${label}): its bytes hash to ${got}; the archive is corrupt`);
    }
    if (this.#pending.length === 0) this.#pendingSince = performance.now();
    this.#pending.push({ tmp, digest });
    this.#unsettled.set(digest, undefined);
    this.#pendingBytes += size;
    // A blob a client of `load --serve` waits for lands at once rather than with its batch.
    const followed = this.landings?.verified(digest) === true;
    if (
      followed || (this.#eager && this.#nextFlush === undefined) || this.#pendingBytes >= DURABLE_BATCH_BYTES ||
      this.#pending.length >= DURABLE_BATCH_FILES ||
      performance.now() - this.#pendingSince >= DURABLE_BATCH_MS
    ) this.#settleSoon();
  }

  /** Removes a failed blob's temp file and throws the failure as the caller should see it. */
  async #failed(digest: string, label: string, tmp: string, e: unknown): Promise<never> {
    this.landings?.failed(digest, e);
    await Deno.remove(tmp).catch(() => {});
    if (e instanceof InputError) throw e;
    if (e instanceof TruncatedError) throw new InputError(`Cannot load blob ${digest} (${label}): the source is truncated: ${e.message}`);
    throw wrapFsError(`write blob ${digest}`, e);
  }

  /**
   * A blob arriving over the network (a copy from a peer), checked as
   * {@link RegistryStore.putBlob} checks it. In a pass, each read is written
   * to the temp file as it arrives, while its bytes are still in the CPU's
   * cache, and the pass's worker hashes the file once written (a small blob:
   * this thread, from memory), so the copies go on while it does; resolves
   * once verified, the blob then landing with its batch ({@link RegistryStore.landed}).
   * Outside a pass, the blob is at its final path when this resolves.
   */
  async putFetched(digest: string, size: number, bytes: BlobBytes, label: string): Promise<void> {
    if (!this.#inPass) return await this.#putLanded(digest, size, bytes, label);
    if (this.#settleFailed) throw this.#settleFailed.error;
    await this.#announceWrite();
    await this.#checkSpace(digest, size, label);
    const tmp = this.tempPath(digest);
    let direct: DirectFile | undefined;
    try {
      let written = 0;
      let got = "";
      if (size <= INLINE_HASH_BYTES) {
        // Reused above 64 KiB, as the large blobs' buffers are: a release's ~700 small blobs come last, and a fresh
        // buffer each piled up ~40-80 MB of garbage at the end of an 8 GB replication. Manifests take their own size.
        const whole = size <= EXACT_BYTES ? new Uint8Array(size) : this.#smallBuffers.pop() ?? new Uint8Array(INLINE_HASH_BYTES);
        try {
          const buf = whole.subarray(0, size);
          for (let n; written < size && (n = await bytes.read(buf.subarray(written))) > 0;) written += n;
          await this.#writeWhole(tmp, buf.subarray(0, written));
          got = newHasher().update(buf.subarray(0, written)).digest();
        } finally {
          if (whole.length === INLINE_HASH_BYTES) keep(this.#smallBuffers, whole);
        }
      } else {
        this.fetched.large++;
        // Tried for every blob (an open that failed once for want of file descriptors must not end direct writes);
        // where libc cannot be loaded, at once undefined.
        direct = DirectFile.create(tmp);
        if (direct) {
          ({ written, got } = await this.#copyDirect(direct, bytes));
          if (direct.direct) this.fetched.direct++;
        } else ({ written, got } = await this.#copyBuffered(tmp, size, bytes));
      }
      this.#queue(digest, size, label, tmp, written, got);
    } catch (e) {
      direct?.abandon();
      return await this.#failed(digest, label, tmp, e);
    }
  }

  /**
   * A fetched blob written through the page cache (where it cannot go around it), each read as it arrives, while its
   * bytes are still in the CPU's cache (through an I/O thread: writesOffThread); the worker hashes the written file.
   */
  async #copyBuffered(tmp: string, size: number, bytes: BlobBytes): Promise<{ written: number; got: string }> {
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    // One buffer per copy at once, kept for the next blob: a fresh 256 KiB a blob was garbage V8 freed late.
    const buf = this.#fetchBuffers.pop() ?? new Uint8Array(FETCH_CHUNK);
    let written = 0;
    try {
      for (let n; (n = await bytes.read(buf)) > 0;) {
        await this.#write(file, buf.subarray(0, n));
        written += n;
      }
    } finally {
      file.close();
      keep(this.#fetchBuffers, buf);
    }
    if (written !== size) return { written, got: "" };
    return { written, got: (await (this.#hashing ??= new Hashing()).worker.hashFile(tmp, HASH_FILE_CHUNK)).digest };
  }

  /**
   * A fetched blob written around the page cache ({@link DirectFile}): socket reads gathered into an aligned buffer
   * of the pool, each buffer written (the device's wait on an FFI thread), then hashed by the worker while the next
   * fills, so the digest is ready with the last byte and the file is never read back. One write at a time: a client
   * of `serve --peer` following the temp file never meets a hole. An 8 GB replication into a new ext4, alternated
   * with the copy through the page cache: 10.1–10.8 s against 15.1–18.1 s (system time ~3 s against 10–12 s).
   *
   * Copies share the pool's 6 buffers, so with more copies than buffers some wait, their responses unread, for a
   * buffer the worker hands back within milliseconds: each copy has its own connection (HTTP/1.1, `http_get.ts`),
   * so a waiting one holds up no other. Two buffers of its own per copy, the next filling while one is written,
   * was no faster at 8 GB (11.3–11.8 s against 10.4–11.5 s) and, allocated as the worker lagged, took RSS to 235–313 MB.
   */
  async #copyDirect(file: DirectFile, bytes: BlobBytes): Promise<{ written: number; got: string }> {
    const hashing = this.#hashing ??= new Hashing();
    const session = hashing.worker.begin();
    let written = 0;
    for (;;) {
      const buf = await hashing.take();
      let n = 0;
      let off = 0;
      try {
        // The libc that created the file gives the views (alignedView is undefined only without it).
        const view = alignedView(buf, BUFFER_BYTES)!;
        off = view.byteOffset;
        for (let got; n < view.length && (got = await bytes.read(view.subarray(n))) > 0;) n += got;
        if (n > 0) await file.write(view, n);
      } catch (e) {
        hashing.pool.give(buf);
        throw e;
      }
      if (n === 0) {
        hashing.pool.give(buf);
        break;
      }
      written += n;
      hashing.hash(session, buf, n, off);
    }
    await file.finish(written);
    return { written, got: await session.digest() };
  }

  /**
   * Resolves once a blob this pass verified is at its final path (at once
   * when none is waiting to land); rejects when its batch failed.
   */
  landed(digest: string): Promise<void> {
    if (!this.#unsettled.has(digest)) return Promise.resolve();
    let w = this.#unsettled.get(digest);
    if (!w) {
      this.#unsettled.set(digest, w = Promise.withResolvers<void>());
      w.promise.catch(() => {}); // the waiter's
    }
    return w.promise;
  }

  /** Lands the verified blobs now rather than once their batch is full (a client waits for one). */
  landSoon(): void {
    this.#hurried = true;
    if (this.#pending.length) this.#settleSoon();
  }

  /** Tells whoever waits for `digest` that it landed (no error) or never will. */
  #tellLanded(digest: string, error?: unknown): void {
    const w = this.#unsettled.get(digest);
    this.#unsettled.delete(digest);
    if (error === undefined) {
      w?.resolve();
      this.landings?.landed(digest);
    } else {
      w?.reject(error);
      this.landings?.failed(digest, error);
    }
  }

  /**
   * One blob outside a pass (a copy from a peer): hashed on this thread as it
   * is written, fsynced and renamed into place before this resolves.
   */
  async #putLanded(digest: string, size: number, chunks: AsyncIterable<Uint8Array>, label: string): Promise<void> {
    await this.#announceWrite();
    await this.#checkSpace(digest, size, label);
    const tmp = this.tempPath(digest);
    const hasher = newHasher();
    let written = 0;
    let file: Deno.FsFile | undefined;
    try {
      file = await Deno.open(tmp, { write: true, create: true, truncate: true });
      for await (const chunk of chunks) {
        hasher.update(chunk);
        await writeAll(file, chunk);
        written += chunk.length;
      }
      const got = hasher.digest();
      if (written !== size) throw new InputError(`Cannot load blob ${digest} (${label}): got ${written} bytes, expected ${size}`);
      if (got !== digest) {
        throw new CorruptBlobError(digest, `Cannot load blob ${digest} (${label}): its bytes hash to ${got}; the archive is corrupt`);
      }
      await file.syncData();
      file.close();
      file = undefined;
      const final = this.blobPath(digest);
      await Deno.mkdir(dirname(final), { recursive: true });
      await Deno.rename(tmp, final);
      await syncDir(dirname(final));
    } catch (e) {
      try {
        file?.close();
      } catch { /* closed */ }
      await Deno.remove(tmp).catch(() => {});
      if (e instanceof InputError) throw e;
      if (e instanceof TruncatedError) throw new InputError(`Cannot load blob ${digest} (${label}): the source is truncated: ${e.message}`);
      throw wrapFsError(`write blob ${digest}`, e);
    }
  }

  /**
   * Starts a pass over a source (ingest calls it, and {@link RegistryStore.finish}
   * at the end): blobs are then hashed off this thread, checked while the pass
   * reads on, and made durable and renamed into place in batches. `eager`
   * (a copy from peers, paced by the network): every verified blob lands with
   * the next flush, started once the one before ends (at most every
   * {@link EAGER_FLUSH_GAP_MS}), so the flushes overlap the copy and a kill
   * loses only what the last quarter second verified.
   */
  start(eager = false): void {
    this.#inPass = true;
    this.#eager = eager;
    if (this.landings) this.landings.hurry = () => this.#settleSoon();
  }

  /**
   * Refuses a blob that cannot fit before any byte of it is written. The
   * filesystem is asked again only after a share of what it had free is
   * written (or when the blob would not fit what is left of it), not per blob.
   */
  async #checkSpace(digest: string, size: number, label: string): Promise<void> {
    if (this.#free === undefined || size > this.#free.left || this.#free.sinceAsked > this.#free.asked / 8) {
      const free = await freeBytes(this.tmpDir);
      this.#free = free === undefined ? undefined : { asked: free, left: free, sinceAsked: 0 };
    }
    if (this.#free && this.#free.left < size) {
      throw new EnvironmentError(
        `Cannot write blob ${digest} (${label}, ${formatBytes(size)}): the filesystem of ${this.root} has only ${
          formatBytes(this.#free.left)
        } free`,
      );
    }
    if (this.#free) {
      this.#free.left -= size;
      this.#free.sinceAsked += size;
    }
  }

  /** Writes a piece of a blob: on this thread, or through an I/O thread ({@link RegistryStore.writesOffThread}). */
  #write(file: Deno.FsFile, data: Uint8Array): Promise<void> | void {
    if (this.writesOffThread) return writeAll(file, data);
    writeAllSync(file, data);
  }

  /** Writes a small blob's temp file in one call, on this thread or through an I/O thread as `#write` does. */
  async #writeWhole(tmp: string, data: Uint8Array): Promise<void> {
    if (this.writesOffThread) await Deno.writeFile(tmp, data);
    else Deno.writeFileSync(tmp, data);
  }

  /** A small blob: read whole into a buffer of the pool, hashed here, written in one call. */
  async #copySmall(tmp: string, bytes: BlobBytes, size: number, name: string): Promise<{ written: number; digest: string }> {
    const hashing = this.#hashing ??= new Hashing();
    const buf = await hashing.take();
    try {
      const view = new Uint8Array(buf, 0, size);
      let written = 0;
      for (let n; written < size && (n = await bytes.read(view.subarray(written))) > 0;) written += n;
      // One byte more than the entry claims would be a source bug, not data: sources stop at the entry's size.
      await this.#writeWhole(tmp, view.subarray(0, written));
      this.landings?.wrote(name, written);
      return { written, digest: newHasher().update(view.subarray(0, written)).digest() };
    } finally {
      hashing.pool.give(buf);
    }
  }

  /**
   * A large blob: through the pool's buffers into a temp file, each buffer
   * written by this thread while the next is read, then handed (transferred)
   * to the hashing worker, which hands it back once hashed.
   */
  async #copyLarge(tmp: string, bytes: BlobBytes, name: string): Promise<{ written: number; digest: Promise<string> }> {
    const hashing = this.#hashing ??= new Hashing();
    const pool = hashing.pool;
    const session = hashing.worker.begin();
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    let written = 0;
    let cur: ArrayBuffer | undefined;
    let next: ArrayBuffer | undefined;
    let reading: Promise<number> | undefined;
    try {
      cur = await hashing.take();
      let n = await bytes.read(new Uint8Array(cur));
      while (n > 0) {
        next = await hashing.take();
        // The next read runs on an I/O thread while this thread writes the last.
        reading = bytes.read(new Uint8Array(next));
        reading.catch(() => {}); // awaited below; a failure while this write runs is not unhandled
        await this.#write(file, new Uint8Array(cur, 0, n));
        written += n;
        this.landings?.wrote(name, written);
        hashing.hash(session, cur, n);
        cur = next;
        next = undefined;
        n = await reading;
        reading = undefined;
      }
    } finally {
      await reading?.catch(() => {}); // its buffer is not given back while the read may still fill it
      if (cur) pool.give(cur);
      if (next) pool.give(next);
      file.close();
    }
    const digest = session.digest();
    digest.catch(() => {}); // the caller's
    return { written, digest };
  }

  /**
   * Makes the verified blobs waiting in tmp/ durable with one flush of the
   * filesystem (rather than one fsync per blob, which on a release of ~900
   * blobs cost more than the copy itself), then renames each to its final
   * path. The renames are made durable by the caller's final `syncFilesystem`.
   */
  async #settle(): Promise<void> {
    const batch = this.#pending.splice(0);
    this.#pendingBytes = 0;
    if (batch.length === 0) return;
    // Synchronous calls: two metadata operations per blob, each cheaper than a round trip to the I/O threads.
    let i = 0;
    try {
      await syncFilesystem(this.tmpDir);
      for (; i < batch.length; i++) {
        const final = this.blobPath(batch[i].digest);
        Deno.mkdirSync(dirname(final), { recursive: true });
        Deno.renameSync(batch[i].tmp, final);
        this.#tellLanded(batch[i].digest);
      }
    } catch (e) {
      for (const p of batch.slice(i)) {
        await Deno.remove(p.tmp).catch(() => {});
        this.#tellLanded(p.digest, wrapFsError(`write blobs into ${this.v2}`, e));
      }
      throw e;
    }
  }

  /** Drops the eager pass's flush waiting out its gap, if one is. */
  #cancelNextFlush(): void {
    clearTimeout(this.#nextFlush);
    this.#nextFlush = undefined;
  }

  /** Settles a batch in the background (one at a time), while the pass copies on; a failure stops the next putBlob. */
  #settleSoon(): void {
    if (this.#settling) return;
    this.#cancelNextFlush();
    this.#hurried = false; // what was verified by now goes with this flush
    const started = performance.now();
    this.#settling = this.#settle().catch((e) => {
      this.#settleFailed ??= { error: wrapFsError(`write blobs into ${this.v2}`, e) };
    }).finally(() => {
      this.#settling = undefined;
      if (this.#settleFailed) return;
      // Blobs a client waits for (`load --serve`, `serve --peer`) go with the next flush at once; the other blobs of
      // an eager pass with the next flush after the gap.
      if (this.#hurried || this.#pending.some((p) => this.landings?.followed(p.digest))) this.#settleSoon();
      else if (this.#eager && this.#pending.length > 0) {
        const wait = EAGER_FLUSH_GAP_MS - (performance.now() - started);
        if (wait <= 0) this.#settleSoon();
        else this.#nextFlush = setTimeout(() => this.#settleSoon(), wait);
      }
    });
  }

  /**
   * Ends a pass: waits for the blobs still being checked, then settles every
   * verified one — also when the pass stopped (an interrupted load keeps what
   * it verified, and a re-run reads none of it again); frees the hashing
   * worker and buffers. No temp file is left behind, and nothing unverified
   * is ever at a final path.
   */
  async finish(completed: boolean): Promise<void> {
    // From here the settle below takes every verified blob: no client hurries another one on.
    if (this.landings) this.landings.hurry = undefined;
    try {
      await Promise.allSettled(this.#verifying);
      // An eager pass starts a flush after each one ends: wait until none runs, and cancel one waiting to start.
      while (this.#settling) await this.#settling;
      this.#cancelNextFlush();
      if (this.#settleFailed) throw this.#settleFailed.error;
      const settled = this.#settle().catch((e) => Promise.reject(wrapFsError(`write blobs into ${this.v2}`, e)));
      if (completed) await settled;
      else await settled.catch(() => {}); // the pass's own error is the one to report
    } finally {
      for (const p of this.#pending.splice(0)) {
        await Deno.remove(p.tmp).catch(() => {});
        this.#tellLanded(p.digest, new EnvironmentError(`Cannot write blob ${p.digest} into ${this.v2}: the pass ended before it landed`));
      }
      this.#pendingBytes = 0;
      this.#settleFailed = undefined;
      this.#inPass = false;
      this.#eager = false;
      this.#hurried = false;
      // A flush a client's copy armed while this settle ran must not start (or hold the process) after the pass.
      this.#cancelNextFlush();
      this.#hashing?.close();
      this.#hashing = undefined;
    }
  }

  /** Reads a blob whole, refusing ones larger than `max`. */
  async readBlob(digest: string, max: number): Promise<Uint8Array | undefined> {
    const size = await this.blobSize(digest);
    if (size === undefined) return undefined;
    if (size > max) throw new InputError(`Cannot read manifest ${digest}: ${size} bytes is more than the ${max}-byte limit`);
    return await Deno.readFile(this.blobPath(digest));
  }

  /**
   * Writes link files (`[relPath, digest]`, as {@link RegistryStore.writeLink}); resolves to how many it wrote. On
   * a disk they are written 4 at a time through the runtime's I/O threads: a journaling filesystem makes each
   * directory and file creation wait (~0.6 ms each on ext4 right after a load's flush), and the waits overlap
   * (a release's ~900 links: 0.63 s one by one, 0.26–0.43 s four at a time). On tmpfs, where nothing waits,
   * synchronous calls one by one cost least.
   */
  async writeLinks(links: Iterable<[string, string]>): Promise<number> {
    const todo = [...links];
    const lanes = await onMemoryFs(this.v2) ? 1 : LINK_LANES;
    let written = 0;
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(lanes, todo.length) }, async () => {
      while (next < todo.length) {
        const [relPath, digest] = todo[next++];
        if (await this.writeLink(relPath, digest, lanes > 1)) written++;
      }
    }));
    return written;
  }

  /**
   * Writes a link file (`sha256:<hex>`, no newline) unless it already holds that; `io` does its writes through
   * the runtime's I/O threads rather than on this one.
   */
  async writeLink(relPath: string, digest: string, io = false): Promise<boolean> {
    const path = join(this.v2, relPath);
    try {
      if (Deno.readTextFileSync(path) === digest) return false;
    } catch { /* absent: write it */ }
    await this.#announceWrite();
    if (io) {
      const tmp = tempPathFor(path);
      try {
        await Deno.mkdir(dirname(path), { recursive: true });
        await Deno.writeTextFile(tmp, digest, { createNew: true });
        await Deno.rename(tmp, path);
      } catch (e) {
        await Deno.remove(tmp).catch(() => {});
        throw wrapFsError(`write ${path}`, e);
      }
      return true;
    }
    // Links are tiny and many (~1,000 for a release): written with synchronous calls of a few microseconds each, which
    // cost less than as many round trips to the runtime's I/O threads; flushed together by the caller
    // (syncFilesystem) before records say "complete". Temp file and rename: a reader sees the whole link or none.
    const tmp = tempPathFor(path);
    try {
      Deno.mkdirSync(dirname(path), { recursive: true });
      Deno.writeTextFileSync(tmp, digest, { createNew: true });
      Deno.renameSync(tmp, path);
    } catch (e) {
      try {
        Deno.removeSync(tmp);
      } catch { /* not there */ }
      throw wrapFsError(`write ${path}`, e);
    }
    return true;
  }

  async #announceWrite(): Promise<void> {
    if (this.#wrote) return;
    this.#wrote = true;
    await this.beforeWrite?.();
  }
}
