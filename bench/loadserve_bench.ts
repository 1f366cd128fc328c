/**
 * `load --serve` reads the medium once (issue 14 item 3), on the release-like
 * payload (tools/release_payload.ts), in the same run:
 *
 * - the archive's bytes read by the isoload process while `--clients` clients
 *   each pull every image (every manifest, then every distinct config and layer,
 *   each checked against its digest) from the moment the registry is ready,
 *   counted from the kernel's side (tools/archive_reads.ts: `strace -ff -y` of
 *   every read-family call on the archive's path), as a ratio to the archive's
 *   size; with `/proc/PID/io` `rchar` beside it, which also counts the server's
 *   reads of blobs already landed in DIR and of temp files;
 * - the load's wall time (spawn to "The background load finished") with the
 *   clients pulling and with none, against plain `isoload load` (the floor);
 *   peak RSS (GNU time for `load`, VmHWM for the serving process).
 *
 * The timed runs are not traced. The archive is in the page cache. Median of `--runs` runs.
 *
 * Usage: deno run -A bench/loadserve_bench.ts [--size 1G] [--disk /tmp] [--runs 3] [--clients 4] [--keep]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { parseSize, planRelease, type ReleasePayload, writeRelease } from "../tools/release_payload.ts";
import { archiveReads, straceArgs, tracedChild } from "../tools/archive_reads.ts";
import { pullEveryImage } from "../tools/pull_clients.ts";
import { Bench, isoloadArgs, mb, type Measure } from "./_measure.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "1G" },
    disk: { type: "string", default: "/tmp" },
    runs: { type: "string", default: "3" },
    clients: { type: "string", default: "4" },
    keep: { type: "boolean" },
  },
});
const size = parseSize(args.values.size!);
const runs = Number(args.values.runs);
const clients = Number(args.values.clients);
const root = new URL("..", import.meta.url).pathname;
const disk = await Deno.makeTempDir({ dir: args.values.disk, prefix: "isoload-loadserve-" });
const deno = Deno.execPath();
const bench = new Bench(disk, runs);

console.log(`bench: writing a ${(size / 1e9).toFixed(1)} GB release-like payload in ${disk}`);
const archive = join(disk, "release.tar");
const payload: ReleasePayload = await writeRelease(planRelease({ totalBytes: size }), { out: archive });
const archiveSize = (await Deno.stat(archive)).size;
await bench.timed("cat", [archive, "/dev/null"]);

/** rchar and VmHWM (kB) of a process. */
async function procFigures(pid: number): Promise<{ rchar: number; hwmKb: number }> {
  const io = await Deno.readTextFile(`/proc/${pid}/io`);
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return { rchar: Number(/rchar:\s+(\d+)/.exec(io)?.[1] ?? 0), hwmKb: Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) };
}

/** One `load --serve` run: with `clients` pulling from ready, optionally traced; resolves once the load finished (and, traced, the clients too). */
async function loadServe(data: string, port: number, withClients: number, trace?: string) {
  const argv = [
    deno,
    ...isoloadArgs("load", archive, "--data-dir", data, "--no-registries-conf", "--serve", "--listen", `127.0.0.1:${port}`),
  ];
  const cmd = trace ? [...straceArgs(trace), ...argv] : argv;
  const t0 = performance.now();
  const child = new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "null", stderr: "piped" }).spawn();
  const pid = trace ? await tracedChild(child.pid) : child.pid;
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  const until = async (re: RegExp) => {
    while (!re.test(log)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`load --serve ended early: ${log}`);
      log += value;
    }
    return (performance.now() - t0) / 1000;
  };
  try {
    const readyS = await until(/Registry ready/);
    const pulling = withClients
      ? pullEveryImage(`http://127.0.0.1:${port}`, payload.images, withClients, { verify: trace !== undefined })
      : undefined;
    pulling?.catch(() => {});
    const loadedS = await until(/The background load (finished|stopped)/);
    if (/The background load stopped/.test(log)) throw new Error(`the load failed: ${log}`);
    // The traced run's clients finish (every blob checked); a timed run's are cut once the load is done.
    const pulled = trace ? await pulling : undefined;
    const figures = await procFigures(pid);
    return { readyS, loadedS, pulled, ...figures, log };
  } finally {
    if (trace) Deno.kill(pid, "SIGTERM");
    else child.kill("SIGTERM");
    await child.status;
    reader.releaseLock();
  }
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
let port = 25800;

