import assert from "node:assert/strict";
import { parseDuration, parseHostPort } from "./commands/_command.ts";
import { parseCommandLine, type ParsedCommandLine } from "./cli.ts";
import { UsageError } from "./util/errors.ts";
import type { MachineConfigsOptions } from "./commands/machine_configs.ts";

Deno.test("parseDuration() reads seconds, units and sums, and refuses the rest", () => {
  assert.equal(parseDuration("90", "--t"), 90_000);
  assert.equal(parseDuration("90s", "--t"), 90_000);
  assert.equal(parseDuration("1h30m", "--t"), 5_400_000);
  assert.equal(parseDuration("250ms", "--t"), 250);
  for (const bad of ["", "0", "5 minutes", "-1s", "1d"]) assert.throws(() => parseDuration(bad, "--t"), /--t must/);
});

Deno.test("parseHostPort() takes names, IPv4 and [IPv6] with a port", () => {
  for (const ok of ["host0.example.com:22625", "10.0.0.1:5000", "[fd00::1]:443"]) assert.equal(parseHostPort(ok, "--m"), ok);
  for (const bad of ["host0", "10.0.0.1:0", "10.0.0.1:70000", "http://h:1"]) assert.throws(() => parseHostPort(bad, "--m"));
});

/** Parses a command line in-process; the options, or the UsageError's message. */
function usage(line: string): string {
  const [name, ...args] = line.split(" ").filter(Boolean);
  try {
    parseCommandLine(name, args);
  } catch (e) {
    assert.ok(e instanceof UsageError, `${line}: ${e}`);
    return e.message;
  }
  assert.fail(`${line}: no usage error`);
}

function options<O>(line: string): O {
  const [name, ...args] = line.split(" ").filter(Boolean);
  const parsed = parseCommandLine(name, args);
  assert.notEqual(parsed, "help");
  return (parsed as ParsedCommandLine<O>).options;
}

Deno.test("parseCommandLine() serve: wrong combinations are usage errors found before any work", () => {
  assert.match(usage("serve --source a.tar --tls"), /--tls needs --data-dir DIR/);
  assert.match(usage("serve"), /give --data-dir DIR, or --source PATH/);
  assert.match(usage("serve --data-dir d --registry-command r --registry-image i"), /at most one of/);
  assert.match(usage("serve --data-dir d --builtin --registry-command r"), /at most one of/);
  assert.match(usage("serve --source a.tar --registry-command r"), /--source is served by the built-in server only/);
  assert.match(usage("serve --data-dir d --registry-command r --access-log"), /--access-log goes with the built-in server/);
  assert.match(usage("serve --registry-command r"), /--data-dir is required/);
  assert.match(usage("serve --data-dir d --hostname h"), /--hostname and --ip go with --tls/);
  assert.match(usage("serve --data-dir d --tls --ip nope"), /--ip must be an IPv4 or IPv6 address/);
  assert.match(usage("serve --data-dir d --listen 22625"), /--listen must be HOST:PORT/);
  assert.match(usage("serve --data-dir d --ready-timeout 0"), /--ready-timeout must be longer than zero/);
  assert.match(usage("serve --data-dir d extra"), /unexpected argument "extra"/);
  assert.match(usage("serve --data-dir d --log-format xml"), /--log-format must be text or json/);
  assert.match(usage("serve --data-dir d --no-such"), /Unknown option '--no-such'/);
});

