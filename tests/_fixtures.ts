/** Test fixtures and what is checked on them: temp dirs, the sample archive, file digests, the storage tree's soundness. */
import { join } from "node:path";
import { buildLargeLayout, buildSampleLayout, type Fixture, tarDirectory } from "../tools/payload.ts";
import { layoutEntries, makeTar, type RawEntry } from "./_tar.ts";

/** Runs `fn` with a fresh temp dir, removed afterwards. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: `isoload-${prefix}-` });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** sha256 of a file, as "sha256:<hex>". */
export async function fileDigest(path: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  return `sha256:${createHash("sha256").update(await Deno.readFile(path)).digest("hex")}`;
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

/**
 * Every file under `dir` (sorted), checking that each blob data file hashes
 * to its name: a half-written or corrupt blob at a final path fails the test.
 */
export async function checkTree(dir: string): Promise<string[]> {
  const { createHash } = await import("node:crypto");
  const files: string[] = [];
  const walk = async (d: string) => {
    let list: Deno.DirEntry[] = [];
    try {
      for await (const e of Deno.readDir(d)) list.push(e);
    } catch {
      return;
    }
    list = list.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of list) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else {
        files.push(p);
        const m = /blobs\/sha256\/[0-9a-f]{2}\/([0-9a-f]{64})\/data$/.exec(p);
        if (m) {
          const hash = createHash("sha256");
          for await (const c of (await Deno.open(p)).readable) hash.update(c);
          if (hash.digest("hex") !== m[1]) throw new Error(`${p} does not match its digest`);
        }
      }
    }
  };
  await walk(dir);
  return files;
}

/** This host's architecture as OCI spells it (amd64, arm64). */
export const HOST_ARCH = ({ x86_64: "amd64", aarch64: "arm64" } as Record<string, string>)[Deno.build.arch] ?? Deno.build.arch;

/** What a client pulling `img` on this host gets: for an index, the manifest of this host's platform. */
export function pulledDigest(img: Fixture["images"][number]): string {
  if (!img.children) return img.digest;
  const child = img.children.find((c) => c.platform?.architecture === HOST_ARCH);
  if (!child) throw new Error(`${img.name} has no ${HOST_ARCH} manifest`);
  return child.digest;
}

/** The sample layout plus `n` tiny unreferenced blobs: small in the archive, a page each on disk. */
export async function tinyBlobsArchive(path: string, n: number): Promise<void> {
  const entries: RawEntry[] = await layoutEntries((await sampleFixture()).fixture.dir);
  for (let i = 0; i < n; i++) {
    const data = new TextEncoder().encode(`tiny blob ${i}\n`);
    entries.push({ name: `blobs/sha256/${(await import("node:crypto")).createHash("sha256").update(data).digest("hex")}`, data });
  }
  await Deno.writeFile(path, makeTar(entries));
}

/**
 * Two images of `layerBytes` layers written as `DIR/bad.tar`, the first image's
 * first layer corrupt in it (bytes near its end flipped, so the check fails only
 * once nearly all of it was sent).
 */
export async function corruptLayerArchive(dir: string, layerBytes: number): Promise<{ tar: string; layout: Fixture; layer: string }> {
  const layout = await buildLargeLayout(join(dir, "big"), 2, layerBytes);
  const entries = await layoutEntries(layout.dir);
  const manifest = JSON.parse(
    new TextDecoder().decode(entries.find((e) => e.name.endsWith(layout.images[0].digest.slice(7)))!.data as Uint8Array),
  );
  const layer = manifest.layers[0].digest as string;
  const i = entries.findIndex((e) => e.name.endsWith(layer.slice(7)));
  const data = new Uint8Array(entries[i].data as Uint8Array);
  data[data.length - 5] ^= 0xff;
  entries[i] = { ...entries[i], data };
  const tar = join(dir, "bad.tar");
  await Deno.writeFile(tar, makeTar(entries));
  return { tar, layout, layer };
}
