/** Test helpers: temp dirs, running isoload as a real process, the real tools. */
import { join } from "node:path";
import { buildSampleLayout, type Fixture, tarDirectory } from "../tools/payload.ts";

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

/** A compiled binary to test instead of main.ts (the Containerfile harness sets it). */
const BIN = Deno.env.get("ISOLOAD_BIN");

/** How to start isoload: the compiled binary, main.ts from the checkout, or a given entry (the bundle); in a network namespace when given. */
function command(entry?: string, netns?: string): [string, string[]] {
  const [cmd, pre]: [string, string[]] = BIN && !entry
    ? [BIN, []]
    : [Deno.execPath(), ["run", "--allow-all", "--unstable-net", "--quiet", entry ?? join(ROOT, "main.ts")]];
  return netns ? ["ip", ["netns", "exec", netns, cmd, ...pre]] : [cmd, pre];
}

/** Runs `isoload ARGS` as a real process. */
export async function isoload(
  args: string[],
  opts: { env?: Record<string, string>; entry?: string; cwd?: string; netns?: string } = {},
): Promise<Run> {
  const [cmd, pre] = command(opts.entry, opts.netns);
  const out = await new Deno.Command(cmd, {
    args: [...pre, ...args],
    env: opts.env,
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
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
  opts: { env?: Record<string, string>; entry?: string; cwd?: string; timeoutMs?: number; netns?: string } = {},
): Promise<Served> {
  const port = Number(args[args.indexOf("--listen") + 1]?.split(":").at(-1));
  const [cmd, pre] = command(opts.entry, opts.netns);
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