Deno.test("parseCommandLine() serve: the built-in registry by default, an external one when named", () => {
  assert.deepEqual(options("serve --data-dir d"), {
    server: "builtin",
    sources: undefined,
    dataDir: "d",
    naming: { sourceRegistry: undefined },
    serving: { listen: "0.0.0.0:22625", tls: undefined, readyTimeoutMs: 120_000 },
    accessLog: false,
  });
  assert.deepEqual(options("serve --source a.tar --data-dir d --tls --hostname h --ip 10.0.0.1 --access-log"), {
    server: "builtin",
    sources: ["a.tar"],
    dataDir: "d",
    naming: { sourceRegistry: undefined },
    serving: { listen: "0.0.0.0:22625", tls: { hostnames: ["h"], ips: ["10.0.0.1"] }, readyTimeoutMs: 120_000 },
    accessLog: true,
  });
  assert.deepEqual(options("serve --data-dir d --registry-command /r --listen 127.0.0.1:5000 --ready-timeout 5m"), {
    server: "external",
    external: {
      dataDir: "d",
      registryCommand: "/r",
      registryImage: undefined,
      listen: "127.0.0.1:5000",
      tls: undefined,
      readyTimeoutMs: 300_000,
    },
  });
  assert.equal(parseCommandLine("serve", ["--help"]), "help");
  // Several files that are one source: --source repeated (each may be a glob, expanded later by isoload).
  assert.deepEqual(options<{ sources: string[] }>("serve --source a/mirror_000001.tar --source a/mirror_000002.tar").sources, [
    "a/mirror_000001.tar",
    "a/mirror_000002.tar",
  ]);
  assert.deepEqual(options<{ sources: string[] }>("serve --source a/mirror_*.tar").sources, ["a/mirror_*.tar"]);
});

Deno.test("parseCommandLine() load: each mode takes its own options", () => {
  assert.match(usage("load a.tar"), /--data-dir is required/);
  assert.match(usage("load --data-dir d"), /expected SOURCE \(one or more paths or quoted globs\), got none/);
  assert.match(usage("load a.tar --data-dir d --mode other"), /--mode must be registry or storage/);
  assert.match(usage("load a.tar --data-dir d --mode storage --tls"), /--tls applies to --mode registry only/);
  assert.match(usage("load a.tar --data-dir d --mode storage --serve"), /--serve applies to --mode registry only/);
  assert.match(usage("load a.tar --data-dir d --jobs 2"), /--jobs applies to --mode storage only/);
  assert.match(usage("load a.tar --data-dir d --mode storage --jobs 0"), /--jobs must be a whole number from 1 to 64/);
  assert.match(usage("load a.tar --data-dir d --listen 0.0.0.0:1"), /--listen goes with --serve/);
  assert.match(usage("load a.tar --data-dir d --no-registries-conf --registries-conf f"), /exclude each other/);
  assert.match(usage("load a.tar --data-dir d --mirror nope"), /--mirror must be HOST:PORT/);
  assert.match(usage("load a.tar --data-dir d --source-registry /x"), /--source-registry must be a registry host/);
  const several = options<{ load: { sources: string[]; allowRamTarget: boolean } }>(
    "load p.tar.00 p.tar.01 --data-dir d --allow-ram-target",
  );
  assert.deepEqual(several.load.sources, ["p.tar.00", "p.tar.01"]);
  assert.equal(several.load.allowRamTarget, true);
  const served = options<{ serve: { listen: string } }>("load a.tar --data-dir d --mirror h:5000 --serve");
  assert.equal(served.serve.listen, "0.0.0.0:5000");
  assert.deepEqual(options("load a.tar --data-dir d --mode storage --pin none --jobs 3 --keep"), {
    mode: "storage",
    storage: {
      sources: ["a.tar"],
      allowRamTarget: false,
      dataDir: "d",
      storageConf: undefined,
      jobs: 3,
      pinFile: undefined,
      keep: true,
      naming: { sourceRegistry: undefined },
    },
  });
});

