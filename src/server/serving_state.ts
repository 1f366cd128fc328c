/**
 * What a running `serve` serves, published as one state file the path mapper
 * names (`DIR/isoload/serving.json`), so `status` reads facts instead of
 * guessing from a registry's configuration. Written atomically once the
 * server listens; on exit it is renamed to `served.json` (what was served
 * last). A file whose process is gone (killed with SIGKILL, a power cut) is
 * read as not serving: the pid and its start time must both still match (where
 * /proc can be read; elsewhere, the lock a serve holds on the file must be held).
 * A serve that copies into DIR in the background records how the copy went
 * by replacing the file (temp, fsync, lock, rename): the new file is locked
 * before it takes the name, so it never reads as a dead serve's, nor half-written.
 */
import { dirname } from "node:path";
import { readTextIfExists, syncDir, tempPathFor, writeAll } from "../util/atomic_write.ts";
import { wrapFsError } from "../util/errors.ts";
import type { DataDirPaths } from "../store/paths.ts";
import { tryLock } from "../store/lock.ts";
import type { ImageBlobs } from "../image/image_blobs.ts";

/** Where a serve's images come from, in the order it looks: DIR's tree, an archive in place, peers. */
export interface ServingOrigin {
  /** The data directory whose verified blobs are served first (and kept: a fill or a load writes there). */
  dataDir?: string;
  /** The archive (its parts) served in place, for what DIR lacks. */
  inPlace?: string[];
  /** Peer registries what DIR lacks is copied from. */
  peers?: string[];
  /** Whether what DIR lacks is being copied into it in the background (load --serve, serve --peer's fill). */
  filling?: boolean;
}

/**
 * How the background copy into DIR (load --serve, serve --persist, serve --peer's fill) went, as the serve last
 * recorded it: `copying` until it ends, then `complete` (every blob served from DIR) or `stopped` with why.
 */
export interface CopyProgress {
  state: "copying" | "stopped" | "complete";
  /** When the copy entered this state. */
  at: string;
  /** Why it stopped, in one line. */
  error?: string;
  /** How the serve goes on after the copy stopped ("from the archive in place"); absent when the serve stops too. */
  stillServing?: string;
}

/** The state file. */
export interface ServingState {
  version: 1;
  /** Which registry serves: isoload's own, a docker-registry binary, or a registry image under podman. */
  server: "builtin" | "registry-command" | "registry-image";
  /** The address it listens on, and the URL a local client reaches it at. */
  listen: string;
  url: string;
  tls: boolean;
  /** What it serves from: DIR, or an archive in place. */
  from: string;
  /** The same, each kind apart (absent in files older serves wrote). */
  origin?: ServingOrigin;
  /** Every image served and the blobs it needs, so status can say how much DIR holds. */
  wants?: ImageBlobs;
  /** The background copy into DIR, when the serve makes one (absent in files older serves wrote). */
  copy?: CopyProgress;
  /** The serving isoload process, and when it started serving. */
  pid: number;
  /** The process's start time in clock ticks since boot (/proc/PID/stat field 22), so a reused pid is not taken for it. */
  pidStart?: string;
  started: string;
}

/** The start time in /proc/PID/stat's text (field 22). */
function fieldStart(stat: string): string | undefined {
  // The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

/** The start time of a process, or undefined when it is gone or /proc cannot be read. */
async function processStart(pid: number): Promise<string | undefined> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => undefined);
  return stat === undefined ? undefined : fieldStart(stat);
}

/** Whether the process that wrote `s` (published at `path`) still runs. */
async function isLive(s: ServingState, path: string): Promise<boolean> {
  let stat: string;
  try {
    stat = await Deno.readTextFile(`/proc/${s.pid}/stat`);
  } catch (e) {
    // Deno lets only --allow-all read /proc/PID (or signal another pid): the shipped binary, with named permissions,
    // asks the serving process's lock on the state file instead.
    return e instanceof Deno.errors.NotCapable && await lockedByServer(path);
  }
  return s.pidStart === undefined || s.pidStart === fieldStart(stat);
}

