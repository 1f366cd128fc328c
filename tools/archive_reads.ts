/**
 * Counts the bytes a process read from given files, from the kernel's side:
 * the process runs under `strace -ff -y` (every thread's read-family system
 * calls, each with the path its descriptor names), and the return values of
 * the calls on those paths are summed. `/proc/PID/io`'s `rchar` counts every
 * read (a server's reads of blobs already landed in DIR too); this counts the
 * archive's alone, whoever in the process reads it.
 *
 * From code: `straceArgs(prefix)` goes before the command; `archiveReads(prefix,
 * paths)` sums once it exited. As a tool:
 * `deno run -A tools/archive_reads.ts PREFIX FILE…` prints the sum.
 */

/** The system calls that move a file's bytes into a process (or to a socket without passing through it). */
const CALLS = ["read", "pread64", "readv", "preadv", "preadv2", "sendfile", "copy_file_range", "splice"];

/** `strace` and its options, to put before the command whose reads are counted; logs go to `PREFIX.<tid>`. */
export function straceArgs(prefix: string): string[] {
  // -ff: one log per thread, so no call is split over lines; --seccomp-bpf: other calls run untraced, at full speed.
  return [
    "strace",
    "-ff",
    "-qq",
    "-y",
    "-s",
    "0",
    "--seccomp-bpf",
    "-e",
    `trace=${CALLS.join(",")}`,
    "-e",
    "signal=none",
    "-o",
    prefix,
    "--",
  ];
}

/** Bytes read from `paths` (a call's fd shows the path strace resolved), summed over one trace line set. */
export function sumReads(lines: Iterable<string>, paths: readonly string[]): number {
  const wanted = new Set(paths);
  // read(5</path/to/archive.tar>, ""..., 1048576) = 1048576 ; sendfile's first fd is the output, the second the input.
  const re = /^(\w+)\((\d+)<(.*?)>(?:, (\d+)<(.*?)>)?.*\) = (\d+)/;
  let total = 0;
  for (const line of lines) {
    const m = re.exec(line);
    if (!m || !CALLS.includes(m[1])) continue;
    const from = m[1] === "sendfile" ? m[5] : m[3];
    if (from !== undefined && wanted.has(from)) total += Number(m[6]);
  }
  return total;
}

/** Bytes read from `paths` by every thread traced into `PREFIX.<tid>` files; removes the logs. */
export async function archiveReads(prefix: string, paths: readonly string[]): Promise<number> {
  const dir = prefix.slice(0, prefix.lastIndexOf("/")) || ".";
  const base = prefix.slice(prefix.lastIndexOf("/") + 1) + ".";
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.startsWith(base)) continue;
    const file = `${dir}/${e.name}`;
    total += sumReads((await Deno.readTextFile(file)).split("\n"), paths);
    await Deno.remove(file);
  }
  return total;
}

/**
 * The pid of the command a tracer runs, once it runs it: strace forks short-lived helpers first (its seccomp and
 * ptrace checks), so the child wanted is the one whose program is no longer strace's.
 */
export async function tracedChild(tracer: number): Promise<number> {
  const tracerExe = await Deno.readLink(`/proc/${tracer}/exe`);
  for (let i = 0; i < 3000; i++) {
    const kids = (await Deno.readTextFile(`/proc/${tracer}/task/${tracer}/children`).catch(() => "")).trim();
    for (const kid of kids ? kids.split(" ").map(Number) : []) {
      const exe = await Deno.readLink(`/proc/${kid}/exe`).catch(() => tracerExe);
      if (exe !== tracerExe) return kid;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`process ${tracer} started no command`);
}

/** True when strace is installed and may trace here (a container without ptrace may not). */
export async function haveStrace(): Promise<boolean> {
  try {
    // One log (no -ff), thrown away: a trial that strace may trace here at all, with the options the count uses.
    const args = ["-f", "-qq", "--seccomp-bpf", "-e", "trace=read", "-o", "/dev/null", "--", "true"];
    return (await new Deno.Command("strace", { args, stdout: "null", stderr: "null" }).output()).success;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const [prefix, ...paths] = Deno.args;
  if (!prefix || !paths.length) {
    console.error("usage: archive_reads.ts PREFIX FILE…");
    Deno.exit(2);
  }
  const real = await Promise.all(paths.map((p) => Deno.realPath(p)));
  console.log(await archiveReads(prefix, real));
}
