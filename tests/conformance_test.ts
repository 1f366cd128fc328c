/**
 * The OCI distribution-spec conformance suite (shared kit's `oci-conformance`,
 * read-only mode, referrers on) against isoload's built-in registry, served
 * from DIR, in place from the archive and while loading (`load --serve`):
 * every enabled test must pass. The
 * fixture carries tags, manifests, blobs and an image with two referrers (a
 * cosign-style signature and an SBOM). Skips with a notice without the kit.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildSampleLayout, type Fixture, tarDirectory } from "../tools/payload.ts";
import { withTempDir } from "./_fixtures.ts";
import { freePort, isoload, serve, spawnIsoload } from "./_process.ts";
import { waitForV2 } from "../tools/registry_process.ts";
import { upstreamTool } from "./_upstream.ts";

const suite = upstreamTool("oci-conformance");

/** One test case of the suite's junit.xml. */
interface Case {
  name: string;
  status: string;
}

/** The test cases of a junit.xml the suite wrote (each `<testcase … name=… status=…>`). */
function junitCases(xml: string): Case[] {
  const attr = (tag: string, name: string) => new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1] ?? "";
  return [...xml.matchAll(/<testcase\b[^>]*>/g)].map((m) => ({ name: attr(m[0], "name"), status: attr(m[0], "status") }));
}

/** Runs the suite read-only against 127.0.0.1:port for the fixture's tagged image's repository. */
async function runSuite(port: number, fixture: Fixture, out: string): Promise<{ cases: Case[]; summary: string }> {
  const hello = fixture.images[0];
  const manifest = JSON.parse(await Deno.readTextFile(join(fixture.dir, "blobs", "sha256", hello.digest.slice(7))));
  const refs = fixture.referrers!;
  const tags = [hello.name, ...refs.map((r) => r.name)].filter((n) => !n.includes("@")).map((n) => n.slice(n.lastIndexOf(":") + 1));
  const blobs = [manifest.config.digest, ...manifest.layers.map((l: { digest: string }) => l.digest), ...refs.flatMap((r) => r.blobs)];
  const repo = hello.source; // quay.io/… is its own mirror repository name
  const env = {
    OCI_REGISTRY: `127.0.0.1:${port}`,
    OCI_TLS: "disabled",
    OCI_REPO1: repo,
    OCI_REPO2: repo,
    OCI_API_PUSH: "false",
    OCI_API_BLOBS_DELETE: "false",
    OCI_API_MANIFESTS_DELETE: "false",
    OCI_API_TAGS_DELETE: "false",
    OCI_API_REFERRER: "true",
    // The suite's read-only mode misreports this header as missing when it is required (see the kit's README).
    OCI_API_MANIFESTS_DIGEST_HEADER: "false",
    OCI_RO_DATA_TAGS: tags.join(" "),
    OCI_RO_DATA_MANIFESTS: [hello.digest, ...refs.map((r) => r.desc.digest)].join(" "),
    OCI_RO_DATA_BLOBS: [...new Set(blobs)].join(" "),
    OCI_RO_DATA_REFERRERS: hello.digest,
    OCI_RESULTS_DIR: out,
    HOME: out,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  };
  const run = await new Deno.Command(suite!, { env, clearEnv: true, cwd: out, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
  const summary = /OCI Conformance Result:[\s\S]*?Total\.*:\s*\d+/.exec(text)?.[0] ?? text.slice(-2000);
  const cases = junitCases(await Deno.readTextFile(join(out, "junit.xml")));
  return { cases, summary };
}

/** Asserts every enabled case passed, the referrers ones included; returns the counts. */
function assertAllPassed(mode: string, cases: Case[], summary: string): void {
  const failed = cases.filter((c) => c.status === "failure" || c.status === "error");
  assert.deepEqual(failed.map((c) => c.name), [], `${mode}: the conformance suite failed these:\n${summary}`);
  const passed = cases.filter((c) => c.status === "passed");
  for (
    const needed of [
      "ping",
      "read-only/tag-list",
      "read-only/pull/manifest-by-tag",
      "read-only/pull/blob-get",
      "read-only/referrers",
      "empty/referrers",
    ]
  ) {
    assert.ok(passed.some((c) => c.name.endsWith(`/${needed}`)), `${mode}: ${needed} passed (${summary})`);
  }
  const count = (what: string) => new RegExp(`${what}\\.*:\\s*(\\d+)`).exec(summary)?.[1] ?? "?";
  const skipped = cases.length - passed.length - failed.length;
  console.log(
    `conformance ${mode}: ${passed.length} cases passed, ${failed.length} failed, ${skipped} skipped (suite summary: Pass ${
      count("Pass")
    }, FAIL ${count("FAIL")}, Error ${count("Error")}, Disabled ${count("Disabled")})`,
  );
}

Deno.test({
  name: "built-in registry: the OCI conformance suite (read-only, referrers) passes whole, from DIR, in place and while loading",
  ignore: suite === undefined,
  async fn() {
    await withTempDir("conformance", async (dir) => {
      const fixture = await buildSampleLayout(join(dir, "layout"), dir, { referrers: true });
      const tar = join(dir, "sample.tar");
      await tarDirectory(fixture.dir, tar);
      const data = join(dir, "data");
      const loaded = await isoload(["load", tar, "--data-dir", data, "--no-registries-conf", "--quiet"]);
      assert.equal(loaded.code, 0, loaded.stderr);
      // From DIR, in place, and while a load copies the archive into a fresh DIR (load --serve).
      const modes: [string, (listen: string) => Promise<() => Promise<number>>][] = [
        ["from DIR", async (listen) => (await serve(["--data-dir", data, "--listen", listen])).stop],
        ["in place", async (listen) => (await serve(["--source", tar, "--listen", listen])).stop],
        ["load --serve", async (listen) => {
          const run = spawnIsoload(["load", tar, "--data-dir", join(dir, "data2"), "--no-registries-conf", "--serve", "--listen", listen]);
          await waitForV2(listen, 20_000);
          return async () => {
            run.child.kill("SIGTERM");
            return (await run.output()).code;
          };
        }],
      ];
      for (const [mode, start] of modes) {
        const port = freePort();
        const stop = await start(`127.0.0.1:${port}`);
        try {
          // The referrers index lists both artifacts of the tagged image, as a client sees it over HTTP.
          const hello = fixture.images[0];
          const res = await fetch(`http://127.0.0.1:${port}/v2/${hello.source}/referrers/${hello.digest}`);
          assert.equal(res.headers.get("Content-Type"), "application/vnd.oci.image.index.v1+json");
          const listed = (await res.json()).manifests.map((d: { digest: string; artifactType: string }) => `${d.digest} ${d.artifactType}`);
          assert.deepEqual(listed.sort(), fixture.referrers!.map((r) => `${r.desc.digest} ${r.desc.artifactType}`).sort(), mode);
          const out = join(dir, `results-${port}`);
          await Deno.mkdir(out);
          const { cases, summary } = await runSuite(port, fixture, out);
          assertAllPassed(mode, cases, summary);
        } finally {
          const code = await stop();
          // load --serve exits 130 when SIGTERM comes before its background load has finished.
          assert.ok(code === 0 || (mode === "load --serve" && code === 130), `${mode} exits ${code} on SIGTERM`);
        }
      }
    });
  },
});
