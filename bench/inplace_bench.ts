/**
 * Benchmark of serving in place (`isoload serve --source`), one tar against
 * the same tar split into chunks: time to ready, and the serving process's
 * peak RSS after every image was pulled (every manifest and blob fetched by
 * parallel clients, each blob hashed as first served). Baselines, same run:
 * `tar -tf` of the archive (GNU tar lists headers, seeking past data: the
 * floor for a header pass) and the one-tar figures for the split.
 *
 * The payload is the release-like one (tools/release_payload.ts: 190 images,
 * ~875 blobs, shared bases) at `--size`, or an archive given with `--archive`.
 *
 * Usage: deno run -A bench/inplace_bench.ts [--size 8G | --archive TAR] [--parts P] [--clients C] [--out DIR] [--label NAME]
 */
import { parseArgs } from "node:util";
import { basename, join } from "node:path";
import { splitFile } from "../tools/payload.ts";
import { parseSize, planRelease, writeRelease } from "../tools/release_payload.ts";
import { Bench, fetchAll, isoloadArgs, startUntilReady } from "./_measure.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "1G" },
    archive: { type: "string" },
    parts: { type: "string", default: "4" },
    clients: { type: "string", default: "8" },
    out: { type: "string" },
    label: { type: "string" },
  },
});
const parts = Number(args.values.parts);
const clients = Number(args.values.clients);
const root = new URL("..", import.meta.url).pathname;
const work = args.values.out ?? await Deno.makeTempDir({ prefix: "isoload-inplacebench-" });
await Deno.mkdir(work, { recursive: true });
const bench = new Bench(work, 1);
const isoload = [Deno.execPath(), ...isoloadArgs()];

let archive = args.values.archive;
if (!archive) {
  console.log(`bench: generating a ${args.values.size} release-like payload in ${work}`);
  archive = join(work, "payload.tar");
  await writeRelease(planRelease({ totalBytes: parseSize(args.values.size!) }), { out: archive });
}
const size = (await Deno.stat(archive)).size;
const cuts = Array.from({ length: parts - 1 }, (_, i) => Math.floor((size * (i + 1)) / parts) + 123); // not on a 512-byte boundary
console.log(`bench: splitting ${basename(archive)} (${(size / 1e9).toFixed(2)} GB) into ${parts} chunks`);
const chunks = await splitFile(archive, cuts, join(work, "chunks.tar."));

async function status(pid: number, field: string): Promise<number> {
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(await Deno.readTextFile(`/proc/${pid}/status`))?.[1] ?? 0);
}

/** Every image pulled: each manifest (index children too) and blob fetched, C clients at once; returns counts. */
async function pullEverything(base: string, images: { repository: string; digest: string }[]): Promise<{ blobs: number; bytes: number }> {
  const accept = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
  ].join(", ");
  const urls: string[] = [];
  const seen = new Set<string>();
  const manifest = async (repo: string, digest: string): Promise<void> => {
    const m = await (await fetch(`${base}/v2/${repo}/manifests/${digest}`, { headers: { Accept: accept } })).json();
    for (const c of m.manifests ?? []) await manifest(repo, c.digest).catch(() => {}); // children absent from the archive
    for (const d of [m.config, ...(m.layers ?? [])].filter(Boolean)) {
      if (seen.has(`${repo}@${d.digest}`)) continue;
      seen.add(`${repo}@${d.digest}`);
      urls.push(`${base}/v2/${repo}/blobs/${d.digest}`);
    }
  };
  for (const img of images) await manifest(img.repository, img.digest);
  return { blobs: urls.length, bytes: await fetchAll(urls, clients) };
}

const report = JSON.parse(
  new TextDecoder().decode(
    (await new Deno.Command(isoload[0], { args: [...isoload.slice(1), "inspect", "--json", archive], stdout: "piped" }).output()).stdout,
  ),
);
console.log(`bench: ${report.images.length} images, ${report.blobs} blobs`);
await bench.timed("cat", [archive, "/dev/null"]);
await bench.timed("cat", [...chunks, "/dev/null"]);
const tarList = await bench.timed("tar", ["-tf", archive]);
// The floor of any ready time: starting the same runtime on the same code and exiting (median of 3).
const startup = await new Bench(work, 3).median(() => Promise.resolve([...isoload.slice(1), "--version"]), isoload[0]);

