/**
 * Issue 14's table, each line as a ratio to its floor measured in the same
 * run, with peak RSS, on the release-like payload (tools/release_payload.ts):
 *
 * - `load` to disk against `cp` + `sync -f` (the floor) and `tar -x` + `sync -f`;
 * - `load` to tmpfs against `cp` and `tar -x`;
 * - `verify` against one single-core `openssl dgst -sha256` pass over the same blob files;
 * - `serve --source` (in place) against `serve --data-dir` (the floor): time to ready (under `chrt`, median of `--runs`),
 *   then in one more start, not real-time, RSS at ready, after 4 clients fetched every manifest and blob of every
 *   image twice, and at its peak (VmHWM), with the bytes/s the clients received. `--compare CHECKOUT` adds the in-place
 *   server of another checkout (its main.ts; e.g. main before a change) to the same run. `--load-only` skips the serving lines; `--serve-only` skips the load,
 *   tmpfs and verify lines (the one load that makes the floor's DIR is still done, untimed).
 *
 * Every one-shot contender (cp, tar, openssl, load, verify) runs under `chrt -r 10` when root (SCHED_RR: the
 * shared 2-core VM's other work does not preempt it, so contenders see the same machine; servers run normally); the source archive is in the page cache. Median wall of
 * `--runs` runs; peak RSS is the largest seen (GNU time, or VmHWM for servers).
 *
 * `--settle` starts each load-line run from the same memory (settleMemory in _measure.ts). The contenders take turns, one
 * run each a round, and the bench prints each round's ratio.
 *
 * Each run of a disk contender (cp + sync, tar + sync, load) writes to a new filesystem (`--fs ext4`, the default as
 * root where a loop device and mkfs are at hand; `--fs xfs`, RHCOS's /var; `--fs dir`, an emptied directory of
 * --disk): see FreshFs in _measure.ts for why an emptied directory is not a fair disk.
 *
 * Usage: deno run -A bench/perf_bench.ts [--size 1G] [--disk /tmp] [--tmpfs /dev/shm] [--runs 3] [--load-only | --serve-only]
 *        [--compare CHECKOUT] [--fs ext4|xfs|dir] [--settle] [--keep]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { parseSize, planRelease, type ReleasePayload, writeRelease } from "../tools/release_payload.ts";
import { Bench, fetchAll, FreshFs, isoloadArgs, isoloadArgsFrom, mb, type Measure, settleMemory, startUntilReady } from "./_measure.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "1G" },
    disk: { type: "string", default: "/tmp" },
    tmpfs: { type: "string", default: "/dev/shm" },
    runs: { type: "string", default: "3" },
    keep: { type: "boolean" },
    "serve-only": { type: "boolean" },
    "load-only": { type: "boolean" },
    compare: { type: "string" },
    fs: { type: "string" },
    settle: { type: "boolean" },
  },
});
const size = parseSize(args.values.size!);
const runs = Number(args.values.runs);
const root = new URL("..", import.meta.url).pathname;
const disk = await Deno.makeTempDir({ dir: args.values.disk, prefix: "isoload-perfbench-" });
const tmpfs = await Deno.makeTempDir({ dir: args.values.tmpfs, prefix: "isoload-perfbench-" });
const rt = Deno.uid?.() === 0 ? ["chrt", "-r", "10"] : [];
const deno = Deno.execPath();

/** Runs `cmd argv` under the real-time wrapper, when there is one. */
function wrap(cmd: string, argv: string[]): [string, string[]] {
  return rt.length ? [rt[0], [...rt.slice(1), cmd, ...argv]] : [cmd, argv];
}

const bench = new Bench(disk, runs);
const median = (prepare: () => Promise<string[]>, cmd: string) => {
  const [c, pre] = wrap(cmd, []);
  return bench.median(async () => [...pre, ...(await prepare())], c);
};
/**
 * Contenders copying the archive, taking turns (one run each a round, under the real-time wrapper; with --settle, each
 * from the same memory: settleMemory); their medians, and every run's wall time.
 */
