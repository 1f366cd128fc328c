/**
 * `serve --registry-image` with podman: the registry image itself comes from
 * the archive (not in containers-storage beforehand), and a pull through it works.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { busyboxRootfs, tarDirectory, tarOf, writeImage, writeLayoutIndex, writeRegistryImage } from "../tools/payload.ts";
import { containersEnv, skopeoPull } from "./_containers.ts";
import { withTempDir } from "./_fixtures.ts";
import { freePort, isoload, serve, tool } from "./_process.ts";

Deno.test("serve --registry-image: podman runs the registry image taken from the archive; skopeo pulls through it", async () => {
  await withTempDir("podman", async (dir) => {
    const env = await containersEnv(join(dir, "containers"));
    const layout = join(dir, "layout");
    const reg = await writeRegistryImage(layout, dir);
    const hello = await writeImage(layout, {
      layers: [await tarOf(await busyboxRootfs(dir))],
      cmd: ["/bin/busybox", "echo", "hi"],
    });
    const regName = `quay.io/openshift-release-dev/ocp-v4.0-art-dev@${reg.digest}`;
    await writeLayoutIndex(layout, [{ desc: reg, name: regName }, { desc: hello, name: "quay.io/isoload-test/hello:v1" }]);
    const tar = join(dir, "payload.tar");
    await tarDirectory(layout, tar);
    const port = freePort();
    const data = join(dir, "data");
    const conf = join(dir, "registries.conf");
    const load = await isoload(["load", tar, "--data-dir", data, "--mirror", `127.0.0.1:${port}`, "--registries-conf", conf], { env });
    assert.equal(load.code, 0, load.stderr);
    const before = await new Deno.Command("podman", { args: ["image", "exists", regName], env }).output();
    assert.notEqual(before.code, 0, "the registry image is not in containers-storage yet");
    const served = await serve(
      ["--data-dir", data, "--listen", `127.0.0.1:${port}`, "--registry-image", regName],
      { env, timeoutMs: 120_000 },
    );
    try {
      assert.match(served.stderr(), /Loading registry image .* from /);
      const got = await skopeoPull(conf, `quay.io/isoload-test/hello@${hello.digest}`, join(dir, "pull"));
      assert.equal(got, hello.digest);
      const put = await fetch(`http://127.0.0.1:${port}/v2/quay.io/isoload-test/hello/manifests/x`, { method: "PUT", body: "{}" });
      await put.body?.cancel();
      assert.equal(put.status, 405);
      const ps = await tool("podman", ["ps", "--format", "{{.Names}}"], env);
      assert.match(ps.stdout, /isoload-registry/);
    } finally {
      assert.equal(await served.stop(), 0);
    }
    const after = await new Deno.Command("podman", { args: ["ps", "-a", "--format", "{{.Names}}"], env, stdout: "piped" }).output();
    assert.doesNotMatch(new TextDecoder().decode(after.stdout), /isoload-registry/, "the container is removed on stop");
  });
});
