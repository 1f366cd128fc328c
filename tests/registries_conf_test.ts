/**
 * registries.conf written into real-looking host configurations, checked by
 * skopeo itself: it must load the result (no "registries configuration" error).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "smol-toml";
import { isoload, sampleFixture, withTempDir } from "./_helpers.ts";

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
