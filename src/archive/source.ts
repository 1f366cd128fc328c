/**
 * Where images come from: a tar archive or a directory, read as one ordered
 * stream of entries. Formats (OCI layout, oc-mirror) sit on top of this.
 */
import { basename, join } from "node:path";
import { ByteReader, ConcatFile, TruncatedError } from "./byte_reader.ts";
import { expandGlob, hasGlob, planParts } from "./parts.ts";
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

/** A byte range of one file. */
export interface FileSpan {
  file: string;
  offset: number;
  size: number;
}

/**
 * Where a blob's bytes lie: `size` bytes from `offset` of `file` (an entry's
 * data inside a tar part, or a whole file of a directory). When a split
 * archive's chunk boundary cuts the data, `spans` lists the pieces in order
 * (the first starting at `file`, `offset`).
 */
export interface BlobLocation extends FileSpan {
  spans?: FileSpan[];
}

/** The pieces of a location, in order. */
export function spansOf(l: BlobLocation): FileSpan[] {
  return l.spans ?? [{ file: l.file, offset: l.offset, size: l.size }];
}

/** The pieces holding bytes [start, start+length) of a location. */
export function sliceSpans(spans: readonly FileSpan[], start: number, length: number): FileSpan[] {
  const out: FileSpan[] = [];
  let skip = start;
  let left = length;
  for (const s of spans) {
    if (left <= 0) break;
    if (skip >= s.size) {
      skip -= s.size;
      continue;
    }
    const take = Math.min(left, s.size - skip);
    out.push({ file: s.file, offset: s.offset + skip, size: take });
    left -= take;
    skip = 0;
  }
  return out;
}

/** One file a source was read from, as it was when opened (to notice a change on a re-run). */
export interface SourceFile {
  path: string;
  size: number;
  mtimeMs: number;
}

/** One archive of a source: a tar file, or a split tar's chunks; a directory source has one "part", itself. */
export interface SourcePart {
  /** For messages: the file, or a split file's first chunk and range (`images.tar.00…02`). */
  name: string;
  files: SourceFile[];
}

/** An opened source. */
export interface Source extends AsyncIterable<SourceEntry> {
  /** "tar" or "directory". */
  readonly container: "tar" | "directory";
  /** For messages: the path, or a short name for several parts (`…/mirror_000001.tar … mirror_000004.tar (4 parts)`). */
  readonly path: string;
  /** The archives read, in order. */
  readonly parts: readonly SourcePart[];
  /** Total bytes of the archives, or of the files in the directory. */
  readonly size: number;
  /** Bytes consumed so far (read or skipped), for progress. */
  readonly position: number;
  close(): void;
}

function listDirSync(dir: string): string[] | undefined {
  try {
    return [...Deno.readDirSync(dir)].map((d) => d.name);
  } catch {
    return undefined;
  }
}

/**
 * The files a source's arguments name: globs expanded (by isoload, in natural
 * order), each argument checked to exist. A glob matching nothing is an error.
 */
export function expandSourceArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    if (!hasGlob(a)) {
      out.push(a);
      continue;
    }
    const found = expandGlob(a, listDirSync);
    if (found.length === 0) throw new InputError(`Cannot open source ${a}: the pattern matches no file`);
    out.push(...found);
  }
  return out;
}

async function statSource(path: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new InputError(`Cannot open source ${path}: no such file or directory`);
    throw wrapFsError(`open source ${path}`, e);
  }
}

/**
 * Opens a source given as one or more paths or quoted globs: a directory (alone),
 * a tar archive, or several files that are one source (a numbered series of
 * tar parts, the chunks of a split tar, or both; see parts.ts), read as one
 * ordered stream of entries.
 */
export async function openSources(args: readonly string[]): Promise<Source> {
  if (args.length === 0) throw new InputError("Cannot open source: no path given");
  const paths = expandSourceArgs(args);
  const infos = await Promise.all(paths.map(async (p) => ({ path: p, info: await statSource(p) })));
  const dirs = infos.filter((i) => i.info.isDirectory);
  if (dirs.length > 0) {
    if (paths.length > 1) {
      throw new InputError(`Cannot open source ${dirs[0].path} with other paths: a directory is a whole source on its own`);
    }
    return await DirSource.open(paths[0], infos[0].info);
  }
  const odd = infos.find((i) => !i.info.isFile);
  if (odd) throw new InputError(`Cannot open source ${odd.path}: not a regular file or directory`);
  const byPath = new Map(infos.map((i) => [i.path, i.info]));
  const parts = planParts(paths, listDirSync).map((a): SourcePart => ({
    name: a.name,
    files: a.chunks.map((c) => ({ path: c, size: byPath.get(c)!.size, mtimeMs: byPath.get(c)!.mtime?.getTime() ?? 0 })),
  }));
  return await TarSource.open(parts);
}

/** Opens SOURCE as a tar archive or a directory (one path; see openSources for several). */
export async function openSource(path: string): Promise<Source> {
  return await openSources([path]);
}

/** A short name for several parts, for messages. */
function describeParts(parts: readonly SourcePart[]): string {
  if (parts.length === 1) return parts[0].name;
  return `${parts[0].name} … ${basename(parts[parts.length - 1].name)} (${parts.length} parts)`;
}

