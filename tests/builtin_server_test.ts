/**
 * isoload's built-in registry: the specification's pull endpoints answer as
 * they should, and skopeo, podman and containerd's ctr pull every image by
 * digest and tag through their own mirror configuration; served from DIR, in
 * place from the archive, and while a load copies it. Over 300 lines on
 * purpose: each test is one whole scenario with real clients, sharing setup.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mirrorRepositoryFor } from "../src/image/reference.ts";
import { buildLargeLayout, type Fixture, tarDirectory } from "../tools/payload.ts";
import { waitForV2 } from "../tools/registry_process.ts";
import { containersEnv, pullAll, skopeoPull } from "./_containers.ts";
import { corruptLayerArchive, fileDigest, sampleFixture, withTempDir } from "./_fixtures.ts";
import { freePort, isoload, serve, type Served, spawnIsoload, tool } from "./_process.ts";

const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
const expectedPull = (img: Fixture["images"][number]) =>
  img.children ? img.children.find((c) => c.platform?.architecture === arch)!.digest : img.digest;

/** Loads the sample into DIR with a registries.conf for `port`, and serves it built-in. */
async function servedSample(dir: string): Promise<{ served: Served; port: number; conf: string; data: string }> {
  const { tar } = await sampleFixture();
  const port = freePort();
  const data = join(dir, "data");
  const conf = join(dir, "registries.conf");
  const r = await isoload(["load", tar, "--data-dir", data, "--mirror", `127.0.0.1:${port}`, "--registries-conf", conf, "--quiet"]);
  assert.equal(r.code, 0, r.stderr);
  // No --registry-command or --registry-image: the built-in server.
  const served = await serve(["--data-dir", data, "--listen", `127.0.0.1:${port}`]);
  return { served, port, conf, data };
}

