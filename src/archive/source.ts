/**
 * Where images come from: a tar archive or a directory, read as one ordered
 * stream of entries. Formats (OCI layout, oc-mirror) sit on top of this.
 */
import { join } from "node:path";
import { ByteReader, TruncatedError } from "./byte_reader.ts";
import { checkLinkTarget, safeEntryPath } from "./entry_path.ts";
import { InputError, wrapFsError } from "../util/errors.ts";
import { type TarEntryKind, TarReader } from "./tar_reader.ts";

/** One member of a source, its path already checked to stay inside the root. */
export interface SourceEntry {
  path: string;
  kind: TarEntryKind;
  size: number;
  linkname: string;
  /** Streams the bytes; at most once, and before asking for the next entry. */
  chunks(): AsyncIterable<Uint8Array>;
  /**
   * Reads the next bytes into `dst`, the caller's own memory (no copy through a
   * buffer of the source's); resolves to the count, 0 once all are read. Use
   * either this or `chunks()` for an entry, before asking for the next entry.
   */
  read(dst: Uint8Array): Promise<number>;
  /** Where the bytes lie, to be read again later in place (serving straight from the archive). */
  where: BlobLocation;
}

/** A byte range of a file: an entry's data inside a tar, or a whole file of a directory. */
export interface BlobLocation {
  file: string;
  offset: number;
  size: number;
}

/** An opened source. */
export interface Source extends AsyncIterable<SourceEntry> {
  /** "tar" or "directory". */
  readonly container: "tar" | "directory";
  readonly path: string;
  /** Total bytes of the archive, or of the files in the directory. */
  readonly size: number;
  /** Bytes consumed so far (read or skipped), for progress. */
  readonly position: number;
  close(): void;
}

/** Opens SOURCE as a tar archive or a directory. */
export async function openSource(path: string): Promise<Source> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new InputError(`Cannot open source ${path}: no such file or directory`);
    throw wrapFsError(`open source ${path}`, e);
  }
  if (info.isDirectory) return await DirSource.open(path);
  if (!info.isFile) throw new InputError(`Cannot open source ${path}: not a regular file or directory`);
  return await TarSource.open(path, info.size);
}

class TarSource implements Source {
  readonly container = "tar" as const;
  #file: Deno.FsFile;
  #reader: ByteReader;
  constructor(readonly path: string, readonly size: number, file: Deno.FsFile) {
    this.#file = file;
    this.#reader = new ByteReader(file);
  }

  static async open(path: string, size: number): Promise<TarSource> {
    const file = await Deno.open(path).catch((e) => {
      throw wrapFsError(`open source ${path}`, e);
    });
    const head = new Uint8Array(512);
    const n = (await file.read(head)) ?? 0;
    await file.seek(0, Deno.SeekMode.Start);
    if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
      file.close();
      throw new InputError(`Cannot read ${path}: it is gzip-compressed; give the uncompressed tar (gunzip it first)`);
    }
    if (n >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
      file.close();
      throw new InputError(`Cannot read ${path}: it is zstd-compressed; give the uncompressed tar`);
    }
    return new TarSource(path, size, file);
  }

  get position(): number {
    return this.#reader.position;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<SourceEntry> {
    const tar = new TarReader(this.#reader);
    let first = true;
    try {
      for await (const e of tar) {
        first = false;
        const path = safeEntryPath(e.name);
        if (e.kind === "symlink" || e.kind === "hardlink") checkLinkTarget(path, e.linkname, e.kind);
        // A size beyond the end of the file is a lie or a truncation: say so before anything acts on it (a space check, say).
        if (e.size > this.size - e.dataOffset) {
          throw new InputError(
            `Cannot read ${this.path}: entry ${JSON.stringify(e.name)} claims ${e.size} bytes but only ${
              Math.max(0, this.size - e.dataOffset)
            } remain; the archive is truncated or corrupt`,
          );
        }
        yield {
          path,
          kind: e.kind,
          size: e.size,
          linkname: e.linkname,
          chunks: () => tar.data(e),
          read: (dst) => tar.readInto(e, dst),
          where: { file: this.path, offset: e.dataOffset, size: e.size },
        };
      }
    } catch (err) {
      if (err instanceof InputError) throw err;
      if (err instanceof TruncatedError) throw new InputError(`Cannot read ${this.path}: ${err.message}`, { cause: err });
      if (err instanceof SyntaxError) {
        const what = first ? "not a tar archive or a directory" : "corrupt tar archive";
        throw new InputError(`Cannot read ${this.path}: ${what} (${err.message})`, { cause: err });
      }
      throw wrapFsError(`read ${this.path}`, err);
    }
  }

  close(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }
}

class DirSource implements Source {
  readonly container = "directory" as const;
  position = 0;
  constructor(readonly path: string, readonly size: number, private files: DirFile[]) {}

  static async open(root: string): Promise<DirSource> {
    const files: DirFile[] = [];
    let size = 0;
    const walk = async (rel: string) => {
      const names: Deno.DirEntry[] = [];
      for await (const d of Deno.readDir(join(root, rel))) names.push(d);
      names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const d of names) {
        const r = rel ? `${rel}/${d.name}` : d.name;
        const st = await Deno.lstat(join(root, r));
        if (st.isSymlink) {
          files.push({ path: r, kind: "symlink", size: 0, linkname: await Deno.readLink(join(root, r)) });
        } else if (st.isDirectory) {
          files.push({ path: r, kind: "directory", size: 0, linkname: "" });
          await walk(r);
        } else if (st.isFile) {
          files.push({ path: r, kind: "file", size: st.size, linkname: "" });
          size += st.size;
        } else {
          files.push({ path: r, kind: "special", size: 0, linkname: "" });
        }
      }
    };
    try {
      await walk("");
    } catch (e) {
      throw wrapFsError(`read directory ${root}`, e);
    }
    return new DirSource(root, size, files);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<SourceEntry> {
    for (const f of this.files) {
      if (f.kind === "symlink") checkLinkTarget(f.path, f.linkname, "symlink");
      const full = join(this.path, f.path);
      const advance = (n: number) => {
        this.position += n;
      };
      // read(): the file opened at the first call, closed at its end, on an error, or when the next entry is asked for.
      let open: Deno.FsFile | undefined;
      let left = f.size;
      const close = () => {
        open?.close();
        open = undefined;
      };
      const entry: SourceEntry = {
        ...f,
        where: { file: full, offset: 0, size: f.size },
        async read(dst) {
          if (left === 0) return 0;
          try {
            open ??= await Deno.open(full);
            const n = (await open.read(dst.subarray(0, Math.min(dst.length, left)))) ?? 0;
            if (n === 0) throw new InputError(`Cannot read ${full}: it shrank while being read`);
            left -= n;
            advance(n);
            if (left === 0) close();
            return n;
          } catch (e) {
            close();
            throw e;
          }
        },
        async *chunks() {
          const file = await Deno.open(full);
          try {
            const r = new ByteReader(file, 1 << 20);
            for await (const c of r.chunks(f.size)) {
              advance(c.length);
              yield c;
            }
          } catch (e) {
            if (e instanceof TruncatedError) throw new InputError(`Cannot read ${full}: it shrank while being read`);
            throw e;
          } finally {
            file.close();
          }
        },
      };
      try {
        yield entry;
      } finally {
        close();
      }
    }
  }

  close(): void {}
}

interface DirFile {
  path: string;
  kind: TarEntryKind;
  size: number;
  linkname: string;
}