// Tar pads its last record with zeros (GNU: 20 blocks); more than that after the end marker is another chunk's data.
const END_PADDING = 20 * 512;

class TarSource implements Source {
  readonly container = "tar" as const;
  readonly path: string;
  readonly size: number;
  #done = 0;
  #current?: { file: ConcatFile; reader: ByteReader };

  private constructor(readonly parts: readonly SourcePart[]) {
    this.path = describeParts(parts);
    this.size = parts.reduce((n, p) => n + p.files.reduce((m, f) => m + f.size, 0), 0);
  }

  static async open(parts: SourcePart[]): Promise<TarSource> {
    for (const part of parts) {
      const file = new ConcatFile(part.files);
      try {
        const head = new Uint8Array(4);
        let n = 0;
        while (n < 4) {
          const r = await file.read(head.subarray(n)).catch(() => null);
          if (!r) break;
          n += r;
        }
        if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
          throw new InputError(`Cannot read ${part.name}: it is gzip-compressed; give the uncompressed tar (gunzip it first)`);
        }
        if (n >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
          throw new InputError(`Cannot read ${part.name}: it is zstd-compressed; give the uncompressed tar`);
        }
      } catch (e) {
        if (e instanceof InputError) throw e;
        throw wrapFsError(`open source ${part.name}`, e);
      } finally {
        file.close();
      }
    }
    return new TarSource(parts);
  }

  get position(): number {
    return this.#done + (this.#current?.reader.position ?? 0);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<SourceEntry> {
    for (const part of this.parts) {
      const file = new ConcatFile(part.files);
      const reader = new ByteReader(file);
      this.#current = { file, reader };
      try {
        yield* this.#entries(part, file, reader);
      } finally {
        file.close();
      }
      this.#done += file.size;
      this.#current = undefined;
    }
  }

  /** Where byte `offset` of a split part lies, for messages about it. */
  #near(part: SourcePart, file: ConcatFile, offset: number): string {
    if (part.files.length === 1) return "";
    const m = file.memberAt(Math.min(offset, Math.max(0, file.size - 1)));
    return ` (byte ${offset} of the joined chunks is byte ${m.offset} of ${m.path})`;
  }

  async *#entries(part: SourcePart, file: ConcatFile, reader: ByteReader): AsyncGenerator<SourceEntry> {
    const tar = new TarReader(reader);
    let first = true;
    try {
      for await (const e of tar) {
        first = false;
        const path = safeEntryPath(e.name);
        if (e.kind === "symlink" || e.kind === "hardlink") checkLinkTarget(path, e.linkname, e.kind);
        // A size beyond the end of the file is a lie or a truncation: say so before anything acts on it (a space check, say).
        if (e.size > file.size - e.dataOffset) {
          throw new InputError(
            `Cannot read ${part.name}: entry ${JSON.stringify(e.name)} claims ${e.size} bytes but only ${
              Math.max(0, file.size - e.dataOffset)
            } remain; the archive is truncated or corrupt${part.files.length > 1 ? " (is a chunk missing?)" : ""}`,
          );
        }
        const spans = file.spans(e.dataOffset, e.size);
        yield {
          path,
          kind: e.kind,
          size: e.size,
          linkname: e.linkname,
          chunks: () => tar.data(e),
          read: (dst) => tar.readInto(e, dst),
          where: { file: spans[0].file, offset: spans[0].offset, size: e.size, ...(spans.length > 1 ? { spans } : {}) },
        };
      }
    } catch (err) {
      if (err instanceof InputError) throw err;
      const near = this.#near(part, file, reader.position);
      if (err instanceof TruncatedError) throw new InputError(`Cannot read ${part.name}: ${err.message}${near}`, { cause: err });
      if (err instanceof SyntaxError) {
        const what = first ? "not a tar archive or a directory" : "corrupt tar archive";
        throw new InputError(`Cannot read ${part.name}: ${what} (${err.message})${near}`, { cause: err });
      }
      throw wrapFsError(`read ${part.name}`, err);
    }
    // The end marker of a split tar must lie in its last chunk: more after it is a chunk that does not belong.
    if (part.files.length > 1 && file.size - reader.position > END_PADDING) {
      const extra = file.memberAt(reader.position + END_PADDING);
      throw new InputError(
        `Cannot read ${part.name}: the tar archive ends at byte ${reader.position} of the joined chunks, before ${extra.path}: ` +
          "that chunk is an extra one (not a continuation)",
      );
    }
  }

  close(): void {
    this.#current?.file.close();
  }
}

class DirSource implements Source {
  readonly container = "directory" as const;
  position = 0;
  readonly parts: readonly SourcePart[];
  constructor(readonly path: string, readonly size: number, private files: DirFile[], mtimeMs: number) {
    this.parts = [{ name: path, files: [{ path, size, mtimeMs }] }];
  }

  static async open(root: string, info: Deno.FileInfo): Promise<DirSource> {
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
    return new DirSource(root, size, files, info.mtime?.getTime() ?? 0);
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
