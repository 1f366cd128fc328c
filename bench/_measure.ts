/** What the benchmarks share: GNU time around a command, medians, fresh directories. */
import { join } from "node:path";

/** Wall seconds, CPU seconds (user + system, the process and its children) and peak RSS (of the process, or of its largest child) of one run. */
export interface Measure {
  wallS: number;
  cpuS: number;
  userS: number;
  maxRssKb: number;
}

/** The median run of `ms` by wall time (its CPU times with it), with the largest peak RSS of them all. */
export function medianRun(ms: Measure[]): Measure {
  const sorted = [...ms].sort((a, b) => a.wallS - b.wallS);
  return { ...sorted[Math.floor(sorted.length / 2)], maxRssKb: Math.max(...ms.map((m) => m.maxRssKb)) };
}

/** A benchmark's scratch space, where GNU time writes its figures. */
export class Bench {
  constructor(readonly work: string, readonly runs: number) {}

  /** Runs a command under GNU time; returns wall seconds and peak RSS. */
  async timed(cmd: string, argv: string[], env?: Record<string, string>): Promise<Measure> {
    const tf = join(this.work, "time.txt");
    const out = await new Deno.Command("/usr/bin/time", {
      args: ["-f", "%e %M %U %S", "-o", tf, cmd, ...argv],
      env,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`${cmd} ${argv.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
    const [wall, rss, user, sys] = (await Deno.readTextFile(tf)).trim().split("\n").at(-1)!.split(" ").map(Number);
    return { wallS: wall, cpuS: user + sys, userS: user, maxRssKb: rss };
  }

  /** Median wall time (and its run's CPU time) of `runs` runs (each after `prepare`, which returns the argv), and the largest peak RSS. */
  async median(prepare: () => Promise<string[]>, cmd: string, env?: Record<string, string>): Promise<Measure> {
    const ms: Measure[] = [];
    for (let i = 0; i < this.runs; i++) ms.push(await this.timed(cmd, await prepare(), env));
    return medianRun(ms);
  }

  /**
   * Contenders taking turns, one run each a round, `runs` rounds: on this VM the page cache, the host's memory
   * (virtio-mem) and the disk drift over minutes, so contenders run in blocks meet different machines. Each run's argv
   * comes from its `prepare`. Resolves to each contender's median run (by wall time) with the largest peak RSS of its
   * runs, and every run, round by round.
   */
  async interleaved(contenders: { prepare: () => Promise<string[]>; cmd: string }[]): Promise<{ median: Measure; runs: Measure[] }[]> {
    const all: Measure[][] = contenders.map(() => []);
    for (let r = 0; r < this.runs; r++) {
      for (const [i, c] of contenders.entries()) all[i].push(await this.timed(c.cmd, await c.prepare()));
    }
    return all.map((ms) => ({ median: medianRun(ms), runs: ms }));
  }

  /** An empty directory `name` under the work dir. */
  async fresh(name: string): Promise<string> {
    const d = join(this.work, name);
    await Deno.remove(d, { recursive: true }).catch(() => {});
    await Deno.mkdir(d, { recursive: true });
    return d;
  }
}

/**
 * A new, empty filesystem for each run of a contender that writes to disk: a sparse image file under `dir`, made by
 * mkfs and mounted through a loop device (direct I/O, so its pages are cached once, as a disk's are).
 *
 * Why not an emptied directory: deleting the last run's files (a load writes ~2,700 files and directories) leaves
 * ext4 skipping each recently deleted inode while it allocates the next ones — `find_inode_bit` asks
 * `recently_deleted` of every candidate, for up to 5 minutes after the deletion — and freed blocks wait for the
 * journal before they can be reused. `perf` showed a load of the 1 GB payload into an emptied directory spending
 * ~0.9 s of its CPU in that scan; the same contender then varied 2–3× from run to run and the floors with it. A host
 * loads into a data directory that saw no such deletions: a fresh filesystem is that, and is the same every run.
 */
export class FreshFs {
  #image: string;
  #mount: string;
  #loop: string | undefined;
  #mounted = false;

  /** `bytes`: the filesystem's size (sparse: only what is written takes room in `dir`). */
  constructor(readonly dir: string, readonly bytes: number, readonly type: "ext4" | "xfs" = "ext4") {
    this.#image = join(dir, `fresh-${type}.img`);
    this.#mount = join(dir, `fresh-${type}`);
  }

  /**
   * The benches' `--fs` flag: `ext4` or `xfs` gives a FreshFs of `bytes` with its image in `dir`; `dir` gives none (an
   * emptied directory instead). Unset: ext4 where this machine can make one, else `dir`.
   */
  static async fromFlag(flag: string | undefined, dir: string, bytes: number): Promise<FreshFs | undefined> {
    const type = flag ?? (await FreshFs.usable("ext4") ? "ext4" : "dir");
    if (type === "dir") return undefined;
    if (type !== "ext4" && type !== "xfs") throw new Error(`--fs ${type}: expected ext4, xfs or dir`);
    return new FreshFs(dir, bytes, type);
  }

  /** The empty directory {@link FreshFs.next} resolves to, the same every time. */
  get out(): string {
    return join(this.#mount, "out");
  }

  /** Whether this machine can make one: root, a loop device, mkfs of the type. */
  static async usable(type: "ext4" | "xfs" = "ext4"): Promise<boolean> {
    if (Deno.uid?.() !== 0) return false;
    const ok = (cmd: string, args: string[]) =>
      new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output().then((o) => o.success, () => false);
    return await ok("losetup", ["--find"]) && await ok("sh", ["-c", `command -v mkfs.${type}`]);
  }

  /** Drops the last filesystem and makes a new one; resolves to an empty directory on it. */
  async next(): Promise<string> {
    await this.close();
    const f = await Deno.open(this.#image, { write: true, create: true, truncate: true });
    await f.truncate(this.bytes);
    f.close();
    // Inode tables left unzeroed (the sparse image reads as zeros) and not zeroed later: no background writes in a run.
    await run(
      "mkfs." + this.type,
      this.type === "ext4" ? ["-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", this.#image] : ["-q", "-f", this.#image],
    );
    this.#loop = (await run("losetup", ["--find", "--show", "--direct-io=on", this.#image])).trim();
    await Deno.mkdir(this.#mount, { recursive: true });
    await run("mount", [...(this.type === "ext4" ? ["-o", "noinit_itable"] : []), this.#loop, this.#mount]);
    this.#mounted = true;
    await Deno.mkdir(this.out);
    return this.out;
  }

  /** Unmounts and deletes the current filesystem, if any; each step is tried even when one before it failed. */
  async close(): Promise<void> {
    let failed: unknown;
    if (this.#mounted) {
      await run("umount", [this.#mount]).catch((e) => (failed = e));
      this.#mounted = false;
    }
    if (this.#loop) {
      await run("losetup", ["-d", this.#loop]).catch((e) => (failed ??= e));
      this.#loop = undefined;
    }
    await Deno.remove(this.#image).catch(() => {});
    if (failed) throw failed;
  }
}

/**
 * Puts memory in the same state before each run (`--settle`): dirty pages written back, the page cache dropped, then
 * `warm` files read back in and the `warmups` commands run (the contenders' own programs: Deno's 100 MB binary and its
 * module cache are page cache too), so the source and the programs are cached and the rest of memory is free.
 *
 * Not the default, because on this VM "free" is not a neutral state: its balloon device reports free pages to the
 * host (VIRTIO_BALLOON_F_REPORTING), which takes them back, so every page a run then writes faults in from the host.
 * Settled runs are the same as each other, and slower for every contender that writes: curl's CPU for an 8 GB
 * replication went from 6–7 s to 16–19 s. Without it, each run finds what the last one left. Report which.
 */
export async function settleMemory(warm: string[], warmups: string[][] = []): Promise<void> {
  if (Deno.uid?.() !== 0) return;
  await run("sync", []);
  await Deno.writeTextFile("/proc/sys/vm/drop_caches", "3");
  for (const f of warm) await run("sh", ["-c", `cat "$0" > /dev/null`, f]);
  for (const [cmd, ...args] of warmups) await run(cmd, args);
}

/** Runs a command to its end; its stdout, or an error with its stderr. */
async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  return new TextDecoder().decode(out.stdout);
}

/**
 * The arguments to `deno` that run isoload from this checkout with `rest`, as every benchmark runs it: with the V8 flag the
 * compiled binary carries (deno.json's compile task), so memory is measured as shipped.
 */
export function isoloadArgs(...rest: string[]): string[] {
  return isoloadArgsFrom(new URL("../main.ts", import.meta.url).pathname, ...rest);
}

/** The same for the checkout whose entry point is `main` (an older build to compare with). */
export function isoloadArgsFrom(main: string, ...rest: string[]): string[] {
  return ["run", "--allow-all", "--unstable-net", "--v8-flags=--expose-gc", main, ...rest];
}

/** "62 MB". */
export const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;

/** A server a benchmark started: the child, how long it took to say "Registry ready", and its stderr so far. */
export interface StartedServer {
  child: Deno.ChildProcess;
  readyMs: number;
  log(): string;
}

/** Starts `argv` (command first) and resolves once its stderr says "Registry ready"; stderr keeps being read after. */
export async function startUntilReady(argv: string[]): Promise<StartedServer> {
  const t0 = performance.now();
  const child = new Deno.Command(argv[0], { args: argv.slice(1), stdout: "null", stderr: "piped" }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!/Registry ready/.test(seen)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${argv.join(" ")} ended before ready: ${seen}`);
    seen += value;
  }
  const readyMs = performance.now() - t0;
  (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
  })();
  return { child, readyMs, log: () => seen };
}

/** `clients` HTTP clients fetch every URL between them; resolves to the bytes received. Anything but 200 fails the run. */
export async function fetchAll(urls: string[], clients: number): Promise<number> {
  let next = 0;
  let bytes = 0;
  await Promise.all(Array.from({ length: clients }, async () => {
    const client = Deno.createHttpClient({});
    try {
      while (next < urls.length) {
        const r = await fetch(urls[next++], { client });
        if (r.status !== 200) throw new Error(`${r.url}: ${r.status}`);
        for await (const c of r.body!) bytes += c.length;
      }
    } finally {
      client.close();
    }
  }));
  return bytes;
}
