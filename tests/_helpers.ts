/** Test helpers: temp dirs, running isoload as a real process, the real tools. */
import { join } from "node:path";
import assert from "node:assert/strict";
import { mirrorRepositoryFor } from "../src/image/reference.ts";
import { buildSampleLayout, type Fixture, tarDirectory } from "../tools/payload.ts";
import { layoutEntries, makeTar, type RawEntry } from "./_tar.ts";

export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Runs `fn` with a fresh temp dir, removed afterwards. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: `isoload-${prefix}-` });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Output of a finished process. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The permission flags `deno task compile` bakes into the binary, read from deno.json: tests run the bundle with exactly these. */
export function compilePermissions(): string[] {
  const tasks = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json"))).tasks;
  const cmd: string = tasks.compile.command;
  return cmd.split(/\s+/).filter((a) => /^--(allow|unstable)-/.test(a));
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
    : [Deno.execPath(), ["run", ...(perms ?? ["--allow-all", "--unstable-net"]), "--quiet", entry ?? join(ROOT, "main.ts")]];
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

/**
 * Environment for podman and skopeo on a private vfs store (test-only settings).
 * The runroot gets a short path of its own: with a runroot path much over 50
 * characters, podman 4.3 waits 20 s for every `podman run` to exit (conmon's
 * socket paths grow past the limit).
 */
export async function containersEnv(dir: string): Promise<Record<string, string>> {
  await Deno.mkdir(dir, { recursive: true });
  const runroot = await Deno.makeTempDir({ prefix: "ir" });
  globalThis.addEventListener("unload", () => Deno.removeSync(runroot, { recursive: true }));
  const conf = join(dir, "containers.conf");
  const storage = join(dir, "storage.conf");
  // runc, cgroupfs and lowered ulimits: what podman needs in this sandbox (see DOMAIN.md). Tests only.
  await Deno.writeTextFile(
    conf,
    [
      "[containers]",
      'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
      "[engine]",
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(
    storage,
    [
      "[storage]",
      'driver = "vfs"',
      `graphroot = "${join(dir, "graph")}"`,
      `runroot = "${runroot}"`,
      "",
    ].join("\n"),
  );
  return { CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: storage };
}

/** sha256 of a file, as "sha256:<hex>". */
export async function fileDigest(path: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  return `sha256:${createHash("sha256").update(await Deno.readFile(path)).digest("hex")}`;
}

/** Pulls `ref` with skopeo through a registries.conf into a dir: destination; returns the manifest digest. */
export async function skopeoPull(registriesConf: string, ref: string, dest: string): Promise<string> {
  await tool("skopeo", ["--registries-conf", registriesConf, "copy", "--quiet", `docker://${ref}`, `dir:${dest}`]);
  return await fileDigest(join(dest, "manifest.json"));
}

let sample: Promise<{ fixture: Fixture; tar: string }> | undefined;

/** The standard sample fixture as an OCI layout directory and tar, built once per test process. */
export function sampleFixture(): Promise<{ fixture: Fixture; tar: string }> {
  sample ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "isoload-fixture-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const fixture = await buildSampleLayout(join(dir, "layout"), dir);
    const tar = join(dir, "sample-oci.tar");
    await tarDirectory(fixture.dir, tar);
    return { fixture, tar };
  })();
  return sample;
}

/**
 * Every file under `dir` (sorted), checking that each blob data file hashes
 * to its name: a half-written or corrupt blob at a final path fails the test.
 */
export async function checkTree(dir: string): Promise<string[]> {
  const { createHash } = await import("node:crypto");
  const files: string[] = [];
  const walk = async (d: string) => {
    let list: Deno.DirEntry[] = [];
    try {
      for await (const e of Deno.readDir(d)) list.push(e);
    } catch {
      return;
    }
    list = list.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of list) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else {
        files.push(p);
        const m = /blobs\/sha256\/[0-9a-f]{2}\/([0-9a-f]{64})\/data$/.exec(p);
        if (m) {
          const hash = createHash("sha256");
          for await (const c of (await Deno.open(p)).readable) hash.update(c);
          if (hash.digest("hex") !== m[1]) throw new Error(`${p} does not match its digest`);
        }
      }
    }
  };
  await walk(dir);
  return files;
}

/** A spawned isoload whose progress through its source can be watched from outside (/proc). */
export interface Watched {
  child: Deno.ChildProcess;
  /** Resolves once the process has read `bytes` of `source` (its file offset), or undefined if it ended first. */
  reached(source: string, bytes: number): Promise<boolean>;
  output(): Promise<Run & { signal: Deno.Signal | null }>;
}

/** Starts `isoload ARGS` and lets a test act at a point of its reading (SIGKILL at byte N, say). */
export function spawnIsoload(args: string[], opts: { env?: Record<string, string> } = {}): Watched {
  const [cmd, pre] = command();
  const child = new Deno.Command(cmd, { args: [...pre, ...args], env: opts.env, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
  const out = child.output();
  let done = false;
  out.then(() => (done = true), () => (done = true));
  return {
    child,
    async reached(source, bytes) {
      while (!done) {
        try {
          for await (const fd of Deno.readDir(`/proc/${child.pid}/fd`)) {
            if ((await Deno.readLink(`/proc/${child.pid}/fd/${fd.name}`).catch(() => "")) !== source) continue;
            const pos = Number(/pos:\s*(\d+)/.exec(await Deno.readTextFile(`/proc/${child.pid}/fdinfo/${fd.name}`))?.[1] ?? 0);
            if (pos >= bytes) return true;
          }
        } catch { /* the process is starting or gone */ }
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

/** A deterministic pseudo-random sequence in [0, 1) (mulberry32), for seeded kill points and fuzzing. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Pulls every image with skopeo by repository and digest; digests must match.
 * From `port` when given (a registry already serving), else from DIR served with docker-registry for the occasion.
 */
export async function pullAll(data: string | undefined, fixture: Fixture, work: string, port?: number): Promise<void> {
  const p = port ?? freePort();
  const served = port
    ? undefined
    : await serve(["--data-dir", data!, "--listen", `127.0.0.1:${p}`, "--registry-command", "/usr/bin/docker-registry"]);
  try {
    await Promise.all(fixture.images.map(async (img, i) => {
      const out = join(work, `pull-${p}-${i}`);
      await Deno.remove(out, { recursive: true }).catch(() => {});
      await tool("skopeo", [
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        `docker://127.0.0.1:${p}/${mirrorRepositoryFor(img.source)}@${img.digest}`,
        `dir:${out}`,
      ]);
      // For an index skopeo stores this host's manifest.
      const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
      const expect = img.children ? img.children.find((c) => c.platform?.architecture === arch)?.digest : img.digest;
      assert.equal(await fileDigest(join(out, "manifest.json")), expect, img.name);
    }));
  } finally {
    if (served) assert.equal(await served.stop(), 0);
  }
}

/** The sample layout plus `n` tiny unreferenced blobs: small in the archive, a page each on disk. */
export async function tinyBlobsArchive(path: string, n: number): Promise<void> {
  const entries: RawEntry[] = await layoutEntries((await sampleFixture()).fixture.dir);
  for (let i = 0; i < n; i++) {
    const data = new TextEncoder().encode(`tiny blob ${i}\n`);
    entries.push({ name: `blobs/sha256/${(await import("node:crypto")).createHash("sha256").update(data).digest("hex")}`, data });
  }
  await Deno.writeFile(path, makeTar(entries));
}
