/**
 * `isoload machine-configs`: what it writes is accepted by the consumers that
 * read it on a real cluster (ignition-validate, the openshift/api CRDs, the
 * MCO's registries.conf rendering, skopeo 1.20, systemd-analyze), and the
 * boot script it ships installs the binary for real.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { fileDigest, sampleFixture, withTempDir } from "./_fixtures.ts";
import { freePort, isoload, ROOT, serve, tool } from "./_process.ts";
import { crdSchema, validate } from "./_openapi.ts";

const CLUSTER = ["--cluster", "ocp", "--base-domain", "example.com"];
const API_INT = "api-int.ocp.example.com";

/** The shared kit (`../shared/upstream`, or $ISOLOAD_SHARED/upstream), when present. */
function upstream(): string | undefined {
  for (const d of [Deno.env.get("ISOLOAD_SHARED"), join(ROOT, "..", "shared")]) {
    if (d && Deno.statSync(join(d, "upstream")).isDirectory) return join(d, "upstream");
  }
  return undefined;
}
function upstreamOrSkip(what: string): string | undefined {
  try {
    const u = upstream();
    if (u) return u;
  } catch { /* absent */ }
  console.warn(`NOTICE: ../shared/upstream is absent: skipping ${what}`);
  return undefined;
}

interface Generated {
  out: string;
  /** The cluster's TLS directory (isoload tls --out). */
  tls: string;
  /** A data directory the sample was loaded into. */
  data: string;
  /** The file given as --binary, and its sha256 hex. */
  binary: string;
  binaryHex: string;
  docs: Map<string, any>;
  texts: Map<string, string>;
  /** The machine-configs arguments but --out. */
  args: string[];
}

/** The sample loaded (with the cluster's TLS), a stand-in binary, and machine-configs run on them. */
async function generate(dir: string, extra: string[] = []): Promise<Generated> {
  const { tar } = await sampleFixture();
  const data = join(dir, "data");
  const r0 = await isoload(["load", tar, "--data-dir", data, "--no-registries-conf", "--quiet"]);
  assert.equal(r0.code, 0, r0.stderr);
  // The cluster's TLS, made before the ISO is (127.0.0.2 stands for api-int in the worker's namespace).
  const tls = join(dir, "tls");
  const t = await isoload(["tls", "--out", tls, ...CLUSTER, "--ip", "127.0.0.2", "--quiet"]);
  assert.equal(t.code, 0, t.stderr);
  const binary = join(dir, "isoload-binary");
  await Deno.writeFile(binary, crypto.getRandomValues(new Uint8Array(60_000)));
  const out = join(dir, "openshift");
  const args = [
    "machine-configs",
    "--tls-dir",
    tls,
    ...CLUSTER,
    "--source",
    tar,
    "--binary",
    binary,
    "--rendezvous",
    "192.168.111.20",
    "--peer",
    "192.168.111.21:22625",
    ...extra,
  ];
  const r = await isoload([...args, "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  const texts = new Map<string, string>();
  const docs = new Map<string, any>();
  for await (const e of Deno.readDir(out)) {
    const text = await Deno.readTextFile(join(out, e.name));
    texts.set(e.name, text);
    docs.set(e.name, parse(text));
  }
  return { out, tls, data, binary, binaryHex: (await fileDigest(binary)).slice(7), docs, texts, args };
}

const MASTER = "99_openshift-machineconfig_99-master-isoload.yaml";
const WORKER = "99_openshift-machineconfig_99-worker-isoload.yaml";
const IDMS = "99_isoload-image-digest-mirror-set.yaml";
const ITMS = "99_isoload-image-tag-mirror-set.yaml";

function fileOf(mc: any, path: string): { mode: number; text: string } {
  const f = mc.spec.config.storage.files.find((x: { path: string }) => x.path === path);
  assert.ok(f, `${path} in ${mc.metadata.name}`);
  const b64 = f.contents.source.split(",")[1];
  return { mode: f.mode, text: new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))) };
}

