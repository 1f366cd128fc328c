/**
 * Benchmark of replication from a peer (`isoload load http://PEER --data-dir
 * DIR`) against `skopeo sync` of the same images from the same registry, and
 * against fetching every blob with parallel curl (the floor: no verification,
 * no fsync, no layout), and the same curl followed by `sync -f` (the floor
 * with durability). The peer is isoload's built-in registry serving a loaded
 * DIR on 127.0.0.1.
 *
 * Contenders and the peer run at normal priority. With `--rt` (as root) they
 * run under `chrt -r 10` (SCHED_RR, as perf_bench.ts runs its one-shot
 * contenders), which shields them from the shared VM's other work but
 * starves the kernel's writeback threads (normal-priority kworkers): curl,
 * which never syncs, then fills the page cache at ~1.3 GB/s, while a client
 * that makes its copy durable before calling it complete waits for the
 * starved writeback at its end. A node replicating at boot runs at normal
 * priority.
 *
 * skopeo sync goes docker → dir: the cheapest destination skopeo has (files,
 * no registry doing its own writes and hashing behind an HTTP push), so the
 * ratio is against skopeo at its fastest. docker → docker would add a second
 * server's work that isoload does not have.
 *
 * The payload is the release-like one (tools/release_payload.ts: 190 images,
 * shared base layers, log-uniform layer sizes) as an oc-mirror archive, so
 * the peer's repositories are mirror paths and the source names come from
 * the image list, as in a real install.
 *
 * Every run writes to a new filesystem (`--fs ext4`, the default as root; `--fs xfs`; `--fs dir`: an emptied directory)
 * and, with `--settle`, starts from the same memory (settleMemory in _measure.ts).
 *
 * Usage: deno run -A bench/replicate_bench.ts [--size 1G] [--runs R] [--skopeo-runs R] [--jobs J] [--out DIR] [--fs T] [--settle] [--rt]
 *   [--peer-dir DIR] (serve an already loaded DIR instead of generating and loading the payload; kept)
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { parseSize, planRelease, writeRelease } from "../tools/release_payload.ts";
import { Bench, FreshFs, isoloadArgs, mb, type Measure, medianRun, settleMemory } from "./_measure.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "1G" },
    runs: { type: "string", default: "3" },
    "skopeo-runs": { type: "string" },
    "peer-dir": { type: "string" },
    jobs: { type: "string", default: "4" },
    out: { type: "string" },
    keep: { type: "boolean" },
    fs: { type: "string" },
    settle: { type: "boolean" },
    rt: { type: "boolean" },
  },
});
const totalBytes0 = parseSize(args.values.size!);
const runs = Number(args.values.runs);
const jobs = Number(args.values.jobs);
const root = new URL("..", import.meta.url).pathname;
const work = args.values.out ?? await Deno.makeTempDir({ prefix: "isoload-replbench-" });
await Deno.mkdir(work, { recursive: true });
const bench = new Bench(work, runs);
const skopeoBench = new Bench(work, Number(args.values["skopeo-runs"] ?? runs));
const isoload = [Deno.execPath(), ...isoloadArgs()];
if (args.values.rt && Deno.uid?.() !== 0) console.log("bench: --rt needs root; running at normal priority");
const rt = args.values.rt && Deno.uid?.() === 0 ? ["chrt", "-r", "10"] : [];

const peerDir = args.values["peer-dir"] ?? join(work, "peer");
if (!args.values["peer-dir"]) {
  console.log(`bench: generating a ${args.values.size} release-like oc-mirror archive in ${work}`);
  const archive = join(work, "payload.tar");
  await writeRelease(planRelease({ totalBytes: totalBytes0 }), { out: archive, format: "oc-mirror" });
  await bench.timed(isoload[0], [...isoload.slice(1), "load", archive, "--data-dir", peerDir, "--no-registries-conf", "--quiet"]);
  await Deno.remove(archive);
}
const records = JSON.parse(await Deno.readTextFile(join(peerDir, "isoload", "images.json")));

// The peer: the built-in registry over the loaded DIR.
const port = 20000 + Math.floor(Math.random() * 20000);
const peer = new Deno.Command(rt[0] ?? isoload[0], {
  args: [...rt.slice(1), ...(rt.length ? isoload : isoload.slice(1)), "serve", "--data-dir", peerDir, "--listen", `127.0.0.1:${port}`],
  stdout: "null",
  stderr: "piped",
}).spawn();
{
  const reader = peer.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!/Registry ready/.test(seen)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the peer ended before ready: ${seen}`);
    seen += value;
  }
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
}
const base = `http://127.0.0.1:${port}`;

/** A blob's data file in the peer's DIR. */
const blobData = (d: string) => join(peerDir, "docker/registry/v2/blobs/sha256", d.slice(7, 9), d.slice(7), "data");
// Every blob and manifest by digest, with the repository to ask for it in: the curl floor's list.
const blobs = new Map<string, { repo: string; size: number }>();
for (const img of records.images) {
  const visit = async (d: string) => {
    blobs.set(d, { repo: img.repository, size: (await Deno.stat(blobData(d))).size });
    const m = JSON.parse(await Deno.readTextFile(blobData(d)));
    for (const c of m.manifests ?? []) await visit(c.digest);
    for (const l of [...(m.config ? [m.config] : []), ...(m.layers ?? [])]) blobs.set(l.digest, { repo: img.repository, size: l.size });
  };
  await visit(img.digest);
}
const totalBytes = [...blobs.values()].reduce((n, b) => n + b.size, 0);
console.log(`bench: peer serves ${records.images.length} images, ${blobs.size} blobs, ${(totalBytes / 1e9).toFixed(2)} GB at ${base}`);
// Warm the peer's page cache, so every contender reads from memory; again before each run, with the contenders' programs.
const warmups = [
  ["bash", "-c", `cat ${join(peerDir, "docker/registry/v2/blobs")}/*/*/*/data > /dev/null`],
  [...isoload, "--version"],
  ["curl", "--version"],
  ["skopeo", "--version"],
];
await bench.timed(warmups[0][0], warmups[0].slice(1));

