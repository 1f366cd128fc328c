/** Files written so that a reader sees the old bytes or the new, never a half. */
import { basename, dirname, join } from "node:path";
import { wrapFsError } from "./errors.ts";
import { equalBytes } from "./bytes.ts";

/** A file's text, or undefined when it does not exist; any other failure is the host's (EnvironmentError). */
export async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw wrapFsError(`read ${path}`, e);
  }
}

/**
 * Bytes per write(2) of {@link writeAll} and {@link writeAllSync}: on this kernel and VM, writes of 4 MiB cost the page cache 1.5-2x the
 * system time of the same bytes in 1 MiB writes (a 1 GB load to ext4: 1.4-2.1 s against 1.9-3.0 s, alternated).
 */
const WRITE_SLICE = 1 << 20;

/** Writes all of `data` to `file`, looping over short writes, in pieces of at most 1 MiB. */
export async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off, Math.min(data.length, off + WRITE_SLICE)));
}

/**
 * Writes all of `data` to `file` on this thread, in pieces of at most 1 MiB. For a copy loop with nothing else on
 * this thread (a load from an archive): a synchronous write skips the hop to an I/O thread while an async read started
 * before it runs on meanwhile; it blocks the event loop for the copy into the page cache, so a store whose thread
 * has other work writes with {@link writeAll} (RegistryStore.writesOffThread).
 */
export function writeAllSync(file: Deno.FsFile, data: Uint8Array): void {
  for (let at = 0; at < data.length;) at += file.writeSync(data.subarray(at, Math.min(data.length, at + WRITE_SLICE)));
}

/** A temp name beside `path`, hidden and unique to this process. */
export function tempPathFor(path: string): string {
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  return join(dirname(path), `.${basename(path)}.tmp-${Deno.pid}-${rand}`);
}

/** fsyncs a directory so a rename inside it survives power loss; best effort. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch { /* some filesystems refuse fsync on directories; the rename is still atomic */ }
}

/**
 * Writes `data` to `path` atomically: temp file in the same directory,
 * fsync, rename, fsync of the directory. Creates parent directories.
 * Returns false (and writes nothing) when the file already holds exactly `data`.
 */
export async function atomicWrite(
  path: string,
  data: Uint8Array | string,
  options: { mode?: number; skipIfSame?: boolean; durable?: boolean } = {},
): Promise<boolean> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  if (options.skipIfSame !== false) {
    try {
      const cur = await Deno.readFile(path);
      if (equalBytes(cur, bytes)) return false;
    } catch { /* absent or unreadable: write it */ }
  }
  const tmp = tempPathFor(path);
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
    if (options.durable === false) {
      // One call for open, write and close: links come by the thousand.
      await Deno.writeFile(tmp, bytes, { createNew: true, mode: options.mode ?? 0o644 });
    } else {
      const f = await Deno.open(tmp, { write: true, createNew: true, mode: options.mode ?? 0o644 });
      try {
        await writeAll(f, bytes);
        await f.sync();
      } finally {
        f.close();
      }
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw wrapFsError(`write ${path}`, e);
  }
  if (options.durable !== false) await syncDir(dirname(path));
  return true;
}

/**
 * Flushes a whole filesystem (syncfs via `sync -f`): one flush for many small
 * files written with `durable: false`, before a record says they are complete.
 */
export async function syncFilesystem(path: string): Promise<void> {
  try {
    await new Deno.Command("sync", { args: ["-f", path], stdout: "null", stderr: "null" }).output();
  } catch { /* no sync tool: the renames are still atomic, only power-loss durability is weaker */ }
}
