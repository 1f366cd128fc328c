/**
 * Benchmark of isoload's built-in registry against the Debian docker-registry
 * on the same DIR: throughput of N parallel clients fetching every blob,
 * latency of manifest GETs, peak RSS of the serving process; and time to
 * ready for the archive served in place versus loaded then served.
 *
 * Usage: deno run -A bench/serve_bench.ts [--images N] [--layer-mb M] [--clients C] [--out DIR]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { buildLargeLayout, tarDirectory } from "../tools/payload.ts";
import { mirrorRepositoryFor } from "../src/image/reference.ts";
import { Bench, fetchAll, isoloadArgs, startUntilReady } from "./_measure.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    images: { type: "string", default: "40" },
    "layer-mb": { type: "string", default: "26" },
    clients: { type: "string", default: "8" },
    out: { type: "string" },
  },
});
const images = Number(args.values.images);
const layerBytes = Number(args.values["layer-mb"]) * 1_000_000;
const clients = Number(args.values.clients);
const root = new URL("..", import.meta.url).pathname;
const work = args.values.out ?? await Deno.makeTempDir({ prefix: "isoload-servebench-" });
const bench = new Bench(work, 1);
const isoload = [Deno.execPath(), ...isoloadArgs()];

console.log(`bench: generating ${images} images × ${layerBytes / 1e6} MB in ${work}`);
const fixture = await buildLargeLayout(join(work, "layout"), images, layerBytes);
const archive = join(work, "payload.tar");
await tarDirectory(fixture.dir, archive);
const size = (await Deno.stat(archive)).size;
await bench.timed("cat", [archive, "/dev/null"]);

/** Peak RSS (VmHWM) of a process and its descendants that are still alive. */
async function peakRssKb(pid: number): Promise<number> {
  let max = 0;
  const visit = async (p: number) => {
    const status = await Deno.readTextFile(`/proc/${p}/status`).catch(() => "");
    max = Math.max(max, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
    const kids = await Deno.readTextFile(`/proc/${p}/task/${p}/children`).catch(() => "");
    for (const k of kids.trim().split(/\s+/).filter(Boolean)) await visit(Number(k));
  };
  await visit(pid);
  return max;
}

/** Every blob URL of the payload on a registry at `base`. */
async function blobUrls(base: string): Promise<string[]> {
  const urls: string[] = [];
  for (const img of fixture.images) {
    const repo = mirrorRepositoryFor(img.source);
    const m = await (await fetch(`${base}/v2/${repo}/manifests/${img.digest}`, {
      headers: { Accept: "application/vnd.oci.image.manifest.v1+json" },
    })).json();
    for (const d of [m.config, ...m.layers]) urls.push(`${base}/v2/${repo}/blobs/${d.digest}`);
  }
  return urls;
}

/** C clients fetch every blob between them: MB/s over the wall time. */
async function throughput(base: string): Promise<{ mbPerS: number; bytes: number }> {
  const urls = await blobUrls(base);
  const t0 = performance.now();
  const bytes = await fetchAll(urls, clients);
  return { mbPerS: bytes / 1e6 / ((performance.now() - t0) / 1000), bytes };
}

/** 400 manifest GETs one after another on a kept-alive connection: p50 and p99 in ms. */
async function manifestLatency(base: string): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let i = 0; i < 400; i++) {
    const img = fixture.images[i % fixture.images.length];
    const t0 = performance.now();
    const r = await fetch(`${base}/v2/${mirrorRepositoryFor(img.source)}/manifests/${img.digest}`, {
      headers: { Accept: "application/vnd.oci.image.manifest.v1+json" },
    });
    await r.arrayBuffer();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length * 0.5)], p99: times[Math.floor(times.length * 0.99)] };
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  child.kill("SIGTERM");
  await child.status;
}

const data = join(work, "data");
const loadStart = performance.now();
const load = await new Deno.Command(isoload[0], {
  args: [...isoload.slice(1), "load", archive, "--data-dir", data, "--no-registries-conf", "--quiet"],
})
  .output();
if (!load.success) throw new Error("load failed");
const loadMs = performance.now() - loadStart;

const rows: string[] = [];
const serverRuns: [string, string[]][] = [
  ["docker-registry 2.8 (Debian)", ["--registry-command", "/usr/bin/docker-registry"]],
  ["isoload built-in", []],
];
const results: Record<string, { mbPerS: number; p50: number; p99: number; rss: number; readyMs: number }> = {};
for (const [name, extra] of serverRuns) {
  const port = 25500 + Object.keys(results).length;
  const { child, readyMs } = await startUntilReady([...isoload, "serve", "--data-dir", data, "--listen", `127.0.0.1:${port}`, ...extra]);
  try {
    const base = `http://127.0.0.1:${port}`;
    await throughput(base); // warm
    const t = await throughput(base);
    const l = await manifestLatency(base);
    // The registry process's own peak (docker-registry is isoload serve's child; isoload's wrapper is excluded).
    const rss = extra.length
      ? await peakRssKb(Number((await Deno.readTextFile(`/proc/${child.pid}/task/${child.pid}/children`)).trim().split(/\s+/)[0]))
      : await peakRssKb(child.pid);
    results[name] = { mbPerS: t.mbPerS, p50: l.p50, p99: l.p99, rss, readyMs };
  } finally {
    await stop(child);
  }
}
for (const [name, r] of Object.entries(results)) {
  rows.push(
    `| ${name} | ${r.mbPerS.toFixed(0)} MB/s | ${r.p50.toFixed(2)} ms | ${r.p99.toFixed(2)} ms | ${(r.rss / 1024).toFixed(0)} MB |`,
  );
}

// Time to ready: the archive in place, against loading it and then serving.
const inPlace = await startUntilReady([...isoload, "serve", "--source", archive, "--listen", "127.0.0.1:25600"]);
const inPlaceRss = await peakRssKb(inPlace.child.pid);
const inPlaceT = await throughput("http://127.0.0.1:25600");
await stop(inPlace.child);
const base = results["docker-registry 2.8 (Debian)"];
const builtin = results["isoload built-in"];
const lines = [
  `payload: ${images} images × ${layerBytes / 1e6} MB, ${
    (size / 1e9).toFixed(2)
  } GB archive (page cache warm), ${Deno.build.arch}, ${navigator.hardwareConcurrency} CPUs; ${clients} parallel clients; one run`,
  "",
  "| server (same DIR) | blob throughput | manifest GET p50 | p99 | peak RSS |",
  "| --- | --- | --- | --- | --- |",
  ...rows,
  "",
  `built-in / docker-registry throughput: ${(builtin.mbPerS / base.mbPerS).toFixed(2)}×`,
  "",
  "| time to ready | seconds |",
  "| --- | --- |",
  `| isoload load, then serve (built-in) | ${((loadMs + builtin.readyMs) / 1000).toFixed(2)} |`,
  `| isoload serve --source (in place) | ${(inPlace.readyMs / 1000).toFixed(2)} |`,
  "",
  `in place: ${inPlaceT.mbPerS.toFixed(0)} MB/s first-serve throughput (each blob hashed as served), peak RSS ${
    (inPlaceRss / 1024).toFixed(0)
  } MB`,
];
console.log(lines.join("\n"));
await Deno.mkdir(join(root, "bench", "out"), { recursive: true });
await Deno.writeTextFile(join(root, "bench", "out", "serve_bench.md"), lines.join("\n") + "\n");
if (!args.values.out) await Deno.remove(work, { recursive: true });
