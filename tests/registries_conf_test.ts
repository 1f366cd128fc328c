/**
 * registries.conf written into real-looking host configurations, checked by
 * skopeo itself: it must load the result (no "registries configuration" error).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "smol-toml";
import { sampleFixture, withTempDir } from "./_fixtures.ts";
import { freePort, isoload, serve } from "./_process.ts";
import { upstream } from "./_upstream.ts";

/** skopeo parses the configuration (the pull itself fails later: no network, no server). */
async function skopeoAccepts(conf: string): Promise<void> {
  const out = await new Deno.Command("skopeo", {
    args: ["--registries-conf", conf, "inspect", "--retry-times", "0", "docker://quay.io/isoload-test/hello:v1"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.doesNotMatch(err, /registries configuration|loading registries/i, err);
}

const MAIN = [
  "# Site configuration: keep these comments",
  'unqualified-search-registries = ["registry.access.redhat.com", "docker.io"]',
  "",
  "[[registry]]",
  'prefix = "quay.io/isoload-test/hello"',
  'location = "quay.io/isoload-test/hello"',
  "",
  "[[registry.mirror]]",
  'location = "corp.example.com/hello"',
  "",
  "[[registry]]",
  'location = "docker.io"',
  "",
].join("\n");

Deno.test("load: merging into a foreign main registries.conf keeps it, backs it up and stays valid for skopeo", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("mainconf", async (dir) => {
    const conf = join(dir, "registries.conf");
    await Deno.writeTextFile(conf, MAIN);
    const data = join(dir, "data");
    const r = await isoload(["load", tar, "--data-dir", data, "--registries-conf", conf, "--mirror", "127.0.0.1:5000"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await Deno.readTextFile(`${conf}.isoload-backup`), MAIN, "backup holds the original bytes");
    const text = await Deno.readTextFile(conf);
    assert.match(text, /# Site configuration: keep these comments/);
    const doc = parse(text) as { registry: { prefix?: string; location: string; mirror?: { location: string }[] }[] };
    const hello = doc.registry.filter((r) => r.prefix === "quay.io/isoload-test/hello");
    assert.equal(hello.length, 1);
    assert.deepEqual(hello[0].mirror!.map((m) => m.location), ["127.0.0.1:5000/quay.io/isoload-test/hello", "corp.example.com/hello"]);
    assert.ok(doc.registry.some((r) => r.location === "docker.io"), "other entries kept");
    await skopeoAccepts(conf);
    // A second run with the same input gives the same bytes and no new backup content.
    assert.equal((await isoload(["load", tar, "--data-dir", data, "--registries-conf", conf, "--mirror", "127.0.0.1:5000"])).code, 0);
    assert.equal(await Deno.readTextFile(conf), text);
  });
});

Deno.test("load: a drop-in carries the main file's same-prefix mirrors over, after isoload's", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("dropin", async (dir) => {
    const etc = join(dir, "containers");
    await Deno.mkdir(join(etc, "registries.conf.d"), { recursive: true });
    await Deno.writeTextFile(join(etc, "registries.conf"), MAIN);
    const drop = join(etc, "registries.conf.d", "99-isoload.conf");
    const r = await isoload(["load", tar, "--data-dir", join(dir, "data"), "--registries-conf", drop]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await Deno.readTextFile(join(etc, "registries.conf")), MAIN, "the main file is not touched");
    const doc = parse(await Deno.readTextFile(drop)) as { registry: { prefix: string; mirror: { location: string }[] }[] };
    const hello = doc.registry.find((r) => r.prefix === "quay.io/isoload-test/hello")!;
    assert.deepEqual(hello.mirror.map((m) => m.location), ["127.0.0.1:22625/quay.io/isoload-test/hello", "corp.example.com/hello"]);
    await skopeoAccepts(drop);
  });
});

Deno.test("load: a v1-format main file is refused for merging and left untouched", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("v1conf", async (dir) => {
    const conf = join(dir, "registries.conf");
    const v1 = '[registries.search]\nregistries = ["docker.io"]\n';
    await Deno.writeTextFile(conf, v1);
    const r = await isoload(["load", tar, "--quiet", "--data-dir", join(dir, "data"), "--registries-conf", conf]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /v1 format/);
    assert.equal(await Deno.readTextFile(conf), v1);
    await assert.rejects(Deno.stat(join(dir, "data")), "refused before any load work");
  });
});

Deno.test("load and registries-conf: repeated --mirror lists every mirror in order; a blocked source still pulls through them (skopeo 1.20)", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("mirrors", async (dir) => {
    const conf = join(dir, "registries.conf");
    // The host blocks quay.io itself: containers/image checks blocked per endpoint, so the mirrors still serve.
    await Deno.writeTextFile(conf, '[[registry]]\nlocation = "quay.io"\nblocked = true\n');
    const port = freePort();
    const r = await isoload([
      "load",
      tar,
      "--data-dir",
      join(dir, "data"),
      "--mirror",
      `127.0.0.1:${port}`,
      "--mirror",
      "10.1.2.3:22625",
      "--registries-conf",
      conf,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /blocked/, "no warning: pulls through the mirror work");
    const doc = parse(await Deno.readTextFile(conf)) as {
      registry: { prefix?: string; blocked?: boolean; mirror?: { location: string }[] }[];
    };
    for (const img of fixture.images) {
      const e = doc.registry.find((x) => x.prefix === img.source)!;
      assert.deepEqual(e.mirror!.map((m) => m.location.split("/")[0]), [`127.0.0.1:${port}`, "10.1.2.3:22625"], img.source);
      if (img.source.startsWith("quay.io/")) assert.equal(e.blocked, true, "the host's blocked is carried over");
    }
    const nodeConf = join(dir, "node.conf");
    const nr = await isoload([
      "registries-conf",
      "--mirror",
      "localhost:22625",
      "--mirror",
      "10.1.2.3:22625",
      "--data-dir",
      join(dir, "data"),
      "--out",
      nodeConf,
      "--certs-dir",
      join(dir, "certs"),
    ]);
    assert.equal(nr.code, 0, nr.stderr);
    assert.match(
      await Deno.readTextFile(nodeConf),
      /location = "localhost:22625\/[^"]+"\ninsecure = true[\s\S]*?location = "10\.1\.2\.3:22625\//,
    );
    const skopeo = upstream("bin/skopeo-1.20", "the blocked-source pull with skopeo 1.20");
    if (!skopeo) return;
    const served = await serve(["--data-dir", join(dir, "data"), "--listen", `127.0.0.1:${port}`]);
    try {
      for (const [i, img] of fixture.images.entries()) {
        const out = await new Deno.Command(skopeo, {
          args: ["--registries-conf", conf, "copy", "--quiet", `docker://${img.source}@${img.digest}`, `dir:${join(dir, `p${i}`)}`],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      }
    } finally {
      assert.equal(await served.stop(), 0);
    }
  });
});