interface Row {
  name: string;
  readyS: number;
  indexS: number;
  rssReadyMb: number;
  rssMb: number;
  pulled: string;
}
const rows: Row[] = [];
/** A port free now on 127.0.0.1 (others may be benchmarking on this machine too). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}
for (const [name, sources] of [["one tar", [archive]], [`${parts} chunks (glob)`, [join(work, "chunks.tar.*")]]] as const) {
  // Twice, the first to warm the page cache with what a header pass reads; the second is measured.
  for (let round = 0; round < 2; round++) {
    const listen = `127.0.0.1:${freePort()}`;
    const s = await startUntilReady([...isoload, "serve", ...sources.flatMap((p) => ["--source", p]), "--listen", listen]);
    try {
      const rssReady = await status(s.child.pid, "VmHWM");
      if (round === 0) continue;
      const t0 = performance.now();
      const pulled = await pullEverything(`http://${listen}`, report.images);
      const took = (performance.now() - t0) / 1000;
      console.log(`bench: ${name}: ready in ${(s.readyMs / 1000).toFixed(2)} s (${/Indexed [^\n]*/.exec(s.log())?.[0]})`);
      rows.push({
        name,
        readyS: s.readyMs / 1000,
        indexS: Number(/in place in ([\d.]+)(ms|s)/.exec(s.log())?.[1] ?? NaN) / (/in place in [\d.]+ms/.test(s.log()) ? 1000 : 1),
        rssReadyMb: rssReady / 1024,
        rssMb: (await status(s.child.pid, "VmHWM")) / 1024,
        pulled: `${pulled.blobs} blobs, ${(pulled.bytes / 1e9).toFixed(2)} GB in ${took.toFixed(1)} s`,
      });
    } finally {
      s.child.kill("SIGTERM");
      await s.child.status;
    }
  }
}

const one = rows[0];
const label = args.values.label ?? `${(size / 1e9).toFixed(2)} GB`;
const lines = [
  `payload: ${label}: ${report.images.length} images, ${report.blobs} blobs, ${
    (size / 1e9).toFixed(2)
  } GB archive (page cache warm), ${Deno.build.arch}, ${navigator.hardwareConcurrency} CPUs; ${clients} parallel clients; one measured run after a warm-up run`,
  "",
  `baselines: GNU tar -tf of the archive (header pass, seeking past data): ${tarList.wallS.toFixed(2)} s, ${
    (tarList.maxRssKb / 1024).toFixed(0)
  } MB; isoload --version (runtime start, the floor of any ready time): ${startup.wallS.toFixed(2)} s, ${
    (startup.maxRssKb / 1024).toFixed(0)
  } MB`,
  "",
  "| serve --source | ready | ready − start | index pass | × tar -tf | peak RSS at ready | peak RSS after pulling all | × one tar | pulled |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ...rows.map((r) =>
    `| ${r.name} | ${r.readyS.toFixed(2)} s | ${(r.readyS - startup.wallS).toFixed(2)} s | ${r.indexS.toFixed(2)} s | ${
      (r.indexS / Math.max(tarList.wallS, 0.01)).toFixed(1)
    } | ${r.rssReadyMb.toFixed(0)} MB | ${r.rssMb.toFixed(0)} MB | ${(r.rssMb / one.rssMb).toFixed(2)} | ${r.pulled} |`
  ),
];
console.log(lines.join("\n"));
await Deno.mkdir(join(root, "bench", "out"), { recursive: true });
await Deno.writeTextFile(join(root, "bench", "out", `inplace_bench-${label.replace(/[^A-Za-z0-9.]+/g, "_")}.md`), lines.join("\n") + "\n");
for (const c of chunks) await Deno.remove(c);
if (!args.values.out && !args.values.archive) await Deno.remove(work, { recursive: true });
