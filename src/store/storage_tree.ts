/**
 * The distribution 2.8 storage tree under a data directory: blobs written
 * through a temp file and renamed into place only once their digest verifies,
 * link files written atomically.
 */
import { dirname, join } from "node:path";
import { TruncatedError } from "../archive/byte_reader.ts";
import { atomicWrite, syncDir, writeAll } from "../util/atomic_write.ts";
import { digestHex, newHasher } from "../image/digest.ts";
import { freeBytes } from "../util/disk_space.ts";
import { EnvironmentError, InputError, wrapFsError } from "../util/errors.ts";
import { formatBytes } from "../util/log.ts";
import { blobDataPath } from "./layout_plan.ts";

/** A blob whose bytes do not hash to its digest; the reader is past it, so a pass may go on without it. */
export class CorruptBlobError extends InputError {
  constructor(readonly digest: string, message: string) {
    super(message);
  }
}

/** The tree isoload lays out, and its own state beside it. */
export class RegistryStore {
  /** `DIR/docker/registry/v2`. */
  readonly v2: string;
  /** `DIR/isoload`: records, lock, temp files, registry config. */
  readonly stateDir: string;
  readonly tmpDir: string;

  /** Called once before the first write, so records can say a load is under way. */
  beforeWrite?: () => Promise<void>;
  #wrote = false;

  /** `stateDir` defaults to `root/isoload`; storage mode keeps its scratch tree's state with DIR's own. */
  constructor(readonly root: string, stateDir = join(root, "isoload")) {
    this.v2 = join(root, "docker", "registry", "v2");
    this.stateDir = stateDir;
    this.tmpDir = join(this.stateDir, "tmp");
  }

  /** Absolute path of a blob's data file. */
  blobPath(digest: string): string {
    return join(this.v2, blobDataPath(digest));
  }

  /** The temp file a blob is written to before its rename (one writer per digest at a time: one process holds DIR). */
  tempPath(digest: string): string {
    return join(this.tmpDir, `${digestHex(digest)}.${Deno.pid}`);
  }

  /** The size of a blob in place, or undefined when it is absent. */
  async blobSize(digest: string): Promise<number | undefined> {
    try {
      const st = await Deno.stat(this.blobPath(digest));
      return st.isFile ? st.size : undefined;
    } catch {
      return undefined;
    }
  }

  /** Removes temp files an interrupted run left; call with the lock held. */
  async clearTemp(): Promise<void> {
    await Deno.remove(this.tmpDir, { recursive: true }).catch(() => {});
    await Deno.mkdir(this.tmpDir, { recursive: true });
  }

  /**
   * Streams a blob into place: hashed while written to a temp file, checked
   * against its digest and size, fsynced, then renamed to its final path.
   * A mismatch deletes the temp file and throws InputError.
   */
  async putBlob(digest: string, size: number, chunks: AsyncIterable<Uint8Array>, label: string): Promise<void> {
    await this.#announceWrite();
    // A blob that cannot fit is refused before any byte of it is written.
    const free = await freeBytes(this.tmpDir);
    if (free !== undefined && free < size) {
      throw new EnvironmentError(
        `Cannot write blob ${digest} (${label}, ${formatBytes(size)}): the filesystem of ${this.root} has only ${formatBytes(free)} free`,
      );
    }
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
      const got = `sha256:${hasher.digest("hex")}`;
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

  /** Reads a blob whole, refusing ones larger than `max`. */
  async readBlob(digest: string, max: number): Promise<Uint8Array | undefined> {
    const size = await this.blobSize(digest);
    if (size === undefined) return undefined;
    if (size > max) throw new InputError(`Cannot read manifest ${digest}: ${size} bytes is more than the ${max}-byte limit`);
    return await Deno.readFile(this.blobPath(digest));
  }

  /** Writes a link file (`sha256:<hex>`, no newline) unless it already holds that. */
  async writeLink(relPath: string, digest: string): Promise<boolean> {
    const path = join(this.v2, relPath);
    try {
      if ((await Deno.readTextFile(path)) === digest) return false;
    } catch { /* absent: write it */ }
    await this.#announceWrite();
    // Links are tiny and many: flushed together by the caller (syncFilesystem) before records say "complete".
    return await atomicWrite(path, digest, { skipIfSame: false, durable: false });
  }

  async #announceWrite(): Promise<void> {
    if (this.#wrote) return;
    this.#wrote = true;
    await this.beforeWrite?.();
  }
}
