/**
 * Registry mode end to end with the real tools: isoload load, isoload serve
 * with the Debian docker-registry, skopeo pulling by source name through the
 * written registries.conf (no route to the source registries).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildOcMirrorArchive } from "../tools/oc_mirror_fixture.ts";
import { skopeoPull } from "./_containers.ts";
import { pulledDigest, sampleFixture, withTempDir } from "./_fixtures.ts";
import { freePort, isoload, serve } from "./_process.ts";

async function loadServePullAll(source: string, dir: string): Promise<void> {
  const { fixture } = await sampleFixture();
  const port = freePort();
  const data = join(dir, "data");
  const conf = join(dir, "registries.conf");
  const load = await isoload(["load", source, "--data-dir", data, "--mirror", `127.0.0.1:${port}`, "--registries-conf", conf]);
  assert.equal(load.code, 0, load.stderr);
  const served = await serve(["--data-dir", data, "--listen", `127.0.0.1:${port}`, "--registry-command", "/usr/bin/docker-registry"]);
  try {
    for (const img of fixture.images) {
      const got = await skopeoPull(conf, `${img.source}@${img.digest}`, join(dir, `pull-${img.digest.slice(7, 15)}`));
      // skopeo stores the platform's manifest when pulling an index; the index itself must still resolve.
      assert.equal(got, pulledDigest(img), img.name);
      if (!img.name.includes("@")) {
        const byTag = await skopeoPull(conf, img.name, join(dir, `tag-${img.digest.slice(7, 15)}`));
        assert.equal(byTag, pulledDigest(img), `${img.name} by tag`);
      }
      for (const child of img.children ?? []) {
        const c = await skopeoPull(conf, `${img.source}@${child.digest}`, join(dir, `child-${child.digest.slice(7, 15)}`));
        assert.equal(c, child.digest, `${img.name} child ${child.platform?.architecture}`);
      }
    }
    const put = await fetch(`http://127.0.0.1:${port}/v2/quay.io/isoload-test/hello/manifests/evil`, {
      method: "PUT",
      headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
      body: "{}",
    });
    await put.body?.cancel();
    assert.equal(put.status, 405, "the served registry refuses writes");
    const post = await fetch(`http://127.0.0.1:${port}/v2/quay.io/isoload-test/hello/blobs/uploads/`, { method: "POST" });
    await post.body?.cancel();
    assert.equal(post.status, 405, "the served registry refuses uploads");
  } finally {
    assert.equal(await served.stop(), 0, "serve exits 0 on SIGTERM");
  }
}

Deno.test("load + serve: an OCI layout archive is pulled by source digest, tag and child digest", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("oci", (dir) => loadServePullAll(tar, dir));
});

Deno.test("load + serve: an OCI layout directory works as well as its tar", async () => {
  const { fixture } = await sampleFixture();
  await withTempDir("ocidir", (dir) => loadServePullAll(fixture.dir, dir));
});

Deno.test("load + serve: an oc-mirror v2 archive is named from its IDMS/ITMS and pulled", async () => {
  const { fixture } = await sampleFixture();
  await withTempDir("ocm", async (dir) => {
    const archive = join(dir, "mirror_000001.tar");
    await buildOcMirrorArchive(fixture, dir, archive);
    await loadServePullAll(archive, dir);
  });
});

Deno.test("load: a second run over a complete DIR rewrites nothing and says so", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("rerun", async (dir) => {
    const data = join(dir, "data");
    const conf = join(dir, "r.conf");
    const args = ["load", tar, "--data-dir", data, "--registries-conf", conf];
    assert.equal((await isoload(args)).code, 0);
    const snapshot = async () => {
      const out: string[] = [];
      const walk = async (d: string) => {
        for await (const e of Deno.readDir(d)) {
          const p = join(d, e.name);
          if (e.isDirectory) await walk(p);
          else if (!p.endsWith("/lock")) {
            const st = await Deno.stat(p);
            out.push(`${p} ${st.ino} ${st.mtime?.getTime()}`);
          }
        }
      };
      await walk(data);
      out.push(`${conf} ${(await Deno.stat(conf)).mtime?.getTime()}`);
      return out.sort();
    };
    const before = await snapshot();
    assert.ok(before.some((l) => l.includes("/blobs/sha256/")), "blobs are laid out");
    const again = await isoload(args);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /Nothing to do/);
    assert.deepEqual(await snapshot(), before, "no file was rewritten");
  });
});

Deno.test("mirror-config: IDMS, ITMS and ICSP name every source repository", async () => {
  const { tar, fixture } = await sampleFixture();
  await withTempDir("mc", async (dir) => {
    const data = join(dir, "data");
    assert.equal((await isoload(["load", tar, "--data-dir", data, "--no-registries-conf"])).code, 0);
    const { parse } = await import("yaml");
    for (const kind of ["idms", "itms", "icsp"]) {
      const r = await isoload(["mirror-config", "--data-dir", data, "--mirror", "host0.example.com:22625", "--kind", kind]);
      assert.equal(r.code, 0, r.stderr);
      const doc = parse(r.stdout);
      const list = doc.spec.imageDigestMirrors ?? doc.spec.imageTagMirrors ?? doc.spec.repositoryDigestMirrors;
      const sources = list.map((e: { source: string }) => e.source);
      const expected = fixture.images.filter((i) => kind !== "itms" || !i.name.includes("@")).map((i) => i.source);
      assert.deepEqual(sources.sort(), [...new Set(expected)].sort(), kind);
      for (const e of list) assert.match(e.mirrors[0], /^host0\.example\.com:22625\//);
    }
    assert.match((await isoload(["mirror-config", "--data-dir", data, "--mirror", "h:1"])).stdout, /kind: ImageDigestMirrorSet/);
  });
});
