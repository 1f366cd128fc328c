/** One writer per data directory: an flock on `DIR/isoload/lock`. */
import { join } from "node:path";
import { BusyError, wrapFsError } from "./errors.ts";

/** A held lock; release() is idempotent, and the OS drops it when the process dies. */
export interface HeldLock {
  release(): void;
}

/**
 * Takes the data directory's lock or refuses at once, naming the holder.
 * The lock dies with the process, so a killed run never leaves it stuck.
 */
export async function lockDataDir(stateDir: string, purpose: string): Promise<HeldLock> {
  const path = join(stateDir, "lock");
  let file: Deno.FsFile;
  try {
    await Deno.mkdir(stateDir, { recursive: true });
    file = await Deno.open(path, { read: true, write: true, create: true });
  } catch (e) {
    throw wrapFsError(`open lock ${path}`, e);
  }
  // Deno has no try-lock: a lock that is not granted at once is held by someone else.
  const granted = await Promise.race([
    file.lock(true).then(() => true),
    new Promise<false>((r) => setTimeout(() => r(false), 300)),
  ]);
  if (!granted) {
    let holder = "";
    try {
      holder = (await Deno.readTextFile(path)).trim();
    } catch { /* unreadable */ }
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
