/**
 * Benchmark of `isoload load` against its floor (GNU tar -xf of the same
 * archive) and the HTTP push path oc-mirror takes (one `skopeo copy` per
 * image into a running registry), all on one generated payload in one run.
 * Wall time and peak RSS (GNU time) for each; figures as ratios to tar.
 *
 * Usage: deno run -A bench/load_bench.ts [--images N] [--layer-mb M] [--out DIR]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { startWritableRegistry } from "../tools/registry_process.ts";
import { buildLargeLayout, tarDirectory, writeLayoutIndex } from "../tools/payload.ts";
import { Bench, isoloadArgs, mb, type Measure } from "./_measure.ts";

const args = parseArgs({
  args: Deno.args,
  options: { images: { type: "string", default: "40" }, "layer-mb": { type: "string", default: "26" }, out: { type: "string" } },
});
const images = Number(args.values.images);
const layerBytes = Number(args.values["layer-mb"]) * 1_000_000;
const root = new URL("..", import.meta.url).pathname;
const work = args.values.out ?? await Deno.makeTempDir({ prefix: "isoload-bench-" });

const RUNS = 3;
const bench = new Bench(work, RUNS);
const fresh = (name: string) => bench.fresh(name);

console.log(`bench: generating ${images} images × ${layerBytes / 1e6} MB in ${work}`);
const layout = join(work, "layout");
const fixture = await buildLargeLayout(layout, images, layerBytes);
const archive = join(work, "payload.tar");
await tarDirectory(layout, archive);
const size = (await Deno.stat(archive)).size;
console.log(`bench: archive ${(size / 1e9).toFixed(2)} GB`);

// Warm the page cache the same way for every contender.
await bench.timed("cat", [archive, "/dev/null"]);

const results: [string, Measure][] = [];
results.push(["GNU tar -xf (floor)", await bench.median(async () => ["-xf", archive, "-C", await fresh("tar-out")], "tar")]);
results.push([
  "GNU tar -xf + sync",
  await bench.median(async () => ["-c", `tar -xf "$0" -C "$1" && sync -f "$1"`, archive, await fresh("tar-sync-out")], "sh"),
]);
{
  const data = join(work, "isoload-data");
  const loadArgs = isoloadArgs(
    "load",
    archive,
    "--data-dir",
    data,
    "--no-registries-conf",
    "--quiet",
  );
  results.push(["isoload load", await bench.median(async () => (await fresh("isoload-data"), loadArgs), Deno.execPath())]);
  results.push([
    "isoload load (re-run, complete DIR)",
    await bench.timed(Deno.execPath(), loadArgs),
  ]);
}
{
  // The push path: a writable registry and one skopeo copy per image, as oc-mirror's disk-to-mirror does.
  const regRoot = await fresh("push-registry");
  const reg = await startWritableRegistry(regRoot, work);
  const port = reg.port;
  const index = JSON.parse(await Deno.readTextFile(join(layout, "index.json"))).manifests;
  const script: string[] = [];
  for (const [i, img] of fixture.images.entries()) {
    const one = join(work, "push-layouts", String(i));
    await Deno.mkdir(one, { recursive: true });
    await Deno.symlink(join(layout, "blobs"), join(one, "blobs")).catch(() => {});
    await writeLayoutIndex(one, [{ desc: index[i] }]);
    script.push(`skopeo copy --quiet --dest-tls-verify=false oci:${one} docker://127.0.0.1:${port}/${img.source.slice(8)}:v1`);
  }
  const sh = join(work, "push.sh");
  await Deno.writeTextFile(sh, script.join("\n") + "\n");
  try {
    results.push([
      "skopeo copy per image into a registry (push path)",
      await bench.median(async () => {
        await fresh("push-registry");
        return [sh];
      }, "sh"),
    ]);
  } finally {
    await reg.stop();
  }
}

const tar = results[0][1].wallS;
const isoloadWall = results.find(([n]) => n === "isoload load")![1].wallS;
const push = results.at(-1)![1].wallS;
const lines = [
  `payload: ${images} images, ${
    (size / 1e9).toFixed(2)
  } GB archive (page cache warm), work dir ${work}, ${Deno.build.arch}, ${navigator.hardwareConcurrency} CPUs; median of ${RUNS} runs`,
  "",
  "| contender | wall | × tar | peak RSS |",
  "| --- | --- | --- | --- |",
  ...results.map(([n, m]) => `| ${n} | ${m.wallS.toFixed(2)} s | ${(m.wallS / tar).toFixed(2)} | ${mb(m.maxRssKb)} |`),
  "",
  `isoload load: ${(isoloadWall / tar).toFixed(2)}× GNU tar, ${(push / isoloadWall).toFixed(1)}× faster than the push path`,
];
console.log(lines.join("\n"));
await Deno.mkdir(join(root, "bench", "out"), { recursive: true });
await Deno.writeTextFile(join(root, "bench", "out", "load_bench.md"), lines.join("\n") + "\n");
if (!args.values.out) await Deno.remove(work, { recursive: true });
