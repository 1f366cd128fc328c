/** Running isoload and the real tools as processes: one-shot runs, `serve` until ready, and a spawn watched through /proc. */
import { join } from "node:path";
import { readPosition } from "./_proc.ts";

/** The checkout's root. */
export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Output of a finished process. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The permission and V8 flags `deno task compile` bakes into the binary, read from deno.json: tests run the bundle with exactly these. */
export function compilePermissions(): string[] {
  const tasks = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json"))).tasks;
  const cmd: string = tasks.compile.command;
  return cmd.split(/\s+/).filter((a) => /^--(allow|unstable|v8)-/.test(a));
}

/** A compiled binary to test instead of main.ts (the Containerfile harness sets it). */
const BIN = Deno.env.get("ISOLOAD_BIN");
/** A bundle (dist/isoload.js) to test instead of main.ts, run with the compiled binary's permissions (the harness sets it without denort). */
const BUNDLE = Deno.env.get("ISOLOAD_BUNDLE");

/** How to start isoload: the compiled binary, the bundle, main.ts from the checkout, or a given entry; in a network namespace when given. */
function command(entry?: string, netns?: string, perms?: string[]): [string, string[]] {
  const [cmd, pre]: [string, string[]] = BIN && !entry ? [BIN, []] : BUNDLE && !entry
    // --no-config: the bundle alone, as the binary would be, not the checkout's deno.json and lock around it.
    ? [Deno.execPath(), ["run", "--no-config", ...(perms ?? compilePermissions()), "--quiet", BUNDLE]]
    // The V8 flag the binary carries (deno.json's compile task): the server frees its sent chunks as shipped.
    : [Deno.execPath(), [
      "run",
      ...(perms ?? ["--allow-all", "--unstable-net", "--v8-flags=--expose-gc"]),
      "--quiet",
      entry ?? join(ROOT, "main.ts"),
    ]];
  return netns ? ["ip", ["netns", "exec", netns, cmd, ...pre]] : [cmd, pre];
}

/** Runs `isoload ARGS` as a real process. */
export async function isoload(
  args: string[],
  opts: { env?: Record<string, string>; entry?: string; cwd?: string; netns?: string; timeoutMs?: number; perms?: string[] } = {},
): Promise<Run> {
  const [cmd, pre] = command(opts.entry, opts.netns, opts.perms);
  // A run that should have ended (a serve that should have refused, say) is killed rather than hanging the suite.
  const out = await new Deno.Command(cmd, {
    args: [...pre, ...args],
    env: opts.env,
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(opts.timeoutMs ?? 300_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs a tool; throws with its stderr when it fails. */
export async function tool(cmd: string, args: string[], env?: Record<string, string>): Promise<Run> {
  const out = await new Deno.Command(cmd, { args, env, stdin: "null", stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  return r;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A running `isoload serve`. */
export interface Served {
  port: number;
  stderr: () => string;
  stop(): Promise<number>;
}

/** Starts `isoload serve` and waits for its ready line. */
export async function serve(
  args: string[],
  opts: { env?: Record<string, string>; entry?: string; cwd?: string; timeoutMs?: number; netns?: string; perms?: string[] } = {},
): Promise<Served> {
  const port = Number(args[args.indexOf("--listen") + 1]?.split(":").at(-1));
  const [cmd, pre] = command(opts.entry, opts.netns, opts.perms);
  const child = new Deno.Command(cmd, {
    args: [...pre, "serve", ...args],
    env: opts.env,
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  const dec = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) err += dec.decode(c);
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  while (!/Registry ready/.test(err)) {
    if (exited || Date.now() > deadline) {
      if (!exited) child.kill("SIGKILL");
      await status;
      await pumps;
      throw new Error(`isoload serve did not become ready: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    stderr: () => err,
    async stop() {
      if (!exited) child.kill("SIGTERM");
      const s = await status;
      await pumps;
      return s.code;
    },
  };
}

/** A spawned isoload whose progress through its source can be watched from outside (/proc). */
export interface Watched {
  child: Deno.ChildProcess;
  /** Resolves once the process has read `bytes` of `source` (its file offset), or undefined if it ended first. */
  reached(source: string, bytes: number): Promise<boolean>;
  output(): Promise<Run & { signal: Deno.Signal | null }>;
}

/**
 * Starts `isoload ARGS` and lets a test act at a point of its reading (SIGKILL at byte N, say). `wrap` is a command
 * that runs isoload (a tracer: `strace … --`), its first word the program.
 */
export function spawnIsoload(args: string[], opts: { env?: Record<string, string>; wrap?: string[] } = {}): Watched {
  const [run, runPre] = command();
  const [cmd, pre] = opts.wrap ? [opts.wrap[0], [...opts.wrap.slice(1), run, ...runPre]] : [run, runPre];
  const child = new Deno.Command(cmd, { args: [...pre, ...args], env: opts.env, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
  const out = child.output();
  let done = false;
  out.then(() => (done = true), () => (done = true));
  return {
    child,
    async reached(source, bytes) {
      while (!done) {
        if ((await readPosition(child.pid, source) ?? 0) >= bytes) return true;
        await new Promise((r) => setTimeout(r, 1));
      }
      return false;
    },
    async output() {
      const o = await out;
      const dec = new TextDecoder();
      return { code: o.code, signal: o.signal, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
    },
  };
}
