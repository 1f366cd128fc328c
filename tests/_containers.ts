/** The containers tools in tests: podman and skopeo settings for this sandbox, and pulls checked by digest. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mirrorRepositoryFor } from "../src/image/reference.ts";
import type { Fixture } from "../tools/payload.ts";
import { fileDigest, pulledDigest } from "./_fixtures.ts";
import { freePort, serve, tool } from "./_process.ts";

/**
 * Environment for podman and skopeo on a private vfs store (test-only settings).
 * The runroot gets a short path of its own: with a runroot path much over 50
 * characters, podman 4.3 waits 20 s for every `podman run` to exit (conmon's
 * socket paths grow past the limit).
 */
export async function containersEnv(dir: string): Promise<Record<string, string>> {
  await Deno.mkdir(dir, { recursive: true });
  const runroot = await Deno.makeTempDir({ prefix: "ir" });
  globalThis.addEventListener("unload", () => Deno.removeSync(runroot, { recursive: true }));
  const conf = join(dir, "containers.conf");
  const storage = join(dir, "storage.conf");
  // runc, cgroupfs and lowered ulimits: what podman needs in this sandbox (see DOMAIN.md). Tests only.
  await Deno.writeTextFile(
    conf,
    [
      "[containers]",
      'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
      "[engine]",
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(
    storage,
    [
      "[storage]",
      'driver = "vfs"',
      `graphroot = "${join(dir, "graph")}"`,
      `runroot = "${runroot}"`,
      "",
    ].join("\n"),
  );
  return { CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: storage };
}

/** Pulls `ref` with skopeo through a registries.conf into a dir: destination; returns the manifest digest. */
export async function skopeoPull(registriesConf: string, ref: string, dest: string): Promise<string> {
  await tool("skopeo", ["--registries-conf", registriesConf, "copy", "--quiet", `docker://${ref}`, `dir:${dest}`]);
  return await fileDigest(join(dest, "manifest.json"));
}

/**
 * Pulls every image with skopeo by repository and digest; digests must match.
 * From `port` when given (a registry already serving), else from DIR served with docker-registry for the occasion.
 */
export async function pullAll(data: string | undefined, fixture: Fixture, work: string, port?: number): Promise<void> {
  const p = port ?? freePort();
  const served = port
    ? undefined
    : await serve(["--data-dir", data!, "--listen", `127.0.0.1:${p}`, "--registry-command", "/usr/bin/docker-registry"]);
  try {
    await Promise.all(fixture.images.map(async (img, i) => {
      const out = join(work, `pull-${p}-${i}`);
      await Deno.remove(out, { recursive: true }).catch(() => {});
      await tool("skopeo", [
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        `docker://127.0.0.1:${p}/${mirrorRepositoryFor(img.source)}@${img.digest}`,
        `dir:${out}`,
      ]);
      // For an index skopeo stores this host's manifest.
      assert.equal(await fileDigest(join(out, "manifest.json")), pulledDigest(img), img.name);
    }));
  } finally {
    if (served) assert.equal(await served.stop(), 0);
  }
}
