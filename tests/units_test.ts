/** `isoload units`: what it writes passes systemd-analyze verify, and the Ignition fragment is what a host needs. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { isoload, sampleFixture, withTempDir } from "./_helpers.ts";

/** An executable to stand for isoload on the host: verify checks that ExecStart's binary exists. */
async function shim(dir: string): Promise<string> {
  const path = join(dir, "isoload");
  await Deno.writeTextFile(path, "#!/bin/sh\nexit 0\n");
  await Deno.chmod(path, 0o755);
  return path;
}

/** The sample loaded into DIR/data and its image list exported as host0 would (DIR/images.json); returns the list's path. */
async function exportedList(dir: string): Promise<string> {
  const { tar } = await sampleFixture();
  const data = join(dir, "data");
  assert.equal((await isoload(["load", tar, "--data-dir", data, "--no-registries-conf", "--quiet"])).code, 0);
  const list = join(dir, "images.json");
  await Deno.writeTextFile(list, (await isoload(["inspect", "--json", data])).stdout);
  return list;
}

async function verify(files: string[]): Promise<void> {
  const out = await new Deno.Command("systemd-analyze", { args: ["verify", "--man=no", ...files], stdout: "piped", stderr: "piped" })
    .output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `systemd-analyze verify ${files.join(" ")}: ${err}`);
  assert.doesNotMatch(err, /isoload/, `no warnings about isoload's units: ${err}`);
}

Deno.test("units: host0 (registry and storage) and node units pass systemd-analyze verify, ordered before the pullers", async () => {
  await withTempDir("units", async (dir) => {
    const bin = await shim(dir);
    const list = await exportedList(dir);
    const cases: [string, string[], string[]][] = [
      ["h0", ["--role", "host0", "--mirror", "10.1.2.3:22625", "--tls", "--ip", "10.1.2.3"], [
        "isoload-load.service",
        "isoload-registry.service",
      ]],
      ["h0s", ["--role", "host0", "--mode", "storage"], ["isoload-load.service"]],
      ["n1", ["--role", "node", "--mirror", "10.1.2.3:22625", "--expect", list, "--before", "crio.service,kubelet.service"], [
        "isoload-registries-conf.service",
      ]],
    ];
    for (const [name, args, units] of cases) {
      const out = join(dir, name);
      const r = await isoload(["units", ...args, "--binary", bin, "--out", out]);
      assert.equal(r.code, 0, r.stderr);
      await verify(units.map((u) => join(out, u)));
      for (const u of units) {
        const text = await Deno.readTextFile(join(out, u));
        assert.match(text, /^Before=crio\.service kubelet\.service/m, `${name}/${u} runs before crio and kubelet`);
        assert.match(text, new RegExp(`^ExecStart=${bin} `, "m"));
      }
      const again = await isoload(["units", ...args, "--binary", bin, "--out", join(dir, `${name}-again`)]);
      assert.equal(again.code, 0);
      for (const u of units) {
        assert.equal(
          await Deno.readTextFile(join(dir, `${name}-again`, u)),
          await Deno.readTextFile(join(out, u)),
          "same options, same bytes",
        );
      }
    }
    const registry = await Deno.readTextFile(join(dir, "h0", "isoload-registry.service"));
    assert.match(registry, /^Type=notify$/m);
    assert.match(registry, /^Restart=on-failure$/m);
    assert.match(registry, /^Requires=isoload-load\.service$/m);
    assert.match(registry, / serve --data-dir \/var\/lib\/isoload --listen 0\.0\.0\.0:22625 --tls --ip 10\.1\.2\.3$/m);
    assert.match(
      await Deno.readTextFile(join(dir, "h0s", "isoload-load.service")),
      / load \S+ --data-dir \/var\/lib\/isoload --mode storage$/m,
    );
    const node = await Deno.readTextFile(join(dir, "n1", "isoload-registries-conf.service"));
    assert.match(node, /^ExecStart=\S+ registries-conf --mirror 10\.1\.2\.3:22625 --expect \/etc\/isoload\/images\.json/m);
    assert.match(node, /^ExecStart=\S+ wait --mirror 10\.1\.2\.3:22625 --expect \/etc\/isoload\/images\.json .*--timeout 1h$/m);
    assert.equal(await Deno.readTextFile(join(dir, "n1", "images.json")), await Deno.readTextFile(list), "the list ships beside the unit");
  });
});

Deno.test("units --format ignition: one Ignition 3 config with the units enabled and the node's image list", async () => {
  await withTempDir("ign", async (dir) => {
    const list = await exportedList(dir);
    const node = await isoload([
      "units",
      "--role",
      "node",
      "--mirror",
      "10.1.2.3:22625",
      "--expect",
      list,
      "--out",
      join(dir, "n"),
      "--format",
      "ignition",
    ]);
    assert.equal(node.code, 0, node.stderr);
    const ign = JSON.parse(await Deno.readTextFile(join(dir, "n", "isoload.ign")));
    assert.match(ign.ignition.version, /^3\./);
    assert.deepEqual(ign.systemd.units.map((u: { name: string; enabled: boolean }) => [u.name, u.enabled]), [[
      "isoload-registries-conf.service",
      true,
    ]]);
    assert.deepEqual(ign.storage.files.map((f: { path: string }) => f.path), ["/etc/isoload/images.json"]);
    const shipped = decodeURIComponent(ign.storage.files[0].contents.source.replace(/^data:,/, ""));
    assert.equal(shipped, await Deno.readTextFile(list));

    const host0 = await isoload([
      "units",
      "--role",
      "host0",
      "--mirror",
      "10.1.2.3:22625",
      "--out",
      join(dir, "h"),
      "--format",
      "ignition",
    ]);
    assert.equal(host0.code, 0, host0.stderr);
    const h = JSON.parse(await Deno.readTextFile(join(dir, "h", "isoload.ign")));
    assert.deepEqual(h.systemd.units.map((u: { name: string }) => u.name), ["isoload-load.service", "isoload-registry.service"]);
    assert.match(h.systemd.units[1].contents, /^Type=notify$/m);
  });
});

Deno.test("units: wrong combinations are usage errors", async () => {
  await withTempDir("units-usage", async (dir) => {
    for (
      const args of [
        ["--role", "node", "--mode", "storage", "--mirror", "h:1"],
        ["--role", "bootstrap", "--mirror", "h:1"],
        ["--role", "host0"],
        ["--role", "host0", "--mirror", "h:1", "--format", "yaml"],
        ["--role", "host0", "--mirror", "h:1", "--before", "not a unit"],
      ]
    ) {
      const r = await isoload(["units", ...args, "--out", dir]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    }
  });
});