// 1. The count: one traced run with the clients.
const traced = await loadServe(await bench.fresh("data"), port++, clients, join(disk, "strace"));
const archiveRead = await archiveReads(join(disk, "strace"), [await Deno.realPath(archive)]);
const ahead = /\((\d+) blobs, ([\d.]+ \w+), read ahead of the archive's order/.exec(traced.log);
console.log(
  `traced: archive read ${archiveRead} of ${archiveSize} bytes (${(archiveRead / archiveSize).toFixed(4)}×), rchar ${traced.rchar}; ` +
    `${traced.pulled?.blobs} blobs (${((traced.pulled?.bytes ?? 0) / 1e9).toFixed(2)} GB) pulled and checked; ${
      ahead?.[0] ?? "none read ahead"
    }`,
);

// 2. Times: plain load (the floor), load --serve alone, load --serve with the clients.
const loadArgs = async () => isoloadArgs("load", archive, "--data-dir", await bench.fresh("data"), "--no-registries-conf", "--quiet");
const plain: Measure = await bench.median(loadArgs, deno);
const alone: { loadedS: number; hwmKb: number }[] = [];
const pulled: { loadedS: number; hwmKb: number; rchar: number }[] = [];
for (let i = 0; i < runs; i++) alone.push(await loadServe(await bench.fresh("data"), port++, 0));
for (let i = 0; i < runs; i++) pulled.push(await loadServe(await bench.fresh("data"), port++, clients));
const aloneS = med(alone.map((r) => r.loadedS));
const pulledS = med(pulled.map((r) => r.loadedS));

const lines = [
  `payload: release-like, ${payload.images.length} images, ${payload.blobs} blobs, ${
    (archiveSize / 1e9).toFixed(2)
  } GB OCI layout archive (page cache warm); disk ${args.values.disk}; ${navigator.hardwareConcurrency} CPUs; ${clients} clients, each pulling every image; median of ${runs} runs`,
  "",
  "| measure | bytes | × archive |",
  "| --- | --- | --- |",
  `| archive read by isoload (strace, ${clients} clients pulling during the load) | ${archiveRead} | ${
    (archiveRead / archiveSize).toFixed(3)
  } |`,
  `| rchar of isoload, same run (also DIR and temp-file reads) | ${traced.rchar} | ${(traced.rchar / archiveSize).toFixed(3)} |`,
  `| blobs the clients received whole and checked | ${traced.pulled?.bytes} | ${((traced.pulled?.bytes ?? 0) / archiveSize).toFixed(3)} |`,
  "",
  `read ahead of the archive's order for waiting clients: ${ahead ? `${ahead[1]} blobs, ${ahead[2]}` : "none"}`,
  "",
  "| contender | load wall | × load | peak RSS |",
  "| --- | --- | --- | --- |",
  `| isoload load (floor) | ${plain.wallS.toFixed(2)} s | 1.00 | ${mb(plain.maxRssKb)} |`,
  `| load --serve, no client | ${aloneS.toFixed(2)} s | ${(aloneS / plain.wallS).toFixed(2)} | ${
    mb(Math.max(...alone.map((r) => r.hwmKb)))
  } |`,
  `| load --serve, ${clients} clients pulling every image | ${pulledS.toFixed(2)} s | ${(pulledS / plain.wallS).toFixed(2)} | ${
    mb(Math.max(...pulled.map((r) => r.hwmKb)))
  } |`,
];
console.log(lines.join("\n"));
await Deno.mkdir(join(root, "bench", "out"), { recursive: true });
await Deno.writeTextFile(join(root, "bench", "out", `loadserve_bench-${args.values.size}.md`), lines.join("\n") + "\n");
if (!args.values.keep) await Deno.remove(disk, { recursive: true });
else console.log(`kept ${disk}`);