Deno.test("machine-configs: each manifest under 1 MB, the Ignition inside each MachineConfig passes ignition-validate, the mirror sets pass the CRDs", async () => {
  await withTempDir("mc-valid", async (dir) => {
    const g = await generate(dir);
    assert.deepEqual([...g.texts.keys()].sort(), [IDMS, ITMS, MASTER, WORKER]);
    for (const [name, text] of g.texts) assert.ok(new TextEncoder().encode(text).length < 1_000_000, `${name} under 1 MB`);
    // The key rides in the master MachineConfig: the file is root's alone.
    assert.equal((await Deno.stat(join(g.out, MASTER))).mode! & 0o777, 0o600);
    assert.equal(fileOf(g.docs.get(MASTER), "/etc/isoload/tls/server.key").mode, 0o600);
    assert.equal(fileOf(g.docs.get(MASTER), "/etc/isoload/tls/server.key").text, await Deno.readTextFile(join(g.tls, "server.key")));
    assert.match(fileOf(g.docs.get(MASTER), "/usr/local/bin/isoload-boot").text, new RegExp(`^want=${g.binaryHex}$`, "m"));
    // Same input, same bytes.
    const again = join(dir, "again");
    const r = await isoload([...g.args, "--out", again, "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
    for (const [name, text] of g.texts) assert.equal(await Deno.readTextFile(join(again, name)), text, name);

    const up = upstreamOrSkip("ignition-validate and the openshift/api CRDs");
    if (!up) return;
    for (const name of [MASTER, WORKER]) {
      const ign = join(dir, `${name}.ign`);
      await Deno.writeTextFile(ign, JSON.stringify(g.docs.get(name).spec.config));
      const r = await new Deno.Command(join(up, "bin/ignition-validate"), { args: [ign], stdout: "piped", stderr: "piped" }).output();
      const said = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
      assert.equal(r.code, 0, `ignition-validate ${name}: ${said}`);
      assert.equal(said.trim(), "", `ignition-validate ${name} has nothing to say`);
    }
    for (const [name, crd] of [[IDMS, "imagedigestmirrorsets"], [ITMS, "imagetagmirrorsets"]]) {
      const schema = await crdSchema(join(up, `openshift-api/0000_10_config-operator_01_${crd}.crd.yaml`), "v1");
      assert.deepEqual(validate(schema, g.docs.get(name)), [], name);
    }
  });
});

/** A network namespace with loopback up and its own /etc/hosts (ip netns exec binds /etc/netns/NAME/hosts). */
async function netnsWithHosts(hosts: string): Promise<{ ns: string; remove(): Promise<void> }> {
  const ns = `iso-mc-${Array.from(crypto.getRandomValues(new Uint8Array(3)), (b) => b.toString(16).padStart(2, "0")).join("")}`;
  await tool("ip", ["netns", "add", ns]);
  const etc = `/etc/netns/${ns}`;
  const remove = async () => {
    await tool("ip", ["netns", "del", ns]).catch(() => {});
    await Deno.remove(etc, { recursive: true }).catch(() => {});
  };
  try {
    await tool("ip", ["-n", ns, "link", "set", "lo", "up"]);
    await Deno.mkdir(etc, { recursive: true });
    await Deno.writeTextFile(join(etc, "hosts"), hosts);
  } catch (e) {
    await remove();
    throw e;
  }
  return { ns, remove };
}

Deno.test("machine-configs: mco-render of the mirror sets pulls every image by digest and tag with skopeo 1.20, from localhost on a control-plane node, via api-int on a worker", async () => {
  const up = upstreamOrSkip("mco-render and skopeo 1.20");
  if (!up) return;
  await withTempDir("mc-pull", async (dir) => {
    const g = await generate(dir);
    const docs = join(dir, "docs.json");
    await Deno.writeTextFile(docs, JSON.stringify([g.docs.get(IDMS), g.docs.get(ITMS)]));
    const template = join(dir, "template.toml");
    await Deno.writeTextFile(template, "unqualified-search-registries = ['registry.access.redhat.com']\n");
    const conf = join(dir, "registries.conf");
    await Deno.writeTextFile(conf, (await tool(join(up, "bin/mco-render"), [template, docs])).stdout);
    const text = await Deno.readTextFile(conf);
    // localhost first, then api-int, for every source.
    assert.ok(
      text.indexOf(`"localhost:22625/quay.io/isoload-test/hello"`) < text.indexOf(`"${API_INT}:22625/quay.io/isoload-test/hello"`),
      text,
    );
    const certs = join(dir, "certs");
    await Deno.mkdir(certs);
    await Deno.copyFile(join(g.tls, "ca.crt"), join(certs, "ca.crt"));
    const { fixture } = await sampleFixture();
    // A control-plane node: its own registry at localhost:22625, api-int pointing nowhere that answers.
    // A worker: nothing on localhost:22625, api-int (127.0.0.2 here) serving.
    for (const [role, listen, apiIntIp] of [["master", "127.0.0.1", "127.0.0.3"], ["worker", "127.0.0.2", "127.0.0.2"]]) {
      const net = await netnsWithHosts(`127.0.0.1 localhost\n::1 localhost\n${apiIntIp} ${API_INT}\n`);
      try {
        const served = await serve(["--data-dir", g.data, "--listen", `${listen}:22625`, "--tls-dir", g.tls], {
          netns: net.ns,
        });
        try {
          for (const [i, img] of fixture.images.entries()) {
            const refs = [`${img.source}@${img.digest}`];
            if (!img.name.includes("@")) refs.push(img.name);
            for (const [j, ref] of refs.entries()) {
              const dest = join(dir, `${role}-${i}-${j}`);
              const r = await new Deno.Command("ip", {
                args: [
                  "netns",
                  "exec",
                  net.ns,
                  join(up, "bin/skopeo-1.20"),
                  "--registries-conf",
                  conf,
                  "copy",
                  "--quiet",
                  "--multi-arch",
                  "all",
                  "--src-cert-dir",
                  certs,
                  `docker://${ref}`,
                  `dir:${dest}`,
                ],
                stdout: "piped",
                stderr: "piped",
              }).output();
              assert.equal(r.code, 0, `${role}: skopeo-1.20 copy ${ref}: ${new TextDecoder().decode(r.stderr)}`);
              assert.equal(await fileDigest(join(dest, "manifest.json")), img.digest, `${role}: ${ref}`);
            }
          }
        } finally {
          assert.equal(await served.stop(), 0);
        }
      } finally {
        await net.remove();
      }
    }
  });
});

/** Stand-ins for the units the MCO and RHCOS ship, with their real ordering (MCO templates/common/_base/units/). */
const STUBS: Record<string, string[]> = {
  "machine-config-daemon-pull.service": [
    "Wants=NetworkManager-wait-online.service",
    "After=NetworkManager-wait-online.service network.service",
  ],
  "machine-config-daemon-firstboot.service": ["After=machine-config-daemon-pull.service", "Before=kubelet.service"],
  "crio.service": ["Wants=network-online.target", "After=network-online.target"],
  "kubelet.service": ["Wants=crio.service", "After=crio.service machine-config-daemon-firstboot.service"],
  "NetworkManager-wait-online.service": ["Before=network-online.target"],
};

Deno.test("machine-configs: the master units pass systemd-analyze verify beside the MCO's pullers, with no ordering cycle, the registry before them", async () => {
  await withTempDir("mc-units", async (dir) => {
    const g = await generate(dir);
    const root = join(dir, "root");
    const sys = join(root, "etc/systemd/system");
    await Deno.mkdir(sys, { recursive: true });
    // systemd-analyze --root needs the standard units (targets) inside the root.
    await Deno.mkdir(join(root, "usr/lib/systemd"), { recursive: true });
    await tool("cp", ["-a", "/lib/systemd/system", join(root, "usr/lib/systemd/")]);
    const mc = g.docs.get(MASTER);
    for (const f of mc.spec.config.storage.files) {
      const { mode, text } = fileOf(mc, f.path);
      await Deno.mkdir(join(root, f.path, ".."), { recursive: true });
      await Deno.writeTextFile(join(root, f.path), text, { mode });
    }
    await Deno.mkdir(join(root, "bin"), { recursive: true });
    await Deno.copyFile("/bin/true", join(root, "bin/true"));
    const units = mc.spec.config.systemd.units as { name: string; contents: string }[];
    for (const u of units) await Deno.writeTextFile(join(sys, u.name), u.contents);
    for (const [name, lines] of Object.entries(STUBS)) {
      await Deno.writeTextFile(
        join(sys, name),
        ["[Unit]", `Description=stand-in for ${name}`, ...lines, "", "[Service]", "Type=oneshot", "ExecStart=/bin/true", ""].join("\n"),
      );
    }
    const names = [...units.map((u) => u.name), ...Object.keys(STUBS)];
    const r = await new Deno.Command("systemd-analyze", {
      args: ["verify", "--man=no", `--root=${root}`, ...names.map((n) => `etc/systemd/system/${n}`)],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, 0, err);
    assert.doesNotMatch(err, /ordering cycle|cyclic/i, err);
    assert.doesNotMatch(err, /isoload/, `no warnings about isoload's units: ${err}`);
    for (const u of units) {
      const before = /^Before=(.*)$/m.exec(u.contents)![1].split(/\s+/);
      for (
        const puller of ["machine-config-daemon-pull.service", "machine-config-daemon-firstboot.service", "crio.service", "kubelet.service"]
      ) {
        assert.ok(before.includes(puller), `${u.name} before ${puller}`);
      }
    }
    assert.match(units[1].contents, /^Requires=isoload-binary\.service$/m);
    assert.match(units[1].contents, /^After=isoload-binary\.service/m);
  });
});

/** The boot script from the master MachineConfig, with its settings pointed into a temp root. */
async function bootScript(g: Generated, dir: string, settings: Record<string, string>): Promise<string> {
  let text = fileOf(g.docs.get(MASTER), "/usr/local/bin/isoload-boot").text;
  for (const [k, v] of Object.entries(settings)) {
    const re = new RegExp(`^${k}=.*$`, "m");
    assert.match(text, re, `the script sets ${k}`);
    text = text.replace(re, `${k}=${v}`);
  }
  const path = join(dir, "isoload-boot");
  await Deno.writeTextFile(path, text, { mode: 0o755 });
  return path;
}

async function bash(args: string[]): Promise<{ code: number; err: string }> {
  const r = await new Deno.Command("bash", { args, stdout: "piped", stderr: "piped" }).output();
  return { code: r.code, err: new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr) };
}

Deno.test("machine-configs: the boot script installs the binary from a mounted ISO by digest, is idempotent, and refuses a wrong digest", async () => {
  await withTempDir("mc-boot", async (dir) => {
    const g = await generate(dir);
    const iso = join(dir, "iso");
    await Deno.mkdir(join(iso, "images"), { recursive: true });
    await Deno.copyFile(g.binary, join(iso, "images/isoload"));
    const target = join(dir, "root/usr/local/bin/isoload");
    const settings = {
      binary: `'${target}'`,
      iso_mount: `'${iso}'`,
      iso_label: "'no-such-label-*'",
      tls_dir: `'${g.tls}'`,
      peers: "()",
      rounds: "1",
      pause: "0",
    };
    const script = await bootScript(g, dir, settings);
    const r = await bash([script, "binary"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /installed .* from the ISO/);
    assert.equal(await fileDigest(target), `sha256:${g.binaryHex}`);
    assert.equal((await Deno.stat(target)).mode! & 0o777, 0o755);
    const again = await bash([script, "binary"]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.err, /already/);

    // A digest the ISO's file does not have: refused, nothing installed, no temp file left.
    const other = join(dir, "other");
    await Deno.mkdir(other);
    const wrongTarget = join(other, "isoload");
    const wrong = await bootScript(g, other, { ...settings, binary: `'${wrongTarget}'`, want: "0".repeat(64) });
    const w = await bash([wrong, "binary"]);
    assert.equal(w.code, 1, w.err);
    assert.match(w.err, /not 0{64}: ignored/);
    assert.match(w.err, /cannot install/);
    assert.deepEqual([...Deno.readDirSync(other)].map((e) => e.name), ["isoload-boot"]);
  });
});

Deno.test("machine-configs: with no ISO the boot script gets the binary from a peer isoload registry by digest over TLS, and refuses a digest the peer lacks", async () => {
  await withTempDir("mc-peer", async (dir) => {
    const g = await generate(dir);
    const empty = join(dir, "no-iso");
    await Deno.mkdir(empty);
    const port = freePort();
    const served = await serve(["--data-dir", g.data, "--listen", `127.0.0.1:${port}`, "--tls-dir", g.tls, "--binary-file", g.binary]);
    try {
      const settings = {
        iso_mount: `'${empty}'`,
        iso_label: "'no-such-label-*'",
        tls_dir: `'${g.tls}'`,
        // A dead peer first: the script moves on to the next.
        peers: `('https://127.0.0.1:${freePort()}' 'https://127.0.0.1:${port}')`,
        rounds: "1",
        pause: "0",
      };
      const target = join(dir, "root/usr/local/bin/isoload");
      const script = await bootScript(g, dir, { ...settings, binary: `'${target}'` });
      const r = await bash([script, "binary"]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, new RegExp(`installed .* from https://127\\.0\\.0\\.1:${port}`));
      assert.equal(await fileDigest(target), `sha256:${g.binaryHex}`);
      assert.equal((await Deno.stat(target)).mode! & 0o777, 0o755);

      const other = join(dir, "other");
      await Deno.mkdir(other);
      const wrong = await bootScript(g, other, { ...settings, binary: `'${join(other, "isoload")}'`, want: "1".repeat(64) });
      const w = await bash([wrong, "binary"]);
      assert.equal(w.code, 1, w.err);
      assert.match(w.err, /did not give the binary/);
      assert.deepEqual([...Deno.readDirSync(other)].map((e) => e.name), ["isoload-boot"]);
    } finally {
      assert.equal(await served.stop(), 0);
    }
  });
});

Deno.test("machine-configs: the boot script serves DIR with the ISO in place behind it (kept on disk) when attached, else with every peer but this node", async () => {
  await withTempDir("mc-serve", async (dir) => {
    const g = await generate(dir);
    // A stand-in for isoload that prints how it was called.
    const stub = join(dir, "isoload-stub");
    await Deno.writeTextFile(stub, '#!/bin/bash\nprintf "%s\\n" "$@"\n', { mode: 0o755 });
    const iso = join(dir, "iso");
    await Deno.mkdir(join(iso, "images"), { recursive: true });
    await Deno.writeTextFile(join(iso, "images/mirror_000001.tar"), "part 1");
    const settings = {
      binary: `'${stub}'`,
      iso_mount: `'${iso}'`,
      iso_label: "'no-such-label-*'",
      data_dir: `'${join(dir, "var-lib-isoload")}'`,
      peers: "('https://10.251.7.1:22625' 'https://10.251.7.2:22625')",
    };
    const script = await bootScript(g, dir, settings);
    const fromIso = await bash([script, "serve"]);
    assert.equal(fromIso.code, 0, fromIso.err);
    assert.match(
      fromIso.err,
      new RegExp(
        `^serve\n--source\n${iso}/images/mirror_\\*\\.tar\n--persist\n--data-dir\n${join(dir, "var-lib-isoload")}\n--tls-dir\n`,
        "m",
      ),
    );

    // No ISO, in a namespace whose own global address is the first peer's.
    await Deno.remove(join(iso, "images/mirror_000001.tar"));
    const net = await netnsWithHosts("127.0.0.1 localhost\n");
    try {
      // A veth pair inside the namespace (no dummy module on every host) carries the address.
      await tool("ip", ["-n", net.ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
      await tool("ip", ["-n", net.ns, "addr", "add", "10.251.7.1/24", "dev", "v0"]);
      for (const dev of ["v0", "v1"]) await tool("ip", ["-n", net.ns, "link", "set", dev, "up"]);
      const fromPeers = await bash(["-c", `ip netns exec ${net.ns} bash ${script} serve`]);
      assert.equal(fromPeers.code, 0, fromPeers.err);
      assert.match(fromPeers.err, /skipping https:\/\/10\.251\.7\.1:22625: it is this node/);
      const args = fromPeers.err.split("\n").filter((l) => !l.startsWith("isoload-boot:"));
      assert.deepEqual(args.slice(0, 3), ["serve", "--data-dir", join(dir, "var-lib-isoload")]);
      assert.deepEqual(args.slice(args.indexOf("--peer"), args.indexOf("--peer") + 2), ["--peer", "https://10.251.7.2:22625"]);
      assert.ok(!args.includes("https://10.251.7.1:22625"), args.join(" "));
    } finally {
      await net.remove();
    }
  });
});

Deno.test("machine-configs: bad options exit 2, a missing TLS directory exits 3, and nothing is written", async () => {
  await withTempDir("mc-bad", async (dir) => {
    const { tar } = await sampleFixture();
    const out = join(dir, "out");
    const base = ["machine-configs", "--out", out, "--source", tar, "--binary", tar];
    const noCluster = await isoload([...base, "--tls-dir", dir, "--base-domain", "example.com"]);
    assert.equal(noCluster.code, 2, noCluster.stderr);
    assert.match(noCluster.stderr, /--cluster is required/);
    const badPeer = await isoload([...base, "--tls-dir", dir, ...CLUSTER, "--peer", "a b"]);
    assert.equal(badPeer.code, 2, badPeer.stderr);
    const noTls = await isoload([...base, "--tls-dir", join(dir, "none"), ...CLUSTER]);
    assert.equal(noTls.code, 3, noTls.stderr);
    assert.match(noTls.stderr, /Cannot use the TLS directory/);
    assert.equal(await Deno.stat(out).then(() => true, () => false), false);
    const help = await isoload(["machine-configs", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /isoload machine-configs --out/);
  });
});
