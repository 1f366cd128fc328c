/**
 * A data directory in memory: the live ISO's /var is a tmpfs with no size
 * limit of its own (half of RAM), so a load of a release-sized archive there
 * eats the memory the install needs. Refused before any work unless asked for.
 */
import { statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { NoRoomError } from "./errors.ts";
import { formatBytes } from "./log.ts";
import { bytesUnder } from "./disk_space.ts";

/** statfs f_type of the RAM-backed file systems (linux/magic.h). */
export const RAM_FS_TYPES: ReadonlyMap<number, string> = new Map([
  [0x01021994, "tmpfs"],
  [0x858458f6, "ramfs"],
]);

/** The share of MemAvailable a load may fill in a RAM-backed DIR without --allow-ram-target. */
export const RAM_SHARE = 0.5;

/** The facts the decision needs. */
export interface RamTargetFacts {
  /** "tmpfs", "ramfs", or undefined for a file system on a disk. */
  ramFs?: string;
  /** Bytes the load would write into DIR (the source's, less blobs already there). */
  need: number;
  /** Memory available (MemAvailable), in bytes; undefined when unknown. */
  memAvailable?: number;
  /** --allow-ram-target. */
  allow: boolean;
}

/**
 * Why a load into a RAM-backed DIR is refused, or undefined when it may go on:
 * it is refused when it would write more than half of MemAvailable there.
 */
export function ramTargetRefusal(f: RamTargetFacts): string | undefined {
  if (!f.ramFs || f.allow || f.memAvailable === undefined) return undefined;
  const limit = Math.floor(f.memAvailable * RAM_SHARE);
  if (f.need <= limit) return undefined;
  return `it would write ${formatBytes(f.need)} into a ${f.ramFs} (RAM), more than half of the ${formatBytes(f.memAvailable)} ` +
    `of memory available (limit ${formatBytes(limit)}); serve the archive in place (isoload serve --source), ` +
    "give a --data-dir on a disk, or pass --allow-ram-target";
}

/** The RAM-backed file system `path` (or its nearest existing parent) is on, or undefined. */
export async function ramFsOf(path: string): Promise<string | undefined> {
  for (let p = path;; p = dirname(p)) {
    try {
      return RAM_FS_TYPES.get(Number((await statfs(p)).type));
    } catch (e) {
      if ((e as { code?: string }).code !== "ENOENT" || p === dirname(p)) return undefined;
    }
  }
}

function memAvailable(): number | undefined {
  // Test-only seam: tests cannot fill half of a real machine's memory.
  const fake = Deno.env.get("ISOLOAD_TEST_MEMAVAILABLE");
  if (fake) return Number(fake);
  try {
    // Not /proc/meminfo: Deno reads /proc only with --allow-all, and the shipped binary has named permissions
    // (--allow-sys=systemMemoryInfo covers this call).
    return Deno.systemMemoryInfo().available;
  } catch {
    return undefined;
  }
}

/**
 * Refuses (NoRoomError, exit 5) before any write a load of `sourceBytes`
 * into a RAM-backed `dir` past the safe share of memory. Blobs already under
 * `blobsDir` count as there (only walked when the whole source would not fit).
 */
export async function checkRamTarget(action: string, dir: string, sourceBytes: number, blobsDir: string, allow: boolean): Promise<void> {
  const ramFs = await ramFsOf(dir);
  if (!ramFs || allow) return;
  const available = memAvailable();
  if (!ramTargetRefusal({ ramFs, need: sourceBytes, memAvailable: available, allow })) return;
  const need = Math.max(0, sourceBytes - await bytesUnder(blobsDir));
  const why = ramTargetRefusal({ ramFs, need, memAvailable: available, allow });
  if (why) throw new NoRoomError(`Cannot ${action}: ${why}`);
}