async function turns(list: { prepare: () => Promise<string[]>; cmd: string }[]): Promise<{ median: Measure; walls: number[] }[]> {
  const got = await bench.interleaved(list.map((c) => {
    const [cmd, pre] = wrap(c.cmd, []);
    return {
      cmd,
      prepare: async () => {
        const argv = await c.prepare();
        if (args.values.settle) await settleMemory([archive], warmups);
        return [...pre, ...argv];
      },
    };
  }));
  return got.map((g) => ({ median: g.median, walls: g.runs.map((m) => m.wallS) }));
}
/** The contenders' programs, run once after the page cache is dropped so none starts from the disk. */
const warmups = [[deno, ...isoloadArgs("--version")], ["cp", "--version"], ["tar", "--version"], ["sync", "--version"]];
/** Lines under the table: each round's ratio of isoload to its floor. */
const roundLines: string[] = [];
const perRound = (what: string, load: number[], floor: number[]) =>
  roundLines.push(`${what}, round by round: ${load.map((w, i) => (w / floor[i]).toFixed(2)).join(", ")}.`);

async function fresh(base: string, name: string): Promise<string> {
  const d = join(base, name);
  await Deno.remove(d, { recursive: true }).catch(() => {});
  await Deno.mkdir(d, { recursive: true });
  return d;
}

console.log(`bench: writing a ${(size / 1e9).toFixed(1)} GB release-like payload in ${disk}`);
const archive = join(disk, "release.tar");
const payload: ReleasePayload = await writeRelease(planRelease({ totalBytes: size }), { out: archive });
const archiveSize = (await Deno.stat(archive)).size;
await bench.timed("cat", [archive, "/dev/null"]);

type Row = { line: string; contender: string; m: Measure; floor: number; floorName: string };
const rows: Row[] = [];
/** The least-time line under the table (loadBound). */
let bound: string[] = [];
const add = (line: string, contender: string, m: Measure, floor: Measure, floorName: string) =>
  rows.push({ line, contender, m, floor: floor.wallS, floorName });

const sh = "sh";
const serveOnly = args.values["serve-only"];
const loadArgs = (data: string) => isoloadArgs("load", archive, "--data-dir", data, "--no-registries-conf", "--quiet");
/** The loaded DIR that verify checks and `serve --data-dir` serves: the last disk load's. */
let data = join(disk, "data");
// Each disk contender's run writes to a new filesystem (FreshFs says why); `--fs dir` empties a directory of --disk instead.
const freshFs = await FreshFs.fromFlag(args.values.fs, disk, Math.ceil(archiveSize * 1.25) + (1 << 30));
/** A failed run leaves no filesystem mounted nor loop device attached: drops them, then fails as it did. */
async function dropFsAnd(e: unknown): Promise<never> {
  await freshFs?.close().catch(() => {});
  throw e;
}
/** An empty target for one disk run: on a new filesystem, or an emptied directory of --disk. */
const diskTarget = (name: string) => freshFs?.next() ?? fresh(disk, name);
console.log(
  `bench: disk runs write to ${
    freshFs ? `a new ${freshFs.type} filesystem each (loop device, image in ${disk})` : `emptied directories of ${disk}`
  }`,
);
if (serveOnly) {
  await bench.timed(deno, loadArgs(await fresh(disk, "data")));
  await Deno.remove(tmpfs, { recursive: true });
} else await loadAndVerify().catch(dropFsAnd);