const curlConfig = join(work, "curl.cfg");
// Each run writes to a new filesystem (FreshFs in _measure.ts says why: ext4 allocating inodes after the last run's
// ~900–2,700 files were deleted cost curl up to 3× its CPU); `--fs dir` empties a directory of the work dir instead.
// Sparse, so only what is written takes room: skopeo's dir copy keeps every image's layers apart (shared base layers once
// per image), about 4.5× the blob bytes.
const freshFs = await FreshFs.fromFlag(args.values.fs, work, Math.ceil(totalBytes * 6) + (1 << 30));
const dest = freshFs?.out ?? join(work, "dest");
console.log(`bench: every run writes to ${freshFs ? `a new ${freshFs.type} filesystem (loop device, image in ${work})` : dest}`);
await Deno.writeTextFile(
  curlConfig,
  [...blobs].map(([d, b], i) => `url = "${base}/v2/${b.repo}/blobs/${d}"\noutput = "${dest}/${i}"\n`).join(""),
);
const syncYaml = join(work, "sync.yaml");
await Deno.writeTextFile(
  syncYaml,
  `127.0.0.1:${port}:\n  tls-verify: false\n  images:\n` +
    // Each repository once, with its tags or, for digest-only images, their digests.
    Object.entries(
      (records.images as { repository: string; digest: string; tags: string[] }[]).reduce((m, i) => {
        (m[i.repository] ??= []).push(...(i.tags.length ? i.tags : [i.digest]));
        return m;
      }, {} as Record<string, string[]>),
    ).map(([repo, refs]) => `    ${repo}: [${refs.map((r) => JSON.stringify(r)).join(", ")}]\n`).join(""),
);

