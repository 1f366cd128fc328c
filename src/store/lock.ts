/** One writer per data directory: an flock on `DIR/isoload/lock`. */
import { dirname } from "node:path";
import type { DataDirPaths } from "./paths.ts";
import { BusyError, wrapFsError } from "../util/errors.ts";

/** A held lock; release() is idempotent, and the OS drops it when the process dies. */
export interface HeldLock {
  release(): void;
}

/** Deno has no try-lock: a lock that is not granted at once is held by someone else. */
export async function tryLock(file: Deno.FsFile): Promise<boolean> {
  return await Promise.race([
    file.lock(true).then(() => true),
    new Promise<false>((r) => setTimeout(() => r(false), 300)),
  ]);
}

/** What the holder wrote into the lock file ("pid N, load …"), or "" when unreadable. */
async function holderOf(path: string): Promise<string> {
  return (await Deno.readTextFile(path).catch(() => "")).trim();
}

/** Who holds DIR's lock right now (as the holder described itself), or undefined when nobody does. Takes nothing. */
export async function lockHolder(paths: DataDirPaths): Promise<string | undefined> {
  const path = paths.lock;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true });
  } catch {
    return undefined; // no lock file: no run ever held it
  }
  try {
    return await tryLock(file) ? undefined : (await holderOf(path)) || "another isoload run";
  } finally {
    file.close(); // releases the lock if it was granted
  }
}

/**
 * Takes the data directory's lock or refuses at once, naming the holder.
 * The lock dies with the process, so a killed run never leaves it stuck.
 */
export async function lockDataDir(paths: DataDirPaths, purpose: string): Promise<HeldLock> {
  const path = paths.lock;
  let file: Deno.FsFile;
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
    file = await Deno.open(path, { read: true, write: true, create: true });
  } catch (e) {
    throw wrapFsError(`open lock ${path}`, e);
  }
  if (!await tryLock(file)) {
    const holder = await holderOf(path);
    throw new BusyError(`Cannot ${purpose}: another isoload run holds ${path}${holder ? ` (${holder})` : ""}`);
  }
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`pid ${Deno.pid}, ${purpose}, since ${new Date().toISOString()}\n`));
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      try {
        file.unlockSync();
        file.close();
      } catch { /* closed */ }
    },
  };
}
