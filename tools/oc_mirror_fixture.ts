/**
 * Builds an oc-mirror v2 style archive the way oc-mirror does: push every
 * image into a real distribution registry with skopeo, then tar the
 * registry's storage tree with working-dir/cluster-resources mirror sets.
 */
import { join } from "node:path";
import type { Fixture } from "./payload.ts";
import { writeLayoutIndex } from "./payload.ts";
import { startWritableRegistry } from "./registry_process.ts";

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/** The mirror repository (inside the archive) oc-mirror would use for a source. */
export function ocMirrorRepo(source: string): string {
  if (source.startsWith("quay.io/openshift-release-dev/")) return "openshift/release";
  return source.slice(source.indexOf("/") + 1);
}

/**
 * Writes `out` as an oc-mirror v2 archive of the fixture's images. With
 * `parts` above 1, `out` is a directory that gets `mirror_000001.tar …` the way
 * oc-mirror's archiveSize splits (internal/pkg/archive): files only, in its
 * order (repositories, then blobs, then working-dir and the isc), each part a
 * whole tar filled up to an even share of the bytes, so blobs spread across parts.
 */
export async function buildOcMirrorArchive(fixture: Fixture, work: string, out: string, opts: { parts?: number } = {}): Promise<void> {
  const root = join(work, "ocm-root");
  const reg = await startWritableRegistry(root, work);
  const port = reg.port;
  try {
    for (const img of fixture.images) {
      // A one-image layout sharing the fixture's blobs, so skopeo can pick it by position.
      const one = join(work, `one-${img.digest.slice(7, 19)}`);
      await Deno.mkdir(one, { recursive: true });
      await Deno.symlink(join(fixture.dir, "blobs"), join(one, "blobs"));
      const desc = JSON.parse(await Deno.readTextFile(join(fixture.dir, "index.json"))).manifests
        .find((m: { digest: string }) => m.digest === img.digest);
      await writeLayoutIndex(one, [{ desc }]);
      const repo = ocMirrorRepo(img.source);
      const tag = img.name.includes("@") ? undefined : img.name.slice(img.name.lastIndexOf(":") + 1);
      const dest = `docker://127.0.0.1:${port}/${repo}${tag ? `:${tag}` : `@${img.digest}`}`;
      await run("skopeo", ["copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false", `oci:${one}`, dest]);
    }
  } finally {
    await reg.stop();
  }
  const cr = join(root, "working-dir", "cluster-resources");
  await Deno.mkdir(cr, { recursive: true });
  // A namespace-level entry for quay.io/isoload-test and a repository-level one for the release, as oc-mirror writes them.
  await Deno.writeTextFile(
    join(cr, "idms-oc-mirror.yaml"),
    [
      "apiVersion: config.openshift.io/v1",
      "kind: ImageDigestMirrorSet",
      "metadata:",
      "  name: idms-release-0",
      "spec:",
      "  imageDigestMirrors:",
      "  - mirrors:",
      "    - localhost:55000/openshift/release",
      "    source: quay.io/openshift-release-dev/ocp-v4.0-art-dev",
      "  - mirrors:",
      "    - localhost:55000/isoload-test",
      "    source: quay.io/isoload-test",
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(
    join(cr, "itms-oc-mirror.yaml"),
    [
      "apiVersion: config.openshift.io/v1",
      "kind: ImageTagMirrorSet",
      "metadata:",
      "  name: itms-generic-0",
      "spec:",
      "  imageTagMirrors:",
      "  - mirrors:",
      "    - localhost:55000/team/docker-fmt",
      "    source: registry.example.com:5000/team/docker-fmt",
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(join(root, "isc_20261128T000000Z"), "kind: ImageSetConfiguration\n");
  if ((opts.parts ?? 1) <= 1) {
    await run("tar", ["-C", root, "-cf", out, "docker", "working-dir", "isc_20261128T000000Z"]);
    return;
  }
  const files: { path: string; size: number }[] = [];
  for (const top of ["docker/registry/v2/repositories", "docker/registry/v2/blobs", "working-dir"]) {
    for await (const f of walkFiles(root, top)) files.push(f);
  }
  files.push({ path: "isc_20261128T000000Z", size: 0 });
  const total = files.reduce((n, f) => n + f.size, 0);
  const share = Math.ceil(total / opts.parts!);
  const parts: string[][] = [[]];
  let used = 0;
  let blobs = 0;
  for (const f of files) {
    // A part is closed once full, but only after it got a blob: every part then carries some.
    if (blobs > 0 && used + f.size > share && parts.length < opts.parts!) {
      parts.push([]);
      used = 0;
      blobs = 0;
    }
    parts[parts.length - 1].push(f.path);
    used += f.size;
    if (f.path.includes("/blobs/")) blobs++;
  }
  await Deno.mkdir(out, { recursive: true });
  for (const [i, names] of parts.entries()) {
    const list = join(work, `ocm-part-${i + 1}.list`);
    await Deno.writeTextFile(list, names.join("\n") + "\n");
    await run("tar", ["-C", root, "--no-recursion", "-cf", join(out, `mirror_${String(i + 1).padStart(6, "0")}.tar`), "-T", list]);
  }
}

/** Regular files under `root/top`, sorted, as paths relative to root. */
async function* walkFiles(root: string, top: string): AsyncGenerator<{ path: string; size: number }> {
  const names = (await Array.fromAsync(Deno.readDir(join(root, top)))).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const e of names) {
    const rel = `${top}/${e.name}`;
    if (e.isDirectory) yield* walkFiles(root, rel);
    else if (e.isFile) yield { path: rel, size: (await Deno.stat(join(root, rel))).size };
  }
}