// 1. load to disk.
async function loadAndVerify() {
  // The contenders take turns, the load last in each round: the last round's DIR is the one verify checks.
  const [cpSync, tarSync, loadDisk] = await turns([
    { prepare: async () => ["-c", `cp "$0" "$1"/ && sync -f "$1"`, archive, await diskTarget("out")], cmd: sh },
    { prepare: async () => ["-c", `tar -xf "$0" -C "$1" && sync -f "$1"`, archive, await diskTarget("out")], cmd: sh },
    { prepare: async () => loadArgs(data = await diskTarget("data")), cmd: deno },
  ]);
  // With --fs dir, the baselines' copy and the load's DIR sit side by side until here (room for two payloads).
  if (!freshFs) await Deno.remove(join(disk, "out"), { recursive: true }).catch(() => {});
  add("load, disk", "cp + sync (floor)", cpSync.median, cpSync.median, "cp + sync");
  add("load, disk", "tar -x + sync", tarSync.median, cpSync.median, "cp + sync");
  add("load, disk", "isoload load", loadDisk.median, cpSync.median, "cp + sync");
  perRound("load, disk ÷ cp + sync", loadDisk.walls, cpSync.walls);

  // 2. load to tmpfs (sync is a no-op there).
  const [cpT, tarT, loadT] = await turns([
    { prepare: async () => [archive, await fresh(tmpfs, "out")], cmd: "cp" },
    { prepare: async () => ["-xf", archive, "-C", await fresh(tmpfs, "out")], cmd: "tar" },
    { prepare: async () => loadArgs(await fresh(tmpfs, "out")), cmd: deno },
  ]);
  const cpTmpfs = cpT.median;
  add("load, tmpfs", "cp (floor)", cpTmpfs, cpTmpfs, "cp");
  add("load, tmpfs", "tar -x", tarT.median, cpTmpfs, "cp");
  add("load, tmpfs", "isoload load", loadT.median, cpTmpfs, "cp");
  perRound("load, tmpfs ÷ cp", loadT.walls, cpT.walls);
  await Deno.remove(tmpfs, { recursive: true });
  await loadBound(cpTmpfs);

  // 3. verify the disk data dir (page cache warm from the load) against one openssl pass over the same files.
  const blobList = join(disk, "blobs.txt");
  const blobFiles: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(join(d, e.name));
      else blobFiles.push(join(d, e.name));
    }
  };
  await walk(join(data, "docker", "registry", "v2", "blobs"));
  await Deno.writeTextFile(blobList, blobFiles.join("\0"));
  // Read the DIR in (with --settle the load lines dropped the page cache), so both contenders hash from memory.
  await bench.timed("sh", ["-c", `xargs -0 cat < "$0" > /dev/null`, blobList]);
  const openssl = await median(() => Promise.resolve(["-c", `xargs -0 openssl dgst -sha256 < "$0" > /dev/null`, blobList]), sh);
  const verify = await median(() => Promise.resolve(isoloadArgs("verify", "--data-dir", data, "--quiet")), deno);
  add("verify", "openssl dgst -sha256, one core (floor)", openssl, openssl, "openssl");
  add("verify", "isoload verify", verify, openssl, "openssl");
}

/**
 * The least time any verifying load to tmpfs can take here, from figures of the same run: a Deno program's own start
 * (an empty module), plus cp's CPU (one copy of every byte into the target) and SHA-256's (openssl's user time over
 * the archive: the hash alone) shared perfectly over every core. A goal below it cannot be met on this machine.
 */
async function loadBound(cpTmpfs: Measure) {
  const empty = join(disk, "empty.ts");
  await Deno.writeTextFile(empty, "export {};\n");
  const start = await median(() => Promise.resolve(["run", empty]), deno);
  const sha = await median(() => Promise.resolve(["dgst", "-sha256", archive]), "openssl");
  // isoload's own start: what its code costs before the first byte (`--version` parses nothing and touches no file).
  const own = await median(() => Promise.resolve(isoloadArgs("--version")), deno);
  const cores = navigator.hardwareConcurrency;
  const work = (cpTmpfs.cpuS + sha.userS) / cores;
  const at = (startS: number) => `${(startS + work).toFixed(2)} s = ${((startS + work) / cpTmpfs.wallS).toFixed(2)}× cp`;
  bound = [
    `Least a verifying load to tmpfs can take here: ${at(start.wallS)} (Deno's own start ${start.wallS.toFixed(2)} s + ` +
    `(cp's CPU ${cpTmpfs.cpuS.toFixed(2)} s + SHA-256's ${
      sha.userS.toFixed(2)
    } s, openssl's user time over the archive) / ${cores} cores; ` +
    `cp ${cpTmpfs.wallS.toFixed(2)} s); with isoload's own start (\`--version\`, ${own.wallS.toFixed(2)} s) instead: ${at(own.wallS)}.`,
  ];
}
// 4. Serving: ready time and RSS, in place against from DIR.
/** VmHWM and VmRSS of a process, in kB. */
async function rssKb(pid: number): Promise<{ hwm: number; rss: number }> {
  const s = await Deno.readTextFile(`/proc/${pid}/status`);
  return { hwm: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0), rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0) };
}

/** Four clients fetch every manifest, config and layer of every image between them; bytes received. */
async function pullAll(base: string): Promise<number> {
  const urls: string[] = [];
  for (const img of payload.images) {
    const m = await (await fetch(`${base}/v2/${img.repository}/manifests/${img.digest}`, {
      headers: { Accept: "application/vnd.oci.image.manifest.v1+json" },
    })).json();
    for (const d of [m.config, ...m.layers]) urls.push(`${base}/v2/${img.repository}/blobs/${d.digest}`);
  }
  return await fetchAll(urls, 4);
}