Deno.test("parseCommandLine() units, wait, registries-conf, mirror-config: their rules", () => {
  // Every host boots the same ISO: one set of units for all, serving in place over TLS unless told otherwise.
  assert.match(usage("units --role bootstrap --mirror h:1 --out o"), /--role must be all, host0 or node/);
  assert.match(usage("units --role node --mode storage --out o"), /--mirror is required/);
  assert.match(usage("units --role host0 --mirror h:1 --out o --binary isoload"), /--binary must be an absolute path/);
  assert.match(usage("units --role host0 --mirror h:1 --out o --before crio"), /--before wants unit names/);
  assert.match(usage("units --role node --mirror h:1 --expect missing.json"), /--out is required/);
  assert.match(usage("units --role host0 --mirror h:1 --out o --format yaml"), /--format must be files or ignition/);
  assert.match(usage("units --mirror h:1 --out o --insecure-http --tls-dir t"), /--insecure-http serves plain HTTP: --tls-dir/);
  assert.match(usage("units --mirror h:1 --out o --tls-dir t --cluster a --base-domain b.c"), /--tls-dir brings one already made/);
  assert.match(usage("units --mirror h:1 --out o --registry-image r"), /serve a --data-dir copy/);
  const units = options<{ units: { role: string; dataDir?: string }; tls: unknown }>("units --mirror 10.1.2.3:22625 --out o");
  assert.equal(units.units.role, "all");
  assert.equal(units.units.dataDir, undefined, "in place by default");
  assert.deepEqual(units.tls, { make: { hostnames: [], ips: [], rendezvous: "10.1.2.3", clusterDomain: undefined } });
  assert.match(usage("tls --rendezvous 10.1.2.3"), /--out is required/);
  assert.match(usage("tls --out o --cluster ocp"), /--cluster and --base-domain go together/);
  assert.match(usage("tls --out o --ip host0"), /--ip must be an IPv4 or IPv6 address/);
  assert.deepEqual(options("tls --out o --rendezvous host0.example.com --cluster-domain ocp.example.com --ip fd00::1"), {
    out: "o",
    names: { hostnames: [], ips: ["fd00::1"], rendezvous: "host0.example.com", clusterDomain: "ocp.example.com" },
  });
  assert.match(usage("serve --source a.tar --tls --tls-dir t"), /--tls-dir uses one made before/);
  assert.match(usage("mirror-config --expect f --mirror h:1 --insecure-http --tls-dir t"), /exclude each other/);
  assert.match(usage("mirror-config --mirror h:1"), /exactly one of --data-dir DIR or --expect FILE/);
  for (const cmd of ["wait", "registries-conf"]) {
    assert.match(usage(`${cmd} --mirror h:1`), /exactly one of --data-dir DIR or --expect FILE/);
    assert.match(usage(`${cmd} --mirror h:1 --data-dir d --expect f`), /exactly one of --data-dir DIR or --expect FILE/);
    assert.match(usage(`${cmd} --expect f`), /--mirror is required/);
  }
  assert.match(usage("wait --mirror h:1 --expect f --timeout soon"), /--timeout must be a duration/);
  assert.match(usage("mirror-config --data-dir d --mirror h:1 --kind yaml"), /--kind must be idms, itms, icsp or trusted-ca/);
  assert.match(usage("status"), /--data-dir is required/);
  assert.match(usage("verify"), /--data-dir is required/);
  assert.match(usage("inspect"), /expected SOURCE \(one or more paths or quoted globs\), got none/);
});

Deno.test("parseCommandLine() machine-configs: peers get port 22625, ISO paths stay inside the ISO, the rest is required", () => {
  const base = "machine-configs --out o --tls-dir t --cluster ocp --base-domain example.com --source a.tar --binary b";
  const o = options<MachineConfigsOptions>(`${base} --rendezvous 192.168.111.20 --peer m1.example.com --peer [fd00::2]:8443`);
  assert.deepEqual(o.peers, ["192.168.111.20:22625", "m1.example.com:22625", "[fd00::2]:8443"]);
  assert.deepEqual([o.isoLabel, o.isoBinary, o.isoArchive], ["rhcos-*", "images/isoload", "images/mirror_*.tar"]);
  assert.match(usage(base.replace("--cluster ocp", "")), /--cluster is required/);
  assert.match(usage(base.replace("ocp", "Bad_Name")), /--cluster must be a DNS label/);
  assert.match(usage(base.replace("--source a.tar", "")), /--source is required/);
  assert.match(usage(`${base} --iso-archive /abs/mirror.tar`), /--iso-archive is a path inside the ISO/);
  assert.match(usage(`${base} --iso-binary ../isoload`), /--iso-binary is a path inside the ISO/);
  assert.match(usage(`${base} --peer a/b`), /--rendezvous and --peer must be HOST:PORT/);
  assert.equal(
    options<{ binaryFile?: string }>("serve --data-dir d --binary-file /usr/local/bin/isoload").binaryFile,
    "/usr/local/bin/isoload",
  );
  assert.match(usage("serve --data-dir d --registry-command /r --binary-file b"), /--binary-file goes with the built-in server/);
});