Deno.test("built-in registry: the specification's pull endpoints, statuses, headers and bodies", async () => {
  const { fixture } = await sampleFixture();
  await withTempDir("spec", async (dir) => {
    const { served, port } = await servedSample(dir);
    const base = `http://127.0.0.1:${port}`;
    const hello = fixture.images.find((i) => i.source.endsWith("/hello"))!;
    const multi = fixture.images.find((i) => i.children)!;
    const helloManifest = JSON.parse(await Deno.readTextFile(join(fixture.dir, "blobs", "sha256", hello.digest.slice(7))));
    const layer = helloManifest.layers[0];
    const get = async (path: string, init: RequestInit = {}) => {
      const r = await fetch(`${base}${path}`, init);
      const body = new Uint8Array(await r.arrayBuffer());
      return { r, body, text: new TextDecoder().decode(body) };
    };
    const code = (text: string) => JSON.parse(text).errors[0].code;
    try {
      const cases: [string, () => Promise<void>][] = [
        ["GET /v2/ is 200 {} with the API version header", async () => {
          const { r, text } = await get("/v2/");
          assert.equal(r.status, 200);
          assert.equal(text, "{}");
          assert.equal(r.headers.get("Docker-Distribution-API-Version"), "registry/2.0");
        }],
        ["HEAD /v2/ is 200", async () => assert.equal((await get("/v2/", { method: "HEAD" })).r.status, 200)],
        ["manifest by tag: stored bytes, type, digest, length", async () => {
          const { r, body } = await get(`/v2/${hello.source}/manifests/v1`, {
            headers: { Accept: "application/vnd.oci.image.manifest.v1+json" },
          });
          assert.equal(r.status, 200);
          assert.equal(r.headers.get("Docker-Content-Digest"), hello.digest);
          assert.equal(r.headers.get("Content-Type"), "application/vnd.oci.image.manifest.v1+json");
          assert.equal(Number(r.headers.get("Content-Length")), body.length);
          assert.deepEqual(body, await Deno.readFile(join(fixture.dir, "blobs", "sha256", hello.digest.slice(7))));
        }],
        ["manifest by digest, HEAD: headers, no body", async () => {
          const { r, body } = await get(`/v2/${hello.source}/manifests/${hello.digest}`, { method: "HEAD" });
          assert.equal(r.status, 200);
          assert.equal(body.length, 0);
          assert.equal(r.headers.get("Docker-Content-Digest"), hello.digest);
        }],
        ["an index by tag, and its children by digest", async () => {
          const { r } = await get(`/v2/${multi.source}/manifests/v1`);
          assert.equal(r.headers.get("Content-Type"), "application/vnd.oci.image.index.v1+json");
          for (const c of multi.children!) assert.equal((await get(`/v2/${multi.source}/manifests/${c.digest}`)).r.status, 200);
        }],
        ["a tag whose type the client does not accept is MANIFEST_UNKNOWN", async () => {
          const { r, text } = await get(`/v2/${multi.source}/manifests/v1`, {
            headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
          });
          assert.equal(r.status, 404);
          assert.equal(code(text), "MANIFEST_UNKNOWN");
        }],
        ["absent tag and absent digest are MANIFEST_UNKNOWN", async () => {
          for (const ref of ["nope", `sha256:${"0".repeat(64)}`]) {
            const { r, text } = await get(`/v2/${hello.source}/manifests/${ref}`);
            assert.equal(r.status, 404);
            assert.equal(code(text), "MANIFEST_UNKNOWN");
          }
        }],
        ["a manifest of another repository is not served from this one", async () => {
          assert.equal((await get(`/v2/${hello.source}/manifests/${multi.digest}`)).r.status, 404);
        }],
        ["unknown repository is NAME_UNKNOWN; a bad name is NAME_INVALID", async () => {
          const a = await get(`/v2/quay.io/nobody/here/tags/list`);
          assert.equal(a.r.status, 404);
          assert.equal(code(a.text), "NAME_UNKNOWN");
          for (const bad of ["/v2/quay.io%2Fisoload-test%2Fhello/tags/list", "/v2/Quay.io/x/tags/list", "/v2/a//b/tags/list"]) {
            const b = await get(bad);
            assert.equal(b.r.status, 400, bad);
            assert.equal(code(b.text), "NAME_INVALID");
          }
        }],
        ["blob GET streams it whole with its digest; HEAD gives the length", async () => {
          const { r, body } = await get(`/v2/${hello.source}/blobs/${layer.digest}`);
          assert.equal(r.status, 200);
          assert.equal(body.length, layer.size);
          assert.equal(r.headers.get("Docker-Content-Digest"), layer.digest);
          const h = await get(`/v2/${hello.source}/blobs/${layer.digest}`, { method: "HEAD" });
          assert.equal(h.r.headers.get("Content-Length"), String(layer.size));
          assert.equal(h.body.length, 0);
        }],
        ["blob Range: 206 with Content-Range; suffix ranges; 416 beyond the end", async () => {
          const whole = await Deno.readFile(join(fixture.dir, "blobs", "sha256", layer.digest.slice(7)));
          const a = await get(`/v2/${hello.source}/blobs/${layer.digest}`, { headers: { Range: "bytes=100-199" } });
          assert.equal(a.r.status, 206);
          assert.equal(a.r.headers.get("Content-Range"), `bytes 100-199/${layer.size}`);
          assert.deepEqual(a.body, whole.subarray(100, 200));
          const b = await get(`/v2/${hello.source}/blobs/${layer.digest}`, { headers: { Range: "bytes=-10" } });
          assert.deepEqual(b.body, whole.subarray(whole.length - 10));
          const c = await get(`/v2/${hello.source}/blobs/${layer.digest}`, { headers: { Range: `bytes=${layer.size}-` } });
          assert.equal(c.r.status, 416);
        }],
        ["absent blob is BLOB_UNKNOWN; a bad digest is DIGEST_INVALID", async () => {
          const a = await get(`/v2/${hello.source}/blobs/sha256:${"1".repeat(64)}`);
          assert.equal(a.r.status, 404);
          assert.equal(code(a.text), "BLOB_UNKNOWN");
          const b = await get(`/v2/${hello.source}/blobs/sha256:xyz`);
          assert.equal(b.r.status, 400);
          assert.equal(code(b.text), "DIGEST_INVALID");
        }],
        ["tags/list, with n/last pagination and a Link header", async () => {
          const { text } = await get(`/v2/${hello.source}/tags/list`);
          assert.deepEqual(JSON.parse(text), { name: hello.source, tags: ["v1"] });
          const p = await get(`/v2/_catalog?n=2`);
          assert.equal(JSON.parse(p.text).repositories.length, 2);
          assert.match(p.r.headers.get("Link")!, /^<\/v2\/_catalog\?.*last=.*>; rel="next"$/);
          const all = JSON.parse((await get(`/v2/_catalog`)).text).repositories;
          const next = JSON.parse((await get(`/v2/_catalog?n=100&last=${encodeURIComponent(all[1])}`)).text).repositories;
          assert.deepEqual(next, all.slice(2));
          assert.deepEqual(all, [...fixture.images.map((i) => mirrorRepositoryFor(i.source))].sort());
        }],
        ["every write method is 405 UNSUPPORTED", async () => {
          for (
            const [method, path] of [["PUT", `/v2/${hello.source}/manifests/evil`], ["POST", `/v2/${hello.source}/blobs/uploads/`], [
              "PATCH",
              `/v2/${hello.source}/blobs/uploads/x`,
            ], ["DELETE", `/v2/${hello.source}/manifests/${hello.digest}`]]
          ) {
            const { r, text } = await get(path, { method, body: method === "DELETE" ? undefined : "x" });
            assert.equal(r.status, 405, method);
            assert.equal(code(text), "UNSUPPORTED");
          }
        }],
        ["no path leaves DIR: .., encoded slashes and dots", async () => {
          for (
            const p of ["/v2/../../etc/passwd", "/v2/%2e%2e/%2e%2e/etc/passwd/blobs/x", `/v2/${hello.source}/blobs/..%2F..%2Fetc%2Fpasswd`]
          ) {
            const { r, text } = await get(p);
            assert.ok(r.status === 400 || r.status === 404, `${p}: ${r.status}`);
            assert.doesNotMatch(text, /root:/);
          }
        }],
      ];
      for (const [name, run] of cases) {
        await run().catch((e) => {
          throw new Error(`${name}: ${e.message}`);
        });
      }
    } finally {
      assert.equal(await served.stop(), 0);
    }
  });
});

