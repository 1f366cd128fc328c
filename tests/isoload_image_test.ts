/**
 * The isoload image (the Containerfile's `isoload` stage) as a host runs it: `podman run --net host -v DIR:DIR IMAGE
 * <command>`. It inspects, loads, verifies and serves a mounted archive in place, and skopeo on the host pulls through
 * it on 127.0.0.1. The image is built by scripts/harness.sh, which names it in ISOLOAD_IMAGE; without it (or without
 * podman) the tests skip with a notice.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { pullAll } from "./_containers.ts";
import { sampleFixture, withTempDir } from "./_fixtures.ts";
import { compilePermissions, freePort, isoload, tool } from "./_process.ts";

const IMAGE = Deno.env.get("ISOLOAD_IMAGE");
const podman = await new Deno.Command("podman", { args: ["--version"], stdout: "null", stderr: "null" }).output().then(
  (o) => o.success,
  () => false,
);
const ignore = !IMAGE || !podman;
if (ignore) {
  console.error(
    `NOTICE: isoload_image_test skipped: ${
      podman ? "ISOLOAD_IMAGE is not set" : "no podman"
    } (bash scripts/harness.sh builds the image and runs these)`,
  );
}

/**
 * podman with the host's store (where the image was built) and this sandbox's runtime settings: runc, cgroupfs,
 * ulimits below the sandbox's. Test-only, as in containersEnv.
 */
async function podmanEnv(dir: string): Promise<Record<string, string>> {
  const conf = join(dir, "containers.conf");
  await Deno.writeTextFile(
    conf,
    '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n',
  );
  return { CONTAINERS_CONF: conf };
}

/** `podman run --rm --net host -v D:D … IMAGE ARGS` for each mounted directory D. */
async function runImage(env: Record<string, string>, mounts: string[], args: string[]) {
  const out = await new Deno.Command("podman", {
    args: ["run", "--rm", "--net", "host", ...mounts.flatMap((d) => ["-v", `${d}:${d}`]), IMAGE!, ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name: "isoload image: inspect, load, verify, status and mirror-config on a mounted archive, as the checkout does them",
  ignore,
  async fn() {
    const { tar, fixture } = await sampleFixture();
    await withTempDir("image", async (dir) => {
      const env = await podmanEnv(dir);
      const mounts = [dirname(tar), dir];
      const inside = await runImage(env, mounts, ["inspect", tar, "--json"]);
      assert.equal(inside.code, 0, inside.stderr);
      const here = await isoload(["inspect", tar, "--json"]);
      assert.equal(here.code, 0, here.stderr);
      assert.deepEqual(JSON.parse(inside.stdout), JSON.parse(here.stdout));
      const data = join(dir, "data");
      const load = await runImage(env, mounts, ["load", tar, "--data-dir", data, "--no-registries-conf"]);
      assert.equal(load.code, 0, load.stderr);
      const verify = await runImage(env, mounts, ["verify", "--data-dir", data, "--json"]);
      assert.equal(verify.code, 0, verify.stderr);
      const status = await runImage(env, mounts, ["status", "--data-dir", data, "--json"]);
      assert.equal(status.code, 0, status.stderr);
      const idms = await runImage(env, mounts, ["mirror-config", "--data-dir", data, "--mirror", "127.0.0.1:5000"]);
      assert.equal(idms.code, 0, idms.stderr);
      assert.match(idms.stdout, /ImageDigestMirrorSet/);
      // What the container wrote is the same tree a host-side verify accepts.
      const check = await isoload(["verify", "--data-dir", data]);
      assert.equal(check.code, 0, check.stderr);
      assert.ok(fixture.images.length > 0);
    });
  },
});

Deno.test({
  name: "isoload image: serve --source on a mounted archive under podman run --net host; skopeo on the host pulls every image",
  ignore,
  async fn() {
    const { tar, fixture } = await sampleFixture();
    await withTempDir("image-serve", async (dir) => {
      const env = await podmanEnv(dir);
      const port = freePort();
      const name = `isoload-image-test-${port}`;
      await tool("podman", [
        "run",
        "-d",
        "--name",
        name,
        "--net",
        "host",
        "-v",
        `${dirname(tar)}:${dirname(tar)}:ro`,
        IMAGE!,
        "serve",
        "--source",
        tar,
        "--listen",
        `127.0.0.1:${port}`,
      ], env);
      try {
        const deadline = Date.now() + 60_000;
        let logs = "";
        while (!/Registry ready/.test(logs)) {
          if (Date.now() > deadline) throw new Error(`the container's serve did not become ready: ${logs}`);
          await new Promise((r) => setTimeout(r, 200));
          logs = (await tool("podman", ["logs", name], env)).stderr;
        }
        await pullAll(undefined, fixture, dir, port);
        // podman stop sends SIGTERM: isoload ends cleanly (exit 0), as under systemd.
        await tool("podman", ["stop", "--time", "15", name], env);
        const code = (await tool("podman", ["inspect", "--format", "{{.State.ExitCode}}", name], env)).stdout.trim();
        assert.equal(code, "0");
      } finally {
        await tool("podman", ["rm", "--force", name], env).catch(() => {});
      }
    });
  },
});

Deno.test({
  name:
    "isoload image: only isoload (and deno for the bundle), no shell or package manager; the bundle runs with the compile task's permissions",
  ignore,
  async fn() {
    await withTempDir("image-files", async (dir) => {
      const env = await podmanEnv(dir);
      const cfg = JSON.parse((await tool("podman", ["image", "inspect", "--format", "{{json .Config}}", IMAGE!], env)).stdout);
      const entry: string[] = cfg.Entrypoint;
      const bundle = entry[0] === "/usr/bin/deno";
      assert.equal(bundle ? "bundle" : "compiled", Deno.env.get("ISOLOAD_IMAGE_FLAVOR") ?? (bundle ? "bundle" : "compiled"));
      if (bundle) {
        assert.deepEqual(entry.filter((a) => /^--(allow|unstable|v8)-/.test(a)), compilePermissions());
      } else {
        assert.deepEqual(entry, ["/usr/bin/isoload"]);
      }
      const id = (await tool("podman", ["create", IMAGE!], env)).stdout.trim();
      try {
        const archive = join(dir, "rootfs.tar");
        await tool("podman", ["export", "-o", archive, id], env);
        const files = (await tool("tar", ["-tf", archive])).stdout.split("\n").map((f) => f.replace(/^\.?\//, ""));
        for (
          const absent of [
            "bin/sh",
            "usr/bin/sh",
            "bin/bash",
            "usr/bin/bash",
            "usr/bin/apt",
            "usr/bin/dnf",
            "usr/bin/skopeo",
            "usr/bin/podman",
          ]
        ) {
          assert.ok(!files.includes(absent), `${absent} is in the image`);
        }
        assert.ok(files.includes(bundle ? "usr/lib/isoload/isoload.js" : "usr/bin/isoload"));
      } finally {
        await tool("podman", ["rm", id], env).catch(() => {});
      }
    });
  },
});