const rows: [string, Measure][] = [];
/** One run of a contender into an empty `dest` (under the real-time wrapper with --rt). */
const once = async (argv: string[], cmd: string, by = bench): Promise<Measure> => {
  if (freshFs) {
    await freshFs.next(); // dest is its `out`
  } else {
    await Deno.remove(dest, { recursive: true }).catch(() => {});
    await Deno.mkdir(dest, { recursive: true });
  }
  // --settle: every run from the same memory, the peer's blobs and the programs cached, the rest free (settleMemory).
  if (args.values.settle) await settleMemory([], warmups);
  try {
    return await by.timed(rt[0] ?? cmd, rt.length ? [...rt.slice(1), cmd, ...argv] : argv);
  } catch (e) {
    // Nothing left mounted or attached by a failed run (the bench stops here).
    await freshFs?.close().catch(() => {});
    peer.kill("SIGTERM");
    throw e;
  }
};

// The floors and isoload take turns, one run each a round: the page cache and the disk drift over minutes on this
// VM (the curl floor alone gave 10.8 s in one run of this bench and 17.0 s in the next), so each round's ratio
// compares runs seconds apart.
const contenders: { label: string; argv: string[]; cmd: string }[] = [
  {
    label: `parallel curl, ${jobs} at once (floor)`,
    argv: ["--parallel", "--parallel-max", String(jobs), "--fail", "-s", "-K", curlConfig],
    cmd: "curl",
  },
  {
    label: `parallel curl, ${jobs} at once, then sync -f (floor with durability)`,
    argv: ["-c", `curl --parallel --parallel-max ${jobs} --fail -s -K ${curlConfig} && sync -f ${dest}`],
    cmd: "bash",
  },
  {
    label: `isoload load ${base} (--jobs ${jobs})`,
    argv: [...isoload.slice(1), "load", base, "--data-dir", dest, "--no-registries-conf", "--quiet", "--jobs", String(jobs)],
    cmd: isoload[0],
  },
];
/** CPU seconds the peer has used so far (user + system; chrt execs the server, so the pid is the server's). */
const peerCpuS = async () => {
  const f = (await Deno.readTextFile(`/proc/${peer.pid}/stat`)).split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
};
const runsOf: Measure[][] = contenders.map(() => []);
const peerCpu: number[][] = contenders.map(() => []);
for (let r = 0; r < runs; r++) {
  for (const [i, c] of contenders.entries()) {
    const before = await peerCpuS();
    const m = await once(c.argv, c.cmd);
    peerCpu[i].push(await peerCpuS() - before);
    runsOf[i].push(m);
    console.log(`bench: round ${r + 1}: ${c.label}: ${m.wallS.toFixed(2)} s, ${mb(m.maxRssKb)}`);
  }
}
const perRound = runsOf[0].map((curl, r) => curl.wallS / runsOf[2][r].wallS);
// What checking costs at the least: SHA-256 of every blob, openssl's user time (the hash alone, SHA-NI), one pass.
const blobList = join(work, "blobs.txt");
await Deno.writeTextFile(blobList, [...blobs.keys()].map((d) => blobData(d)).join("\0"));
const sha = await bench.timed("sh", ["-c", `xargs -0 openssl dgst -sha256 < "$0" > /dev/null`, blobList]);
// The least any verifying client can take in each round: curl's own work (receive, write) and the peer's, plus the
// hash, shared perfectly over every core; curl's wall over it is the best ratio that round allows.
const cores = navigator.hardwareConcurrency;
const bounds = runsOf[0].map((curl, r) => (curl.cpuS + peerCpu[0][r] + sha.userS) / cores);
rows.push([contenders[0].label, medianRun(runsOf[0])], [contenders[1].label, medianRun(runsOf[1])]);
// --skopeo-runs 0 leaves skopeo out (its column then compares against nothing).
if (skopeoBench.runs > 0) {
  const ms: Measure[] = [];
  const argv = ["sync", "--src", "yaml", "--dest", "dir", "--scoped", "--all", "--preserve-digests", syncYaml, dest];
  for (let r = 0; r < skopeoBench.runs; r++) ms.push(await once(argv, "skopeo", skopeoBench));
  rows.push(["skopeo sync docker → dir", medianRun(ms)]);
  console.log(`bench: skopeo sync docker → dir: ${medianRun(ms).wallS.toFixed(2)} s`);
}
rows.push([contenders[2].label, medianRun(runsOf[2])]);
// skopeo's copy replaced the last isoload run's DIR: one more (untimed) for the re-run below.
if (skopeoBench.runs > 0) await once(contenders[2].argv, contenders[2].cmd);
// The re-run over the complete DIR the last run left.
rows.push([
  "isoload load, re-run on the complete DIR",
  await bench.timed(rt[0] ?? isoload[0], [
    ...rt.slice(1),
    ...(rt.length ? isoload : isoload.slice(1)),
    "load",
    base,
    "--data-dir",
    dest,
    "--no-registries-conf",
    "--quiet",
  ]),
]);
peer.kill("SIGTERM");
await peer.status;

