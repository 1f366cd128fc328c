/**
 * Issue 14's table, each line as a ratio to its floor measured in the same
 * run, with peak RSS, on the release-like payload (tools/release_payload.ts):
 *
 * - `load` to disk against `cp` + `sync -f` (the floor) and `tar -x` + `sync -f`;
 * - `load` to tmpfs against `cp` and `tar -x`;
 * - `verify` against one single-core `openssl dgst -sha256` pass over the same blob files;
 * - `serve --source` (in place) against `serve --data-dir` (the floor): time to ready, RSS at ready and after every
 *   manifest and blob of every image was fetched (4 clients).
 *
 * Every one-shot contender (cp, tar, openssl, load, verify) runs under `chrt -r 10` when root (SCHED_RR: the
 * shared 2-core VM's other work does not preempt it, so contenders see the same machine; servers run normally); the source archive is in the page cache. Median wall of
 * `--runs` runs; peak RSS is the largest seen (GNU time, or VmHWM for servers).
 *
 * Usage: deno run -A bench/perf_bench.ts [--size 1G] [--disk /tmp] [--tmpfs /dev/shm] [--runs 3] [--keep]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { parseSize, planRelease, type ReleasePayload, writeRelease } from "../tools/release_payload.ts";
import { Bench, fetchAll, isoloadArgs, mb, type Measure, startUntilReady } from "./_measure.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "1G" },
    disk: { type: "string", default: "/tmp" },
    tmpfs: { type: "string", default: "/dev/shm" },
    runs: { type: "string", default: "3" },
    keep: { type: "boolean" },
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
const add = (line: string, contender: string, m: Measure, floor: Measure, floorName: string) =>
  rows.push({ line, contender, m, floor: floor.wallS, floorName });

// 1. load to disk.
const sh = "sh";
// One output directory for the baselines, emptied before each run, so an 8 GB payload never has two copies at once.
const cpSync = await median(async () => ["-c", `cp "$0" "$1"/ && sync -f "$1"`, archive, await fresh(disk, "out")], sh);
const tarSync = await median(async () => ["-c", `tar -xf "$0" -C "$1" && sync -f "$1"`, archive, await fresh(disk, "out")], sh);
await Deno.remove(join(disk, "out"), { recursive: true });
const loadArgs = (data: string) => isoloadArgs("load", archive, "--data-dir", data, "--no-registries-conf", "--quiet");
const loadDisk = await median(async () => loadArgs(await fresh(disk, "data")), deno);
add("load, disk", "cp + sync (floor)", cpSync, cpSync, "cp + sync");
add("load, disk", "tar -x + sync", tarSync, cpSync, "cp + sync");
add("load, disk", "isoload load", loadDisk, cpSync, "cp + sync");

// 2. load to tmpfs (sync is a no-op there).
const cpTmpfs = await median(async () => [archive, await fresh(tmpfs, "out")], "cp");
const tarTmpfs = await median(async () => ["-xf", archive, "-C", await fresh(tmpfs, "out")], "tar");
const loadTmpfs = await median(async () => loadArgs(await fresh(tmpfs, "out")), deno);
add("load, tmpfs", "cp (floor)", cpTmpfs, cpTmpfs, "cp");
add("load, tmpfs", "tar -x", tarTmpfs, cpTmpfs, "cp");
add("load, tmpfs", "isoload load", loadTmpfs, cpTmpfs, "cp");
await Deno.remove(tmpfs, { recursive: true });

// 3. verify the disk data dir (page cache warm from the load) against one openssl pass over the same files.
const data = join(disk, "data");
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
const openssl = await median(() => Promise.resolve(["-c", `xargs -0 openssl dgst -sha256 < "$0" > /dev/null`, blobList]), sh);
const verify = await median(() => Promise.resolve(isoloadArgs("verify", "--data-dir", data, "--quiet")), deno);
add("verify", "openssl dgst -sha256, one core (floor)", openssl, openssl, "openssl");
add("verify", "isoload verify", verify, openssl, "openssl");

// 4. Serving: ready time and RSS, in place against from DIR.
/** VmHWM and VmRSS of a process, in kB. */
async function rssKb(pid: number): Promise<{ hwm: number; rss: number }> {
  const s = await Deno.readTextFile(`/proc/${pid}/status`);
  return { hwm: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0), rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0) };
}

/** Four clients fetch every manifest, config and layer of every image between them. */
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

const serveRows: string[] = [];
const serving: Record<string, { readyS: number; atReady: number; afterPull: number; hwm: number }> = {};
const servers: [string, string[]][] = [["serve --data-dir (floor)", ["--data-dir", data]], ["serve --source (in place)", [
  "--source",
  archive,
]]];
for (const [name, extra] of servers) {
  const ready: number[] = [];
  let last = { atReady: 0, afterPull: 0, hwm: 0 };
  for (let i = 0; i < runs; i++) {
    const port = 25700 + i;
    // Servers are not run real-time: a real-time server and its clients can starve each other's threads on 2 cores.
    const { child, readyMs } = await startUntilReady([deno, ...isoloadArgs("serve", ...extra, "--listen", `127.0.0.1:${port}`)]);
    const readyS = readyMs / 1000;
    try {
      ready.push(readyS);
      const atReady = (await rssKb(child.pid)).rss;
      // The last run also pulls everything, twice: RSS must stay flat (the second pass shows whether it keeps growing).
      if (i === runs - 1) {
        await pullAll(`http://127.0.0.1:${port}`);
        await pullAll(`http://127.0.0.1:${port}`);
        const r = await rssKb(child.pid);
        last = { atReady, afterPull: r.rss, hwm: r.hwm };
      }
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  }
  ready.sort((a, b) => a - b);
  serving[name] = { readyS: ready[Math.floor(ready.length / 2)], ...last };
}
const floorServe = serving["serve --data-dir (floor)"].readyS;
for (const [name, s] of Object.entries(serving)) {
  serveRows.push(
    `| ${name} | ${s.readyS.toFixed(2)} s | ${(s.readyS / floorServe).toFixed(2)} | ${mb(s.atReady)} | ${mb(s.afterPull)} | ${mb(s.hwm)} |`,
  );
}

const lines = [
  `payload: release-like, ${payload.images.length} images, ${payload.blobs} blobs, ${
    (archiveSize / 1e9).toFixed(2)
  } GB OCI layout archive (page cache warm); disk ${args.values.disk}, tmpfs ${args.values.tmpfs}; ${navigator.hardwareConcurrency} CPUs; ${
    rt.length ? "one-shot contenders under chrt -r 10; " : ""
  }median of ${runs} runs`,
  "",
  "| line | contender | wall | × floor | peak RSS |",
  "| --- | --- | --- | --- | --- |",
  ...rows.map((r) =>
    `| ${r.line} | ${r.contender} | ${r.m.wallS.toFixed(2)} s | ${(r.m.wallS / r.floor).toFixed(2)} | ${mb(r.m.maxRssKb)} |`
  ),
  "",
  "| server | ready | × floor | RSS at ready | RSS after pulling every image twice | peak RSS |",
  "| --- | --- | --- | --- | --- | --- |",
  ...serveRows,
];
console.log(lines.join("\n"));
await Deno.mkdir(join(root, "bench", "out"), { recursive: true });
await Deno.writeTextFile(join(root, "bench", "out", `perf_bench-${args.values.size}.md`), lines.join("\n") + "\n");
if (!args.values.keep) await Deno.remove(disk, { recursive: true });
else console.log(`kept ${disk}`);