/** A containerd of our own (native snapshotter, private root and socket) for the duration of `fn`. */
async function withContainerd(dir: string, fn: (socket: string) => Promise<void>): Promise<void> {
  const root = join(dir, "containerd");
  await Deno.mkdir(root, { recursive: true });
  const socket = join(root, "c.sock");
  const config = join(root, "config.toml");
  await Deno.writeTextFile(
    config,
    [
      "version = 2",
      `root = "${root}/root"`,
      `state = "${root}/state"`,
      "[grpc]",
      `  address = "${socket}"`,
      '[plugins."io.containerd.grpc.v1.cri"]',
      "  disable = true",
      "",
    ].join("\n"),
  );
  const daemon = new Deno.Command("containerd", { args: ["--config", config], stdout: "null", stderr: "piped" }).spawn();
  try {
    for (let i = 0; i < 100; i++) {
      if ((await new Deno.Command("ctr", { args: ["-a", socket, "version"], stdout: "null", stderr: "null" }).output()).success) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await fn(socket);
  } finally {
    daemon.kill("SIGTERM");
    await daemon.status;
    await daemon.stderr.cancel().catch(() => {});
  }
}

Deno.test("built-in registry: skopeo, podman and containerd's ctr pull every image by digest and tag through their mirror settings", async () => {
  const { fixture } = await sampleFixture();
  await withTempDir("clients", async (dir) => {
    const { served, port, conf } = await servedSample(dir);
    try {
      // skopeo, through registries.conf.
      for (const [i, img] of fixture.images.entries()) {
        assert.equal(await skopeoPull(conf, `${img.source}@${img.digest}`, join(dir, `s-d${i}`)), expectedPull(img), img.name);
        if (!img.name.includes("@")) assert.equal(await skopeoPull(conf, img.name, join(dir, `s-t${i}`)), expectedPull(img), img.name);
        for (const [j, c] of (img.children ?? []).entries()) {
          assert.equal(await skopeoPull(conf, `${img.source}@${c.digest}`, join(dir, `s-c${i}-${j}`)), c.digest);
        }
      }
      // podman, through the same registries.conf.
      const env = { ...await containersEnv(join(dir, "podman")), CONTAINERS_REGISTRIES_CONF: conf };
      for (const img of fixture.images) {
        for (const ref of [`${img.source}@${img.digest}`, ...(img.name.includes("@") ? [] : [img.name])]) {
          await tool("podman", ["pull", "--quiet", ref], env);
          assert.equal((await tool("podman", ["image", "inspect", "--format", "{{.Digest}}", ref], env)).stdout.trim(), img.digest, ref);
        }
      }
      // containerd's ctr, through a hosts.toml per source registry (its certs.d), mirror path overridden to isoload's layout.
      const hosts = join(dir, "certs.d");
      for (const registry of new Set(fixture.images.map((i) => i.source.split("/")[0]))) {
        await Deno.mkdir(join(hosts, registry), { recursive: true });
        await Deno.writeTextFile(
          join(hosts, registry, "hosts.toml"),
          `server = "https://${registry}"\n\n[host."http://127.0.0.1:${port}/v2/${
            registry.replace(":", "-")
          }"]\n  capabilities = ["pull", "resolve"]\n  override_path = true\n`,
        );
      }
      await withContainerd(dir, async (socket) => {
        for (const img of fixture.images) {
          for (const ref of [`${img.source}@${img.digest}`, ...(img.name.includes("@") ? [] : [img.name])]) {
            await tool("ctr", ["-a", socket, "images", "pull", "--hosts-dir", hosts, "--snapshotter", "native", ref]);
          }
        }
        const listed = (await tool("ctr", ["-a", socket, "images", "ls"])).stdout;
        for (const img of fixture.images) {
          const line = listed.split("\n").find((l) => l.startsWith(`${img.source}@${img.digest} `) || l.startsWith(`${img.name} `));
          assert.ok(line?.includes(img.digest), `ctr lists ${img.name} at ${img.digest}: ${listed}`);
        }
      });
    } finally {
      assert.equal(await served.stop(), 0);
    }
  });
});

Deno.test("built-in registry in place: serve --source reads no layer to start, checks each blob as first served, withholds a corrupt one", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("inplace", async (dir) => {
    // The sample, in place: every image pulls.
    const port = freePort();
    const served = await serve(["--source", tar, "--listen", `127.0.0.1:${port}`]);
    try {
      await pullAll(undefined, fixture, dir, port);
    } finally {
      assert.equal(await served.stop(), 0);
    }
    // A large layer, corrupt in the archive: the pull fails, the blob is never served as good, the other image is fine.
    const { tar: bad, layout, layer } = await corruptLayerArchive(dir, 6_000_000);
    const port2 = freePort();
    const s2 = await serve(["--source", bad, "--listen", `127.0.0.1:${port2}`]);
    try {
      const url = `http://127.0.0.1:${port2}/v2/${layout.images[0].source}/blobs/${layer}`;
      await assert.rejects(async () => await (await fetch(url)).arrayBuffer(), "the first GET is cut before its end");
      const again = await fetch(url);
      await again.body?.cancel();
      assert.equal(again.status, 404, "then it is withheld");
      const other = layout.images[1];
      const out = join(dir, "other");
      await tool("skopeo", [
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        `docker://127.0.0.1:${port2}/${other.source}@${other.digest}`,
        `dir:${out}`,
      ]);
      assert.equal(await fileDigest(join(out, "manifest.json")), other.digest);
    } finally {
      assert.equal(await s2.stop(), 0);
    }
  });
});

