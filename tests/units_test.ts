/** `isoload units`: what it writes passes systemd-analyze verify and ignition-validate, and ships what every host needs. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { withTempDir } from "./_fixtures.ts";
import { isoload, tool } from "./_process.ts";
import { exportedList, shim, UNIT_CASES } from "./_units.ts";
import { upstream } from "./_upstream.ts";

async function verify(files: string[]): Promise<void> {
  const out = await new Deno.Command("systemd-analyze", { args: ["verify", "--man=no", ...files], stdout: "piped", stderr: "piped" })
    .output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `systemd-analyze verify ${files.join(" ")}: ${err}`);
  assert.doesNotMatch(err, /isoload/, `no warnings about isoload's units: ${err}`);
}

Deno.test("units: every role and mode passes systemd-analyze verify, ordered before the pullers, after no network target", async () => {
  await withTempDir("units", async (dir) => {
    const bin = await shim(dir);
    const list = await exportedList(dir);
    const tls = join(dir, "tls");
    assert.equal((await isoload(["tls", "--out", tls, "--rendezvous", "10.1.2.3"])).code, 0);
    for (const [name, args, units] of UNIT_CASES) {
      const common = ["--mirror", "10.1.2.3:22625", "--expect", list, ...(args.includes("--insecure-http") ? [] : ["--tls-dir", tls])];
      const out = join(dir, name);
      const r = await isoload(["units", ...args, ...common, "--binary", bin, "--out", out]);
      assert.equal(r.code, 0, r.stderr);
      await verify(units.map((u) => join(out, u)));
      for (const u of units) {
        const text = await Deno.readTextFile(join(out, u));
        assert.match(text, /^Before=crio\.service kubelet\.service/m, `${name}/${u} runs before crio and kubelet`);
        assert.match(text, new RegExp(`^ExecStart=${bin} `, "m"));
        assert.doesNotMatch(text, /network-online/, `${name}/${u}: no network-online ordering (the agent console would make a cycle)`);
      }
      const again = await isoload(["units", ...args, ...common, "--binary", bin, "--out", join(dir, `${name}-again`)]);
      assert.equal(again.code, 0);
      for (const u of units) {
        assert.equal(
          await Deno.readTextFile(join(dir, `${name}-again`, u)),
          await Deno.readTextFile(join(out, u)),
          "same options, same bytes",
        );
      }
      assert.equal(
        await Deno.readTextFile(join(out, "root", "etc", "isoload", "images.json")),
        await Deno.readTextFile(list),
        "the list ships with the units",
      );
    }
    const registry = await Deno.readTextFile(join(dir, "all", "isoload-registry.service"));
    assert.match(registry, /^Type=notify$/m);
    assert.match(registry, /^Restart=on-failure$/m);
    assert.match(registry, /^RequiresMountsFor=\/run\/media\/iso\/images$/m);
    assert.match(
      registry,
      / serve --source \/run\/media\/iso\/images\/mirror_\*\.tar --listen \[::\]:22625 --tls-dir \/etc\/isoload\/tls$/m,
    );
    assert.equal(await Deno.readTextFile(join(dir, "h0", "isoload-registry.service")), registry, "host0 serves as every host does");
    const copy = await Deno.readTextFile(join(dir, "copy", "isoload-registry.service"));
    assert.match(copy, /^Requires=isoload-load\.service$/m);
    assert.match(copy, / serve --data-dir \/var\/lib\/isoload --listen \[::\]:22625 --tls-dir \/etc\/isoload\/tls$/m);
    assert.match(
      await Deno.readTextFile(join(dir, "copy", "isoload-load.service")),
      / load \/run\/media\/iso\/images\/mirror_\*\.tar --data-dir \/var\/lib\/isoload --no-registries-conf$/m,
    );
    const storage = await Deno.readTextFile(join(dir, "storage", "isoload-load.service"));
    assert.match(storage, / load \S+ --data-dir \/var\/lib\/isoload --mode storage$/m);
    assert.match(storage, /^After=local-fs\.target isoload-registry\.service$/m);
    const conf = await Deno.readTextFile(join(dir, "n1", "isoload-registries-conf.service"));
    assert.match(
      conf,
      /^ExecStart=\S+ registries-conf --mirror localhost:22625 --mirror 10\.1\.2\.3:22625 --expect \/etc\/isoload\/images\.json --certs-dir \/etc\/containers\/certs\.d --tls-dir \/etc\/isoload\/tls$/m,
    );
    assert.doesNotMatch(await Deno.readTextFile(join(dir, "http", "isoload-registry.service")), /tls/);
    // The server key never lies loose among the files: it travels in the Ignition config only.
    const shipped = (await tool("find", [join(dir, "all"), "-type", "f"])).stdout;
    assert.doesNotMatch(shipped, /server\.key|ca\.key/);
    assert.match(
      await Deno.readTextFile(join(dir, "all", "root", "etc", "containers", "certs.d", "localhost:22625", "ca.crt")),
      /BEGIN CERTIFICATE/,
    );
    assert.match(
      await Deno.readTextFile(join(dir, "all", "root", "etc", "containers", "certs.d", "10.1.2.3:22625", "ca.crt")),
      /BEGIN CERTIFICATE/,
    );
  });
});

Deno.test("units --format ignition: one Ignition 3 config per role and mode, the key only there with mode 0600; ignition-validate accepts each", async () => {
  await withTempDir("ign", async (dir) => {
    const list = await exportedList(dir);
    const tls = join(dir, "tls");
    assert.equal((await isoload(["tls", "--out", tls, "--rendezvous", "10.1.2.3", "--cluster-domain", "ocp.example.com"])).code, 0);
    const validate = upstream("bin/ignition-validate", "ignition-validate of units --format ignition");
    for (const [name, args, units] of UNIT_CASES) {
      const common = ["--mirror", "10.1.2.3:22625", "--expect", list, ...(args.includes("--insecure-http") ? [] : ["--tls-dir", tls])];
      const r = await isoload(["units", ...args, ...common, "--out", join(dir, name), "--format", "ignition"]);
      assert.equal(r.code, 0, r.stderr);
      const path = join(dir, name, "isoload.ign");
      const ign = JSON.parse(await Deno.readTextFile(path));
      assert.match(ign.ignition.version, /^3\./);
      assert.deepEqual(ign.systemd.units.map((u: { name: string; enabled: boolean }) => [u.name, u.enabled]), units.map((u) => [u, true]));
      const files = new Map<string, { mode: number; contents: { source: string } }>(
        ign.storage.files.map((f: { path: string; mode: number; contents: { source: string } }) => [f.path, f]),
      );
      const text = (p: string) => decodeURIComponent(files.get(p)!.contents.source.replace(/^data:,/, ""));
      assert.equal(text("/etc/isoload/images.json"), await Deno.readTextFile(list));
      if (name === "http") {
        assert.ok(![...files.keys()].some((p) => p.includes("tls") || p.includes("certs.d")), "plain HTTP ships no TLS material");
      } else {
        assert.equal(files.get("/etc/isoload/tls/server.key")!.mode, 0o600, "the key lands with mode 0600");
        assert.equal(text("/etc/isoload/tls/server.key"), await Deno.readTextFile(join(tls, "server.key")));
        assert.equal(text("/etc/isoload/tls/ca.crt"), await Deno.readTextFile(join(tls, "ca.crt")));
        for (const m of ["localhost:22625", "10.1.2.3:22625"]) {
          assert.ok(text(`/etc/containers/certs.d/${m}/ca.crt`).endsWith(await Deno.readTextFile(join(tls, "ca.crt"))));
        }
        assert.ok(
          !(await Deno.readTextFile(path)).includes(encodeURIComponent((await Deno.readTextFile(join(tls, "ca.key"))).split("\n")[1])),
        );
      }
      if (validate) {
        const v = await new Deno.Command(validate, { args: [path], stdout: "piped", stderr: "piped" }).output();
        const said = new TextDecoder().decode(v.stdout) + new TextDecoder().decode(v.stderr);
        assert.equal(v.code, 0, `ignition-validate ${name}: ${said}`);
        assert.equal(said.trim(), "", `ignition-validate ${name} says nothing: ${said}`);
      }
    }
  });
});

Deno.test("units without --tls-dir makes the cluster's TLS material under --out and says so", async () => {
  await withTempDir("units-tls", async (dir) => {
    const r = await isoload([
      "units",
      "--mirror",
      "10.1.2.3:22625",
      "--out",
      join(dir, "u"),
      "--cluster",
      "ocp",
      "--base-domain",
      "example.com",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /No --tls-dir given: made the cluster's CA and server certificate in \S+\/u\/tls/);
    assert.match(r.stderr, /api-int\.ocp\.example\.com, localhost, 10\.1\.2\.3, 127\.0\.0\.1, ::1/);
    assert.equal((await Deno.stat(join(dir, "u", "tls", "ca.key"))).mode! & 0o777, 0o600);
    assert.match(await Deno.readTextFile(join(dir, "u", "root", "etc", "isoload", "tls", "ca.crt")), /BEGIN CERTIFICATE/);
  });
});

Deno.test("units: wrong combinations are usage errors", async () => {
  await withTempDir("units-usage", async (dir) => {
    for (
      const args of [
        ["--role", "bootstrap", "--mirror", "h:1"],
        ["--role", "host0"],
        ["--role", "host0", "--mirror", "h:1", "--format", "yaml"],
        ["--role", "host0", "--mirror", "h:1", "--before", "not a unit"],
        ["--mirror", "h:1", "--insecure-http", "--tls-dir", dir],
        ["--mirror", "h:1", "--tls-dir", dir, "--cluster", "a", "--base-domain", "b.c"],
        ["--mirror", "h:1", "--cluster", "a"],
        ["--mirror", "h:1", "--registry-command", "/usr/bin/docker-registry"],
        ["--mirror", "h:1", "--source", "relative/*.tar"],
      ]
    ) {
      const r = await isoload(["units", ...args, "--out", dir]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    }
  });
});
