/** `isoload tls`: one CA and one server certificate for the whole cluster, made before the ISO is built. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { withTempDir } from "./_fixtures.ts";
import { isoload } from "./_process.ts";
import { describeCertificate } from "../src/server/tls.ts";

Deno.test("tls --out: CA and server certificate covering localhost, loopback, the rendezvous address and api-int; keys 0600; re-run keeps them", async () => {
  await withTempDir("tls", async (dir) => {
    const out = join(dir, "tls");
    const args = ["tls", "--out", out, "--rendezvous", "10.1.2.3", "--cluster", "ocp", "--base-domain", "example.com"];
    const r = await isoload([...args, "--hostname", "registry.example.com", "--ip", "fd00::5"]);
    assert.equal(r.code, 0, r.stderr);
    for (const [f, mode] of [["ca.crt", 0o644], ["ca.key", 0o600], ["server.crt", 0o644], ["server.key", 0o600]] as const) {
      assert.equal((await Deno.stat(join(out, f))).mode! & 0o777, mode, f);
    }
    const cert = await describeCertificate(await Deno.readTextFile(join(out, "server.crt")));
    assert.deepEqual(cert.dns.sort(), ["api-int.ocp.example.com", "localhost", "registry.example.com"]);
    assert.deepEqual(cert.ip.sort(), ["10.1.2.3", "127.0.0.1", "::1", "fd00::5"]);
    assert.equal(cert.issuer, (await describeCertificate(await Deno.readTextFile(join(out, "ca.crt")))).subject);
    const before = await Promise.all(["ca.crt", "ca.key", "server.crt"].map((f) => Deno.readTextFile(join(out, f))));
    assert.equal((await isoload(args)).code, 0);
    const after = await Promise.all(["ca.crt", "ca.key", "server.crt"].map((f) => Deno.readTextFile(join(out, f))));
    assert.deepEqual(after, before, "a re-run with names already covered changes nothing");
    assert.equal((await isoload([...args, "--cluster-domain", "x"])).code, 2, "--cluster-domain with --cluster");
    const more = await isoload(["tls", "--out", out, "--rendezvous", "host0.ocp.example.com"]);
    assert.equal(more.code, 0, more.stderr);
    assert.equal(await Deno.readTextFile(join(out, "ca.crt")), before[0], "the same CA");
    assert.ok(
      (await describeCertificate(await Deno.readTextFile(join(out, "server.crt")))).dns.includes("host0.ocp.example.com"),
      "re-issued for the new name",
    );
  });
});

Deno.test("tls and serve --tls-dir: bad names are usage errors, a TLS directory without its files is bad input", async () => {
  await withTempDir("tls-bad", async (dir) => {
    for (const args of [["--rendezvous", "10.1.2.3"], ["--out", dir, "--cluster", "ocp"], ["--out", dir, "--ip", "not-an-ip"]]) {
      const r = await isoload(["tls", ...args]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    }
    await Deno.mkdir(join(dir, "empty"));
    const r = await isoload(["serve", "--source", dir, "--tls-dir", join(dir, "empty"), "--listen", "127.0.0.1:1"]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /Cannot use the TLS directory \S+empty: \S+ca\.crt is missing \(isoload tls --out \S+ makes it\)/);
  });
});
