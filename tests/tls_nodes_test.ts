/**
 * A multi-node install in miniature: host0 and a node in two network
 * namespaces joined by a veth pair. host0 loads and serves with TLS; the node
 * gets only the exported image list (with the CA), writes its registries.conf,
 * waits for the registry and pulls every image by its source reference.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileDigest, pulledDigest, sampleFixture, withTempDir } from "./_fixtures.ts";
import { freePort, isoload, serve, tool } from "./_process.ts";
import { makeNetPair } from "./_netns.ts";

Deno.test("TLS across namespaces: the node, given only the image list and CA, pulls every image from host0", async () => {
  const { fixture, tar } = await sampleFixture();
  const net = await makeNetPair();
  try {
    await withTempDir("nodes", async (dir) => {
      const port = freePort();
      const mirror = `${net.host0Ip}:${port}`;
      const data = join(dir, "host0", "data");
      const h0 = { netns: net.host0 };
      const load = await isoload(
        [
          "load",
          tar,
          "--data-dir",
          data,
          "--mirror",
          mirror,
          "--tls",
          "--certs-dir",
          join(dir, "host0", "certs"),
          "--registries-conf",
          join(
            dir,
            "host0",
            "registries.conf",
          ),
        ],
        h0,
      );
      assert.equal(load.code, 0, load.stderr);
      assert.doesNotMatch(await Deno.readTextFile(join(dir, "host0", "registries.conf")), /insecure/, "TLS: no insecure = true");
      const served = await serve(
        ["--data-dir", data, "--listen", mirror, "--registry-command", "/usr/bin/docker-registry", "--tls", "--ip", net.host0Ip],
        h0,
      );
      const list = join(dir, "node", "images.json");
      const nodeConf = join(dir, "node", "registries.conf.d", "99-isoload.conf");
      const certs = join(dir, "node", "certs");
      const n1 = { netns: net.node };
      try {
        // The cluster's side: the mirror sets for the same DIR name every source repository.
        // (ITMS: the repositories with tags; a digest-only one has no tag to mirror.)
        for (const kind of ["idms", "itms"]) {
          const mc = await isoload(["mirror-config", "--data-dir", data, "--mirror", mirror, "--kind", kind]);
          assert.equal(mc.code, 0, mc.stderr);
          for (const img of fixture.images.filter((i) => kind === "idms" || !i.name.includes("@"))) {
            assert.ok(mc.stdout.includes(`source: ${img.source}\n`), `${kind} names ${img.source}`);
          }
        }
        const trust = await isoload(["mirror-config", "--data-dir", data, "--mirror", mirror, "--kind", "trusted-ca"]);
        assert.equal(trust.code, 0, trust.stderr);
        assert.match(
          trust.stdout,
          new RegExp(`namespace: openshift-config\\n[\\s\\S]*${net.host0Ip.replaceAll(".", "\\.")}\\.\\.${port}: \\|`),
        );
        assert.match(trust.stdout, /kind: Image\n[\s\S]*additionalTrustedCA:\n\s+name: isoload-registry-ca/);
        const inspect = await isoload(["inspect", "--json", data]);
        assert.equal(inspect.code, 0, inspect.stderr);
        await Deno.mkdir(join(dir, "node"), { recursive: true });
        await Deno.writeTextFile(list, inspect.stdout);
        assert.match(JSON.parse(inspect.stdout).ca, /BEGIN CERTIFICATE/, "the exported list carries the CA");

        const conf = await isoload(["registries-conf", "--mirror", mirror, "--expect", list, "--certs-dir", certs, "--out", nodeConf], n1);
        assert.equal(conf.code, 0, conf.stderr);
        const confText = await Deno.readTextFile(nodeConf);
        assert.doesNotMatch(confText, /insecure/);
        assert.match(await Deno.readTextFile(join(certs, mirror, "ca.crt")), /BEGIN CERTIFICATE/);
        const again = await isoload(["registries-conf", "--mirror", mirror, "--expect", list, "--certs-dir", certs, "--out", nodeConf], n1);
        assert.equal(again.code, 0);
        assert.equal(await Deno.readTextFile(nodeConf), confText, "same input, same bytes");

        const wait = await isoload(["wait", "--mirror", mirror, "--expect", list, "--certs-dir", certs, "--timeout", "30s"], n1);
        assert.equal(wait.code, 0, wait.stderr);

        const pull = async (ref: string, name: string) => {
          const out = join(dir, "node", "pulls", name);
          await Deno.mkdir(join(dir, "node", "pulls"), { recursive: true });
          await tool("ip", [
            "netns",
            "exec",
            net.node,
            "skopeo",
            "--registries-conf",
            nodeConf,
            "copy",
            "--quiet",
            "--src-cert-dir",
            join(certs, mirror),
            `docker://${ref}`,
            `dir:${out}`,
          ]);
          return await fileDigest(join(out, "manifest.json"));
        };
        for (const [i, img] of fixture.images.entries()) {
          const expect = pulledDigest(img);
          assert.equal(await pull(`${img.source}@${img.digest}`, `d${i}`), expect, img.name);
          if (!img.name.includes("@")) assert.equal(await pull(img.name, `t${i}`), expect, `${img.name} by tag`);
          for (const [j, c] of (img.children ?? []).entries()) {
            assert.equal(await pull(`${img.source}@${c.digest}`, `c${i}-${j}`), c.digest);
          }
        }
      } finally {
        assert.equal(await served.stop(), 0);
      }
      const down = await isoload(["wait", "--mirror", mirror, "--expect", list, "--certs-dir", certs, "--timeout", "2s"], n1);
      assert.equal(down.code, 6, down.stderr);
      assert.match(
        down.stderr,
        /Cannot wait for https:\/\/[0-9.:]+: not ready after .*none of the 6 manifests is confirmed \(first: quay\.io\//,
      );
    });
  } finally {
    await net.remove();
  }
});
