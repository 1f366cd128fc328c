/**
 * registries.conf against host configurations of many shapes: after isoload
 * writes its drop-in, skopeo, reading the whole /etc/containers (main file and
 * every drop-in, bind-mounted in a private mount namespace), pulls an image by
 * its source digest through the mirror; where the result would be invalid,
 * isoload refuses with exit 4 and writes nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileDigest, sampleFixture, withTempDir } from "./_fixtures.ts";
import { freePort, isoload, type Run, serve } from "./_process.ts";

interface Shape {
  name: string;
  main?: string;
  dropIns?: Record<string, string>;
  /** Expected: the pull works (with this warning, if any), or isoload refuses. */
  expect: { ok: true; warning?: RegExp } | { ok: false; error: RegExp };
}

const HELLO = "quay.io/isoload-test/hello";

function shapes(port: number): Shape[] {
  return [
    {
      name: "comments, search list, short-name mode and unrelated entries",
      main: [
        "# site comments",
        'unqualified-search-registries = ["registry.access.redhat.com", "docker.io"]',
        'short-name-mode = "enforcing"',
        "[[registry]]",
        'location = "docker.io"',
        "[[registry.mirror]]",
        'location = "mirror.gcr.io"',
        "",
      ].join("\n"),
      expect: { ok: true },
    },
    {
      // containers/image reads a v1 main file and v2 drop-ins together; only one file mixing both is refused.
      name: "v1 main file",
      main: "[registries.search]\nregistries = ['docker.io']\n[registries.insecure]\nregistries = []\n",
      expect: { ok: true },
    },
    {
      name: "a same-prefix entry of someone else's, insecure = false, its own mirror",
      main:
        `[[registry]]\nprefix = "${HELLO}"\nlocation = "${HELLO}"\ninsecure = false\n[[registry.mirror]]\nlocation = "corp.example.com/hello"\n`,
      expect: { ok: true },
    },
    {
      name: "an earlier drop-in with the same prefix",
      dropIns: {
        "50-corp.conf":
          `[[registry]]\nprefix = "${HELLO}"\nlocation = "${HELLO}"\n[[registry.mirror]]\nlocation = "corp.example.com/hello"\n`,
      },
      expect: { ok: true },
    },
    {
      name: "a later drop-in with the same prefix (it wins)",
      dropIns: {
        "99-zzz.conf":
          `[[registry]]\nprefix = "${HELLO}"\nlocation = "${HELLO}"\n[[registry.mirror]]\nlocation = "127.0.0.1:${port}/${HELLO}"\ninsecure = true\n`,
      },
      expect: { ok: true, warning: /99-zzz\.conf sets quay\.io\/isoload-test\/hello too and is read after .*: it wins/ },
    },
    {
      name: "someone else's entry for the mirror host itself, insecure = false",
      main: `[[registry]]\nlocation = "127.0.0.1:${port}"\ninsecure = false\n`,
      expect: { ok: true },
    },
    {
      name: "an entry with isoload's location under another prefix and a conflicting insecure",
      main: `[[registry]]\nprefix = "${HELLO}/sub"\nlocation = "${HELLO}"\ninsecure = true\n`,
      expect: { ok: false, error: /conflicting .?insecure|insecure/ },
    },
    {
      name: "a malformed drop-in",
      dropIns: { "50-broken.conf": "[[registry]\nlocation = \n" },
      expect: { ok: false, error: /50-broken\.conf/ },
    },
    {
      name: "an older isoload drop-in pointing elsewhere",
      dropIns: {
        "99-isoload.conf":
          `# Written by isoload. Do not edit.\n[[registry]]\nprefix = "${HELLO}"\nlocation = "${HELLO}"\n[[registry.mirror]]\nlocation = "10.0.0.9:5000/${HELLO}"\ninsecure = true\n`,
      },
      expect: { ok: true },
    },
  ];
}

/** skopeo with /etc/containers replaced by `etc` (a private mount namespace): the host's whole configuration, as it would read it. */
async function skopeoWithEtc(etc: string, args: string[]): Promise<Run> {
  const out = await new Deno.Command("unshare", {
    args: ["-m", "sh", "-c", 'mount --bind "$0" /etc/containers && exec skopeo "$@"', etc, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of Deno.readDir(dir)) if (e.isFile) out[e.name] = await Deno.readTextFile(join(dir, e.name));
  return out;
}

Deno.test("registries.conf: every host shape ends valid for skopeo (a real pull through the mirror) or is refused", async () => {
  const { fixture, tar } = await sampleFixture();
  const hello = fixture.images.find((i) => i.source === HELLO)!;
  await withTempDir("hostconf", async (dir) => {
    const port = freePort();
    const data = join(dir, "data");
    assert.equal((await isoload(["load", tar, "--data-dir", data, "--no-registries-conf", "--quiet"])).code, 0);
    const served = await serve(["--data-dir", data, "--listen", `127.0.0.1:${port}`, "--registry-command", "/usr/bin/docker-registry"]);
    try {
      for (const [i, shape] of shapes(port).entries()) {
        const etc = join(dir, `etc-${i}`);
        await Deno.mkdir(join(etc, "registries.conf.d"), { recursive: true });
        await Deno.copyFile("/etc/containers/policy.json", join(etc, "policy.json"));
        if (shape.main) await Deno.writeTextFile(join(etc, "registries.conf"), shape.main);
        for (const [name, text] of Object.entries(shape.dropIns ?? {})) {
          await Deno.writeTextFile(join(etc, "registries.conf.d", name), text);
        }
        const before = { ...await snapshot(etc), ...await snapshot(join(etc, "registries.conf.d")) };

        const target = join(etc, "registries.conf.d", "99-isoload.conf");
        const r = await isoload(["load", tar, "--data-dir", data, "--mirror", `127.0.0.1:${port}`, "--registries-conf", target]);
        if (!shape.expect.ok) {
          assert.equal(r.code, 4, `${shape.name}: ${r.stderr}`);
          assert.match(r.stderr, shape.expect.error, shape.name);
          assert.deepEqual(
            { ...await snapshot(etc), ...await snapshot(join(etc, "registries.conf.d")) },
            before,
            `${shape.name}: nothing written`,
          );
          continue;
        }
        assert.equal(r.code, 0, `${shape.name}: ${r.stderr}`);
        if (shape.expect.warning) assert.match(r.stderr, shape.expect.warning, shape.name);
        const out = join(dir, `pull-${i}`);
        const pull = await skopeoWithEtc(etc, ["copy", "--quiet", `docker://${HELLO}@${hello.digest}`, `dir:${out}`]);
        assert.equal(pull.code, 0, `${shape.name}: skopeo with the combined configuration: ${pull.stderr}`);
        assert.equal(await fileDigest(join(out, "manifest.json")), hello.digest, shape.name);
      }
    } finally {
      assert.equal(await served.stop(), 0);
    }
  });
});