const floor = rows[0][1].wallS;
const durableFloor = rows[1][1].wallS;
const sync = rows.find(([label]) => label.startsWith("skopeo"))?.[1].wallS ?? NaN;
const table = [
  `Replicating ${records.images.length} images (${blobs.size} blobs, ${(totalBytes / 1e9).toFixed(2)} GB) from isoload's built-in`,
  `registry on 127.0.0.1 into ${
    freshFs ? `a new ${freshFs.type} filesystem each run` : work
  } (median wall of ${runs}, skopeo of ${skopeoBench.runs}, largest peak RSS${rt.length ? "; contenders and peer under chrt -r 10" : ""}):`,
  "",
  "| contender | wall | skopeo sync ÷ this | curl floor ÷ this | curl + sync ÷ this | peak RSS |",
  "| --- | --- | --- | --- | --- | --- |",
  ...rows.map(([label, m]) =>
    `| ${label} | ${m.wallS.toFixed(2)} s | ${(Number.isNaN(sync) ? "–" : (sync / m.wallS).toFixed(2))} | ${
      (floor / m.wallS).toFixed(2)
    } | ${(durableFloor / m.wallS).toFixed(2)} | ${mb(m.maxRssKb)} |`
  ),
  "",
  `The curl floor ÷ isoload in each round (runs seconds apart): ${perRound.map((x) => x.toFixed(2)).join(", ")}; median ${
    [...perRound].sort((x, y) => x - y)[Math.floor(perRound.length / 2)].toFixed(2)
  }.`,
  "",
  "| round | curl: wall, CPU | peer CPU while curl ran | SHA-256 of every blob (openssl user) | least a verifying client can take | " +
  "best curl floor ÷ it | isoload: wall, CPU | peer CPU while isoload ran |",
  "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ...runsOf[0].map((curl, r) =>
    `| ${r + 1} | ${curl.wallS.toFixed(2)} s, ${curl.cpuS.toFixed(2)} s | ${peerCpu[0][r].toFixed(2)} s | ${sha.userS.toFixed(2)} s | ${
      bounds[r].toFixed(2)
    } s | ${(curl.wallS / bounds[r]).toFixed(2)} | ${runsOf[2][r].wallS.toFixed(2)} s, ${runsOf[2][r].cpuS.toFixed(2)} s | ${
      peerCpu[2][r].toFixed(2)
    } s |`
  ),
  "",
].join("\n");
await Deno.mkdir(join(root, "bench", "out"), { recursive: true });
await Deno.writeTextFile(join(root, "bench", "out", "replicate_bench.md"), table);
console.log(table);
await freshFs?.close();
if (!args.values.keep && !args.values.out) await Deno.remove(work, { recursive: true });
else await Deno.remove(dest, { recursive: true }).catch(() => {});
