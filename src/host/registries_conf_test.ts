import assert from "node:assert/strict";
import { ConfigError } from "../util/errors.ts";
import {
  combineConfs,
  entryFor,
  findEntry,
  mergeIntoForeign,
  mirrorTargets,
  parseRegistriesConf,
  renderEntries,
  renderOwnedFile,
} from "./registries_conf.ts";
import type { LoadedImage } from "../image/loaded_image.ts";

const img = (source: string, tags: string[] = []): LoadedImage => ({
  source,
  repository: source,
  digest: `sha256:${"a".repeat(64)}`,
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  tags,
});

Deno.test("mirrorTargets() gives one target per source repository, tagged ones pull-from-mirror all", () => {
  const t = mirrorTargets([img("quay.io/a/b", ["v1"]), img("quay.io/a/b"), img("quay.io/c/d")], "127.0.0.1:22625");
  assert.deepEqual(t.map((x) => [x.source, x.mirror, x.tagged]), [
    ["quay.io/a/b", "127.0.0.1:22625/quay.io/a/b", true],
    ["quay.io/c/d", "127.0.0.1:22625/quay.io/c/d", false],
  ]);
  assert.equal(entryFor(t[0], undefined, true).mirrors[0].pullFromMirror, "all");
  assert.equal(entryFor(t[1], undefined, true).mirrors[0].pullFromMirror, "digest-only");
});

Deno.test("entryFor() puts isoload's mirror first and carries the host's mirrors and flags after it", () => {
  const host = parseRegistriesConf(
    `[[registry]]\nprefix = "quay.io"\nlocation = "quay.io"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "corp.example.com/quay"\n`,
    "main",
  );
  const target = { source: "quay.io/ns/repo", mirror: "h:1/quay.io/ns/repo", tagged: false };
  const e = entryFor(target, findEntry(host.registries, target.source), true);
  assert.deepEqual(e.mirrors.map((m) => m.location), ["h:1/quay.io/ns/repo", "corp.example.com/quay/ns/repo"]);
  assert.equal(e.mirrors[1].pullFromMirror, "digest-only", "mirror-by-digest-only becomes per-mirror digest-only");
  assert.equal(e.location, "quay.io/ns/repo");
  // The rendered entry is valid by containers/image's rules.
  parseRegistriesConf(renderEntries([e]), "rendered");
});

Deno.test("renderOwnedFile() is byte-stable for the same input", () => {
  const t = mirrorTargets([img("quay.io/a/b", ["v1"])], "h:1");
  const a = renderOwnedFile(t.map((x) => entryFor(x, undefined, true)), "note");
  const b = renderOwnedFile(t.map((x) => entryFor(x, undefined, true)), "note");
  assert.equal(a, b);
  assert.match(a, /^# Written by isoload/);
});

Deno.test("parseRegistriesConf() refuses what containers/image refuses", () => {
  const bad = [
    ["[[registry]]\nprefix = quay.io\n", /not valid TOML/],
    ['[[registry]]\nlocation = "https://quay.io"\n', /URI scheme/],
    ['[[registry]]\nlocation = "quay.io"\n[[registry.mirror]]\nlocation = "m"\npull-from-mirror = "sometimes"\n', /pull-from-mirror/],
    [
      '[[registry]]\nlocation = "quay.io"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m"\npull-from-mirror = "tag-only"\n',
      /cannot both/,
    ],
    ['[registries.search]\nregistries = ["docker.io"]\n[[registry]]\nlocation = "quay.io"\n', /mixing/],
  ] as const;
  for (const [text, re] of bad) {
    assert.throws(() => parseRegistriesConf(text, "f"), (e) => e instanceof ConfigError && re.test(e.message), text);
  }
  assert.equal(parseRegistriesConf('[registries.search]\nregistries = ["docker.io"]\n', "v1").v1, true);
});

Deno.test("combineConfs() lets a drop-in replace a same-prefix entry and refuses conflicting insecure", () => {
  const main = parseRegistriesConf('[[registry]]\nprefix = "quay.io/a"\nlocation = "quay.io/a"\nblocked = true\n', "main");
  const drop = parseRegistriesConf('[[registry]]\nprefix = "quay.io/a"\nlocation = "quay.io/a"\n', "drop");
  assert.equal(combineConfs([{ where: "m", conf: main }, { where: "d", conf: drop }])[0].blocked, undefined);
  const a = parseRegistriesConf('[[registry]]\nprefix = "x.io/a"\nlocation = "x.io"\ninsecure = true\n', "a");
  const b = parseRegistriesConf('[[registry]]\nprefix = "x.io/b"\nlocation = "x.io"\n', "b");
  assert.throws(() => combineConfs([{ where: "a", conf: a }, { where: "b", conf: b }]), /conflicting 'insecure'/);
});

Deno.test("mergeIntoForeign() keeps comments and other entries, replaces its own block and same-prefix entries", () => {
  const original = [
    "# site config, keep me",
    'unqualified-search-registries = ["registry.access.redhat.com"]',
    "",
    "[[registry]]",
    'prefix = "quay.io/ns/repo"',
    'location = "quay.io/ns/repo"',
    "[[registry.mirror]]",
    'location = "corp.example.com/ns/repo"',
    "",
    "[[registry]] # another",
    'location = "docker.io"',
    "",
  ].join("\n");
  const host = parseRegistriesConf(original, "main");
  const target = { source: "quay.io/ns/repo", mirror: "h:1/quay.io/ns/repo", tagged: true };
  const entries = [entryFor(target, findEntry(host.registries, target.source), true)];
  const merged = mergeIntoForeign(original, entries, "main");
  assert.match(merged, /# site config, keep me/);
  assert.match(merged, /\[\[registry\]\] # another\nlocation = "docker.io"/);
  const parsed = parseRegistriesConf(merged, "merged");
  const repo = parsed.registries.filter((r) => r.prefix === "quay.io/ns/repo");
  assert.equal(repo.length, 1, "one entry for the prefix");
  assert.deepEqual(repo[0].mirrors.map((m) => m.location), ["h:1/quay.io/ns/repo", "corp.example.com/ns/repo"]);
  // Merging again with the same input gives the same bytes.
  const again = mergeIntoForeign(
    merged,
    [entryFor(target, findEntry(parseRegistriesConf(merged, "m").registries, target.source), true)],
    "main",
  );
  assert.equal(again, merged);
});