type Served = { readyS: number; atReady: number; afterPull: number; hwm: number; mbS: number };
const serving: Record<string, Served> = {};
if (!args.values["load-only"]) await serve().catch(dropFsAnd);
/** Starts each server, times it to ready, and pulls every image through it twice (issue 12/14 lines). */
async function serve() {
  const servers: [string, string[]][] = [
    ["serve --data-dir (floor)", isoloadArgs("serve", "--data-dir", data)],
    ["**serve --source**", isoloadArgs("serve", "--source", archive)],
  ];
  if (args.values.compare) {
    servers.push([
      `serve --source (${args.values.compare})`,
      isoloadArgsFrom(join(args.values.compare, "main.ts"), "serve", "--source", archive),
    ]);
  }
  const ready: Record<string, number[]> = Object.fromEntries(servers.map(([n]) => [n, []]));
  let port = 25700;
  // Ready times: each server started `runs` times, interleaved, under the real-time wrapper like the one-shot contenders.
  for (let i = 0; i < runs; i++) {
    for (const [name, argv] of servers) {
      const { child, readyMs } = await startUntilReady([...rt, deno, ...argv, "--listen", `127.0.0.1:${port++}`]);
      ready[name].push(readyMs / 1000);
      child.kill("SIGTERM");
      await child.status;
    }
  }
  for (const [name, argv] of servers) {
    // Not real-time: a real-time server and its clients can starve each other's threads on 2 cores.
    const listen = `127.0.0.1:${port++}`;
    const { child } = await startUntilReady([deno, ...argv, "--listen", listen]);
    try {
      const atReady = (await rssKb(child.pid)).rss;
      // Everything, twice: RSS must stay flat (the second pass shows whether it keeps growing).
      const t0 = performance.now();
      const bytes = await pullAll(`http://${listen}`) + await pullAll(`http://${listen}`);
      const mbS = bytes / 1e6 / ((performance.now() - t0) / 1000);
      const r = await rssKb(child.pid);
      const sorted = ready[name].sort((a, b) => a - b);
      serving[name] = { readyS: sorted[Math.floor(sorted.length / 2)], atReady, afterPull: r.rss, hwm: r.hwm, mbS };
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  }
}
const floorServe = serving["serve --data-dir (floor)"];
const serveRows = Object.entries(serving).map(([name, s]) =>
  `| ${name} | ${s.readyS.toFixed(2)} s | ${(s.readyS / floorServe.readyS).toFixed(2)} | ${mb(s.atReady)} | ${mb(s.afterPull)} | ${
    mb(s.hwm)
  } | ${s.mbS.toFixed(0)} MB/s | ${(s.mbS / floorServe.mbS).toFixed(2)} |`
);

const lines = [
  `payload: release-like, ${payload.images.length} images, ${payload.blobs} blobs, ${
    (archiveSize / 1e9).toFixed(2)
  } GB OCI layout archive (page cache warm); disk ${
    freshFs ? `a new ${freshFs.type} filesystem each run (loop device, image in ${args.values.disk})` : args.values.disk
  }, tmpfs ${args.values.tmpfs}; ${navigator.hardwareConcurrency} CPUs; ${
    rt.length ? "one-shot contenders under chrt -r 10; " : ""
  }median of ${runs} runs`,
  "",
  ...(rows.length
    ? [
      "| line | contender | wall | × floor | CPU (user + sys) | peak RSS |",
      "| --- | --- | --- | --- | --- | --- |",
      ...rows.map((r) =>
        `| ${r.line} | ${r.contender} | ${r.m.wallS.toFixed(2)} s | ${(r.m.wallS / r.floor).toFixed(2)} | ${r.m.cpuS.toFixed(2)} s | ${
          mb(r.m.maxRssKb)
        } |`
      ),
      "",
      ...(roundLines.length ? [...roundLines, ""] : []),
      ...(bound.length ? [...bound, ""] : []),
    ]
    : []),
  ...(serveRows.length
    ? [
      "| server | ready | × floor | RSS at ready | RSS after pulling every image twice | peak RSS | pull throughput | × floor |",
      "| --- | --- | --- | --- | --- | --- | --- | --- |",
      ...serveRows,
    ]
    : []),
];
console.log(lines.join("\n"));
await Deno.mkdir(join(root, "bench", "out"), { recursive: true });
await Deno.writeTextFile(join(root, "bench", "out", `perf_bench-${args.values.size}.md`), lines.join("\n") + "\n");
await freshFs?.close();
if (!args.values.keep) await Deno.remove(disk, { recursive: true });
else console.log(`kept ${disk}`);