Deno.test("load --serve: pulls during the load match; a load that stops leaves serving correct; a re-run completes", async () => {
  await withTempDir("whileload", async (dir) => {
    const layout = await buildLargeLayout(join(dir, "layout"), 6, 20_000_000);
    const tar = join(dir, "big.tar");
    await tarDirectory(layout.dir, tar);
    const data = join(dir, "data");
    const port = freePort();
    const args = ["load", tar, "--data-dir", data, "--no-registries-conf", "--serve", "--listen", `127.0.0.1:${port}`];

    // Killed mid-load: nothing wrong is served on the next start.
    const first = spawnIsoload(args);
    assert.ok(await first.reached(tar, 60_000_000), "the first load got under way");
    first.child.kill("SIGKILL");
    await first.output();

    const run = spawnIsoload(args);
    await waitForV2(`127.0.0.1:${port}`, 6000); // served from the archive at once
    await pullAll(undefined, layout, dir, port); // during (most of) the load
    // What is served is published in DIR while it is, and withdrawn on exit.
    const statePath = join(data, "isoload", "serving.json");
    const state = JSON.parse(await Deno.readTextFile(statePath));
    assert.deepEqual([state.server, state.pid, state.listen], ["builtin", run.child.pid, `127.0.0.1:${port}`]);
    run.child.kill("SIGTERM");
    const out = await run.output();
    assert.ok(out.code === 0 || out.code === 130, out.stderr);
    assert.equal(await Deno.stat(statePath).catch(() => undefined), undefined, "serving.json is removed on exit");

    // A load that cannot proceed (a DIR on a full disk) keeps serving from the archive.
    const mount = join(dir, "small");
    await Deno.mkdir(mount);
    await tool("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mount]);
    try {
      const port3 = freePort();
      const s3 = spawnIsoload([
        "load",
        tar,
        "--data-dir",
        join(mount, "data"),
        "--no-registries-conf",
        "--serve",
        "--listen",
        `127.0.0.1:${port3}`,
      ]);
      await waitForV2(`127.0.0.1:${port3}`, 6000);
      await pullAll(undefined, layout, dir, port3);
      s3.child.kill("SIGTERM");
      const o3 = await s3.output();
      assert.equal(o3.code, 5, "the exit says the load failed");
      assert.match(o3.stderr, /the background load stopped \(Cannot load .* needs about .*\); still serving from the archive in place/);
    } finally {
      await tool("umount", [mount]);
    }

    // Finally a plain re-run completes the DIR.
    const done = await isoload(["load", tar, "--data-dir", data, "--no-registries-conf"]);
    assert.equal(done.code, 0, done.stderr);
  });
});

Deno.test("built-in registry: SIGTERM lets an in-flight download finish (or cuts it cleanly) and exits 0", async () => {
  await withTempDir("graceful", async (dir) => {
    const layout = await buildLargeLayout(join(dir, "layout"), 1, 30_000_000);
    const tar = join(dir, "one.tar");
    await tarDirectory(layout.dir, tar);
    const data = join(dir, "data");
    assert.equal((await isoload(["load", tar, "--data-dir", data, "--no-registries-conf", "--quiet"])).code, 0);
    const port = freePort();
    const served = await serve(["--data-dir", data, "--listen", `127.0.0.1:${port}`]);
    const img = layout.images[0];
    const manifest = JSON.parse(await Deno.readTextFile(join(layout.dir, "blobs", "sha256", img.digest.slice(7))));
    const layer = manifest.layers[0];
    const res = await fetch(`http://127.0.0.1:${port}/v2/${img.source}/blobs/${layer.digest}`);
    const reader = res.body!.getReader();
    const first = await reader.read();
    let got = first.value!.length;
    const stopped = served.stop(); // SIGTERM while the download is under way
    const { createHash } = await import("node:crypto");
    const hash = createHash("sha256").update(first.value!);
    let cut = false;
    try {
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        got += r.value.length;
        hash.update(r.value);
      }
    } catch {
      cut = true;
    }
    assert.ok(cut || (got === layer.size && `sha256:${hash.digest("hex")}` === layer.digest), `finished whole (${got} bytes) or cut`);
    assert.equal(await stopped, 0, "serve exits 0 on SIGTERM");
    assert.match(served.stderr(), /Received SIGTERM: stopping the built-in registry/);
  });
});

