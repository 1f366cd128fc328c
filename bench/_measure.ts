/** What the benchmarks share: GNU time around a command, medians, fresh directories. */
import { join } from "node:path";

/** Wall seconds, CPU seconds (user + system, the process and its children) and peak RSS (of the process, or of its largest child) of one run. */
export interface Measure {
  wallS: number;
  cpuS: number;
  userS: number;
  maxRssKb: number;
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
    ms.sort((a, b) => a.wallS - b.wallS);
    const mid = ms[Math.floor(this.runs / 2)];
    return { ...mid, maxRssKb: Math.max(...ms.map((m) => m.maxRssKb)) };
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
