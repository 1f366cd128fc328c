/** Free space on the filesystem a path is on, and the bytes already under a directory. */
import { statfs } from "node:fs/promises";
import { dirname, join } from "node:path";
import { NoRoomError } from "./errors.ts";
import { formatBytes } from "./log.ts";

/** statfs of `path`, or of its nearest existing parent; undefined when unknown. */
async function statfsNearest(path: string): Promise<{ bavail: number; bsize: number; type: number } | undefined> {
  for (let p = path;; p = dirname(p)) {
    try {
      const s = await statfs(p);
      return { bavail: Number(s.bavail), bsize: Number(s.bsize), type: Number(s.type) };
    } catch (e) {
      if ((e as { code?: string }).code !== "ENOENT" || p === dirname(p)) return undefined;
    }
  }
}

/** Bytes available to this user on the filesystem of `path` (or of its nearest existing parent); undefined when unknown. */
export async function freeBytes(path: string): Promise<number | undefined> {
  const s = await statfsNearest(path);
  return s && s.bavail * s.bsize;
}

/** Filesystem types (statfs f_type) whose files live in memory: tmpfs, ramfs. */
const MEMORY_FS = new Set([0x01021994, 0x858458f6]);

/** Whether `path` (or its nearest existing parent) is on tmpfs or ramfs; false when unknown. */
export async function onMemoryFs(path: string): Promise<boolean> {
  const s = await statfsNearest(path);
  return s !== undefined && MEMORY_FS.has(s.type);
}

/** Every file under `dir`, sorted by path, with its size (-1 for what is not a regular file); none when `dir` does not exist. */
export async function filesUnder(dir: string): Promise<{ path: string; size: number }[]> {
  const out: { path: string; size: number }[] = [];
  const walk = async (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(d));
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else out.push({ path: p, size: e.isFile ? (await Deno.stat(p).catch(() => ({ size: 0 }))).size : -1 });
    }
  };
  await walk(dir);
  return out;
}

/** Total size of the regular files under `dir` (0 when it does not exist). */
export async function bytesUnder(dir: string): Promise<number> {
  return (await filesUnder(dir)).reduce((n, f) => n + Math.max(0, f.size), 0);
}

/** Slack for link files, directories and records beside the blobs. */
const SLACK = 16 << 20;

/**
 * Refuses before any write when the filesystem of `dir` cannot hold what a
 * source needs: its size, less the blob bytes already under `blobsDir` (a
 * re-run), plus slack. The blobs are only counted when the free space does
 * not cover the whole source anyway, so a roomy disk costs no directory walk.
 */
export async function checkSpaceFor(action: string, dir: string, sourceBytes: number, blobsDir: string): Promise<void> {
  const free = await freeBytes(dir);
  if (free === undefined || free >= sourceBytes + SLACK) return;
  const need = Math.max(0, sourceBytes - await bytesUnder(blobsDir)) + SLACK;
  if (free < need) {
    throw new NoRoomError(
      `Cannot ${action}: it needs about ${formatBytes(need)} and the filesystem of ${dir} has ${formatBytes(free)} free ` +
        "(free some space or give a --data-dir on a larger filesystem)",
    );
  }
}