Deno.test("built-in registry: a port already in use exits 5 (a host failure) with one line, before indexing: serve from DIR, in place, load --serve", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("portinuse", async (dir) => {
    const data = join(dir, "data");
    assert.equal((await isoload(["load", tar, "--data-dir", data, "--no-registries-conf", "--quiet"])).code, 0);
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const listen = `127.0.0.1:${(taken.addr as Deno.NetAddr).port}`;
    try {
      const runs = [
        ["serve", "--data-dir", data],
        ["serve", "--source", tar],
        ["load", tar, "--data-dir", join(dir, "data2"), "--no-registries-conf", "--serve"],
      ];
      for (const args of runs) {
        const r = await isoload([...args, "--listen", listen], { timeoutMs: 60_000 });
        assert.equal(r.code, 5, `${args.join(" ")}: ${r.stderr}`);
        const errors = r.stderr.split("\n").filter((l) => /Cannot listen/.test(l));
        assert.equal(errors.length, 1, r.stderr);
        assert.match(errors[0], new RegExp(`Cannot listen on ${listen.replaceAll(".", "\\.")}: the address is already in use`));
        assert.doesNotMatch(r.stderr, /Indexed/, "refused before indexing the archive");
      }
      await assert.rejects(Deno.stat(join(dir, "data2", "docker")), "load --serve wrote nothing");
    } finally {
      taken.close();
    }
  });
});