/** Whether a serve holds the lock it takes on its state file for as long as it runs (the OS drops it when it dies). */
async function lockedByServer(path: string): Promise<boolean> {
  const file = await Deno.open(path, { read: true }).catch(() => undefined);
  if (!file) return false;
  try {
    return !await tryLock(file);
  } finally {
    file.close();
  }
}

/**
 * A published state. `update()` replaces what may change while serving (the copy's progress); `withdraw()`
 * (idempotent) turns it into the last-served record on exit. Neither touches a file another serve of DIR wrote since.
 */
export interface Published {
  update(change: Pick<ServingState, "copy">): Promise<void>;
  withdraw(): Promise<void>;
}

/** Writes `text` to a temp file beside `path`, locked, then renames it over `path`; returns the new file, lock held. */
async function replaceLocked(path: string, text: string): Promise<Deno.FsFile> {
  const tmp = tempPathFor(path);
  let file: Deno.FsFile | undefined;
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
    file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
    await writeAll(file, new TextEncoder().encode(text));
    await file.sync();
    // flock belongs to the file, not its name: locked before the rename, serving.json is never seen unlocked while we run.
    await file.lock(true);
    await Deno.rename(tmp, path);
  } catch (e) {
    file?.close();
    await Deno.remove(tmp).catch(() => {});
    throw wrapFsError(`write ${path}`, e);
  }
  await syncDir(dirname(path));
  return file;
}

/** Publishes what this process serves in DIR. */
export async function publishServing(
  paths: DataDirPaths,
  state: Omit<ServingState, "version" | "pid" | "pidStart" | "started">,
): Promise<Published> {
  let full: ServingState = {
    version: 1,
    ...state,
    pid: Deno.pid,
    pidStart: await processStart(Deno.pid),
    started: new Date().toISOString(),
  };
  let text = JSON.stringify(full, null, 2) + "\n";
  // Held while this process runs: how a reader without access to /proc tells a live serve from a killed one (locked
  // before it takes the name, as every update is).
  let held = await replaceLocked(paths.serving, text);
  const retired: Deno.FsFile[] = [];
  let withdrawal: Promise<void> | undefined;
  let closed = false;
  // Another serve of the same DIR may have replaced the file since: only our own is rewritten or moved.
  const ours = async () => (await readTextIfExists(paths.serving).catch(() => undefined)) === text;
  // One change at a time, and the withdrawal after the last.
  let pending = Promise.resolve();
  return {
    update(change) {
      const next = pending.then(async () => {
        if (closed || !await ours()) return;
        const nextState = { ...full, ...change };
        const nextText = JSON.stringify(nextState, null, 2) + "\n";
        const file = await replaceLocked(paths.serving, nextText);
        // The replaced file stays open and locked until withdraw(): a reader that opened it just before the rename
        // waits on its lock, and must not get it (it would take a live serve for dead). A serve updates a few times.
        retired.push(held);
        [held, text, full] = [file, nextText, nextState];
      });
      pending = next.catch(() => {});
      return next;
    },
    withdraw() {
      return withdrawal ??= pending.then(async () => {
        closed = true;
        try {
          if (!await ours()) return;
          await Deno.rename(paths.serving, paths.served).catch(() => {});
        } finally {
          for (const f of [...retired.splice(0), held]) f.close();
        }
      });
    },
  };
}

async function readState(path: string): Promise<ServingState | undefined> {
  try {
    const s = JSON.parse(await Deno.readTextFile(path)) as ServingState;
    return s?.version === 1 && typeof s.listen === "string" && typeof s.pid === "number" ? s : undefined;
  } catch {
    return undefined;
  }
}

/** What DIR is served as now (`running`), or was last served as; undefined when it never was. */
export async function readServing(paths: DataDirPaths): Promise<(ServingState & { running: boolean }) | undefined> {
  const now = await readState(paths.serving);
  if (now) return { ...now, running: await isLive(now, paths.serving) };
  const last = await readState(paths.served);
  return last && { ...last, running: false };
}
