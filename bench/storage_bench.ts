/**
 * Benchmark of `isoload load --mode storage` (with --jobs 1 and --jobs N)
 * against a plain shell loop of `skopeo copy` over the same images from an
 * already-extracted OCI layout, all into a fresh vfs containers-storage, on
 * one generated payload of gzip layers in one run. Wall time and peak RSS
 * (GNU time: the process or its largest child) for each; ratios to the loop.
 *
 * Usage: deno run -A bench/storage_bench.ts [--images N] [--layer-mb M] [--runs R] [--out DIR]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { buildLargeLayout, tarDirectory } from "../tools/payload.ts";
import { Bench, isoloadArgs, mb, type Measure } from "./_measure.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    images: { type: "string", default: "16" },
    "layer-mb": { type: "string", default: "16" },
    runs: { type: "string", default: "1" },
    out: { type: "string" },
  },
});
const images = Number(args.values.images);
const layerBytes = Number(args.values["layer-mb"]) * 1_000_000;
const root = new URL("..", import.meta.url).pathname;
const work = args.values.out ?? await Deno.makeTempDir({ prefix: "isoload-sbench-" });
const bench = new Bench(work, Number(args.values.runs));
const cpus = navigator.hardwareConcurrency;

console.log(`bench: generating ${images} images × ${layerBytes / 1e6} MB (gzip) in ${work}`);
const layout = join(work, "layout");
const fixture = await buildLargeLayout(layout, images, layerBytes, { gzip: true });
const archive = join(work, "payload.tar");
await tarDirectory(layout, archive);
const size = (await Deno.stat(archive)).size;
console.log(`bench: archive ${(size / 1e9).toFixed(2)} GB`);
await bench.timed("cat", [archive, "/dev/null"]);

/** A fresh vfs store (short runroot: see tests/_containers.ts) and the environment pointing skopeo at it. */
async function freshStore(): Promise<Record<string, string>> {
  const dir = await bench.fresh("store");
  const conf = join(dir, "storage.conf");
  await Deno.writeTextFile(conf, `[storage]\ndriver = "vfs"\ngraphroot = "${dir}/graph"\nrunroot = "${dir}/run"\n`);
  return { CONTAINERS_STORAGE_CONF: conf };
}

const results: [string, Measure][] = [];
const storageLoadArgs = async (jobs: number) => {
  const env = await freshStore();
  return isoloadArgs(
    "load",
    archive,
    "--mode",
    "storage",
    "--data-dir",
    await bench.fresh("isoload-data"),
    "--storage-conf",
    env.CONTAINERS_STORAGE_CONF,
    "--pin",
    "none",
    "--jobs",
    String(jobs),
    "--quiet",
  );
};
{
  // The baseline: what a shell script on host0 would do with an extracted layout.
  const policy = join(work, "policy.json");
  await Deno.writeTextFile(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  const script = fixture.images.map((img) =>
    `skopeo --policy ${policy} copy --quiet oci:${layout}:${img.name} containers-storage:${img.source}@${img.digest}`
  );
  const sh = join(work, "loop.sh");
  await Deno.writeTextFile(sh, script.join("\n") + "\n");
  let env: Record<string, string> = {};
  results.push([
    "shell loop: skopeo copy per image (baseline)",
    await bench.median(async () => {
      env = await freshStore();
      Deno.env.set("CONTAINERS_STORAGE_CONF", env.CONTAINERS_STORAGE_CONF);
      return [sh];
    }, "sh"),
  ]);
  Deno.env.delete("CONTAINERS_STORAGE_CONF");
}
results.push([
  "isoload read + verify only (registry-mode load, no copies)",
  await bench.median(
    async () =>
      isoloadArgs(
        "load",
        archive,
        "--data-dir",
        await bench.fresh("read-only"),
        "--no-registries-conf",
        "--quiet",
      ),
    Deno.execPath(),
  ),
]);
results.push(["isoload load --mode storage --jobs 1", await bench.median(() => storageLoadArgs(1), Deno.execPath())]);
results.push([`isoload load --mode storage --jobs ${cpus}`, await bench.median(() => storageLoadArgs(cpus), Deno.execPath())]);
{
  // A re-run over the store the last run filled: the records say complete, the store is checked, the archive is not read.
  const last = await storageLoadArgs(cpus);
  await bench.timed(Deno.execPath(), last);
  results.push(["isoload re-run (all present)", await bench.timed(Deno.execPath(), last)]);
}

const base = results[0][1].wallS;
const lines = [
  `payload: ${images} images of one gzip layer (${layerBytes / 1e6} MB uncompressed), ${
    (size / 1e9).toFixed(2)
  } GB archive (page cache warm), vfs store, ${Deno.build.arch}, ${cpus} CPUs; median of ${bench.runs} run(s)`,
  "",
  "| contender | wall | × loop | peak RSS |",
  "| --- | --- | --- | --- |",
  ...results.map(([n, m]) => `| ${n} | ${m.wallS.toFixed(2)} s | ${(m.wallS / base).toFixed(2)} | ${mb(m.maxRssKb)} |`),
];
console.log(lines.join("\n"));
await Deno.mkdir(join(root, "bench", "out"), { recursive: true });
await Deno.writeTextFile(join(root, "bench", "out", "storage_bench.md"), lines.join("\n") + "\n");
if (!args.values.out) await Deno.remove(work, { recursive: true });
