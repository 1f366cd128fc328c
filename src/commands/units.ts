/** `isoload units`: the boot units (or an Ignition fragment) for the hosts that boot the agent ISO, written into a directory. */
import { join, resolve } from "node:path";
import { atomicWrite } from "../util/atomic_write.ts";
import type { Logger } from "../util/log.ts";
import { DEFAULT_BEFORE, DEFAULT_SOURCE, renderIgnition, renderUnits, type UnitsOptions } from "../host/units.ts";
import { DEFAULT_CERTS_DIR } from "../host/ca_install.ts";
import { expectedFromFile } from "../host/expect.ts";
import { readTlsDir } from "../server/tls.ts";
import { ExitCode, UsageError } from "../util/errors.ts";
import { type Command, list, parseDuration, parseHostPort, required, str } from "./_command.ts";
import { makeTlsDir, parseTlsNames, type TlsNames } from "./tls.ts";

/** How `units` gets the cluster's TLS material. */
export type UnitsTls =
  /** A directory `isoload tls` made. */
  | { dir: string }
  /** Make it under `--out` for these names. */
  | { make: TlsNames }
  /** Plain HTTP, asked for explicitly. */
  | { insecureHttp: true };

/** Where `units` makes the TLS material when no --tls-dir is given. */
export function madeTlsDir(out: string): string {
  return join(out, "tls");
}

/**
 * Writes the units (`files`: one file per unit, and each shipped file under
 * `out/root/<path>` except the server key) or one `isoload.ign` (`ignition`,
 * the key included with mode 0600) into `out`; returns the paths written.
 */
export async function writeUnits(
  opts: Omit<UnitsOptions, "tls">,
  tls: UnitsTls,
  out: string,
  format: "files" | "ignition",
  log: Logger,
): Promise<string[]> {
  let material: UnitsOptions["tls"];
  if ("dir" in tls || "make" in tls) {
    const dir = "dir" in tls ? resolve(tls.dir) : madeTlsDir(resolve(out));
    if ("make" in tls) {
      await makeTlsDir(dir, tls.make, log);
      log.info(`No --tls-dir given: made the cluster's CA and server certificate in ${dir} (ca.key stays there, off the ISO)`);
    }
    const p = await readTlsDir(dir);
    material = { ca: p.caPem, cert: await Deno.readTextFile(p.cert), key: await Deno.readTextFile(p.key) };
  }
  const rendered = renderUnits({ ...opts, tls: material });
  const written: [string, string, number][] = format === "ignition" ? [[join(out, "isoload.ign"), renderIgnition(rendered), 0o600]] : [
    ...rendered.units.map((u): [string, string, number] => [join(out, u.name), u.text, 0o644]),
    ...rendered.files.filter((f) => !f.secret).map((f): [string, string, number] => [join(out, "root", f.path), f.text, f.mode]),
  ];
  for (const [path, text, mode] of written) await atomicWrite(path, text, { mode });
  const what = rendered.units.map((u) => u.name).join(", ");
  log.info(
    `Wrote ${written.map(([p]) => p).join(", ")} (${opts.mode} mode, ${opts.dataDir ? `copied into ${opts.dataDir}` : "served in place"}` +
      `${material ? ", TLS" : ", plain HTTP"}: ${what})`,
  );
  if (format === "files" && material) {
    log.info(`The server key travels only inside the Ignition config: install it yourself at /etc/isoload/tls/server.key, mode 0600`);
  }
  if (opts.expectText === undefined) {
    log.warn(
      "no --expect FILE given: put the image list (isoload inspect --json ARCHIVE) at /etc/isoload/images.json on every host, " +
        "or registries.conf is not written",
    );
  }
  return written.map(([p]) => p);
}

/** What `isoload units` was asked: the units' options (less the TLS material and list, read at run), where and how to write. */
export interface UnitsCliOptions {
  units: Omit<UnitsOptions, "tls" | "expectText">;
  tls: UnitsTls;
  /** The image list to ship (checked, then read, at run). */
  expectFile?: string;
  out: string;
  format: "files" | "ignition";
}

/** `isoload units --mirror HOST:PORT …`. */
export const unitsCommand: Command<UnitsCliOptions> = {
  summary: "Write the systemd units (or an Ignition fragment) that serve the ISO's images on every host at boot",
  usage: "isoload units --mirror HOST:PORT [--role all|host0|node] [--mode registry|storage] [--source PATH|GLOB] --out DIR\n" +
    "                     [--format files|ignition] [--tls-dir DIR | --insecure-http] [--expect FILE] [--data-dir DIR] [--before UNIT…]",
  description: "Every host of an agent install boots the same ISO with the same Ignition, so every host gets the same units:\n" +
    "isoload-registry.service (Type=notify) serves the archive on the ISO in place (isoload serve --source, nothing\n" +
    "copied into the live /var, which is RAM) on port 22625, ready in about a second; isoload-registries-conf.service\n" +
    "writes registries.conf listing this host's own registry (localhost:22625) first and host0's (--mirror, the\n" +
    "rendezvous address) second, so a host whose registry is not up, or failed, pulls from host0. Both start before\n" +
    "every service that pulls images (agent-extract-tui, the agent, assisted-service, release-image, CRI-O, kubelet)\n" +
    "and after no network target (the agent ISO's console unit sits between NetworkManager and network-online).\n" +
    "TLS by default: the cluster's CA and server certificate (--tls-dir DIR from isoload tls; made under DIR/tls when\n" +
    "not given) go to /etc/isoload/tls, and the CA to certs.d for localhost:PORT and --mirror and to the system trust\n" +
    "anchors. The server key travels only inside the Ignition config (mode 0600). --insecure-http serves plain HTTP.\n" +
    "--data-dir DIR copies the archive into DIR on a real disk (isoload-load.service) and serves from there.\n" +
    "--mode storage also copies the images into containers-storage for CRI-O (isoload-load.service, before crio and\n" +
    "kubelet); the in-place registry still serves the live ISO's podman pulls. The image list (--expect FILE,\n" +
    "isoload inspect --json ARCHIVE) ships as /etc/isoload/images.json. --format files writes one file per unit into\n" +
    "DIR and the other shipped files under DIR/root/; --format ignition writes DIR/isoload.ign, an Ignition 3 config\n" +
    "to merge into the ISO's. Same options, same bytes.",
  options: {
    role: { type: "string", arg: "ROLE", default: "all", help: "all, host0 or node: every host gets the same units (one ISO for all)." },
    mode: { type: "string", arg: "MODE", default: "registry", help: "registry, or storage (also copy into containers-storage)." },
    mirror: { type: "string", arg: "HOST:PORT", help: "host0's registry: the rendezvous address and port (22625)." },
    source: { type: "string", arg: "PATH|GLOB", default: DEFAULT_SOURCE, help: "The archive on the mounted ISO (a glob: every part)." },
    before: {
      type: "string",
      arg: "UNIT",
      multiple: true,
      help: `Units to hold back until the images are pullable (repeatable; default: ${DEFAULT_BEFORE.join(" ")}).`,
    },
    out: { type: "string", arg: "DIR", help: "Directory to write into (created)." },
    format: { type: "string", arg: "FORMAT", default: "files", help: "files or ignition." },
    "data-dir": {
      type: "string",
      arg: "DIR",
      help: "Copy the archive into DIR (a real disk, not the live /var) and serve from there; storage mode: its scratch\n" +
        " ".repeat(31) + "(default /var/lib/isoload).",
    },
    binary: { type: "string", arg: "PATH", default: "/usr/local/bin/isoload", help: "Where isoload is on the hosts." },
    "registry-command": { type: "string", arg: "PATH", help: "With --data-dir: a registry binary for isoload serve (default: built-in)." },
    "registry-image": { type: "string", arg: "REF", help: "With --data-dir: a registry image for isoload serve (default: built-in)." },
    "tls-dir": { type: "string", arg: "DIR", help: "The cluster's TLS material (isoload tls --out DIR) to ship to every host." },
    "insecure-http": { type: "boolean", help: "Serve plain HTTP (registries.conf says insecure = true): no TLS material." },
    tls: { type: "boolean", help: "Accepted for compatibility: TLS is the default." },
    rendezvous: { type: "string", arg: "ADDR", help: "Without --tls-dir: host0's address for the certificate (default: --mirror's host)." },
    cluster: { type: "string", arg: "NAME", help: "Without --tls-dir: the cluster's name, for api-int.<cluster>.<base domain>." },
    "base-domain": { type: "string", arg: "DOMAIN", help: "Without --tls-dir: install-config baseDomain." },
    "cluster-domain": { type: "string", arg: "DOMAIN", help: "Without --tls-dir: <cluster>.<base domain> in one." },
    hostname: { type: "string", arg: "NAME", multiple: true, help: "Without --tls-dir: a further name for the certificate." },
    ip: { type: "string", arg: "ADDR", multiple: true, help: "Without --tls-dir: a further address for the certificate." },
    "certs-dir": { type: "string", arg: "DIR", default: DEFAULT_CERTS_DIR, help: "Where registry CAs are trusted on the hosts." },
    expect: { type: "string", arg: "FILE", help: "The image list to ship as /etc/isoload/images.json (isoload inspect --json)." },
    "wait-timeout": { type: "string", arg: "DURATION", help: "Accepted for compatibility: hosts no longer wait for host0." },
  },
  examples: [
    "isoload units --mirror 192.168.111.20:22625 --tls-dir ./tls --expect images.json --out ./units --format ignition",
    "isoload units --mirror 192.168.111.20:22625 --mode storage --tls-dir ./tls --expect images.json --out ./units",
    "isoload units --mirror 192.168.111.20:22625 --data-dir /var/mnt/data/isoload --expect images.json --out ./units",
    "isoload tls --out ./tls --rendezvous 192.168.111.20 --cluster ocp --base-domain example.com   # before: the cluster's TLS",
    "isoload inspect --json 'mirror_*.tar' > images.json                                             # before: the image list",
  ],
  positionals: 0,
  parse(v) {
    const role = str(v, "role") ?? "all";
    if (role !== "all" && role !== "host0" && role !== "node") {
      throw new UsageError(`--role must be all, host0 or node, got ${JSON.stringify(role)}`);
    }
    const mode = str(v, "mode") ?? "registry";
    if (mode !== "registry" && mode !== "storage") {
      throw new UsageError(`--mode must be registry or storage, got ${JSON.stringify(mode)}`);
    }
    const format = str(v, "format") ?? "files";
    if (format !== "files" && format !== "ignition") {
      throw new UsageError(`--format must be files or ignition, got ${JSON.stringify(format)}`);
    }
    const mirror = parseHostPort(required(v, "mirror"), "--mirror");
    const before = list(v, "before").flatMap((b) => b.split(/[\s,]+/)).filter(Boolean);
    for (const u of before) {
      if (!/^[\w@:.\\-]+\.[a-z]+$/.test(u)) {
        throw new UsageError(`--before wants unit names such as crio.service, got ${JSON.stringify(u)}`);
      }
    }
    if (str(v, "wait-timeout") !== undefined) parseDuration(str(v, "wait-timeout")!, "--wait-timeout");
    const dataDir = str(v, "data-dir");
    if (mode === "registry" && dataDir === undefined && (str(v, "registry-command") || str(v, "registry-image"))) {
      throw new UsageError("--registry-command and --registry-image serve a --data-dir copy: give --data-dir DIR");
    }
    const tlsDir = str(v, "tls-dir");
    const naming = ["rendezvous", "cluster", "base-domain", "cluster-domain", "hostname", "ip"].find((n) => v[n] !== undefined);
    if (v["insecure-http"] && (tlsDir !== undefined || v.tls || naming)) {
      throw new UsageError(
        `--insecure-http serves plain HTTP: --${tlsDir !== undefined ? "tls-dir" : v.tls ? "tls" : naming} does not go with it`,
      );
    }
    if (tlsDir !== undefined && naming) {
      throw new UsageError(`--${naming} names the certificate units makes: --tls-dir brings one already made`);
    }
    const binary = str(v, "binary") ?? "/usr/local/bin/isoload";
    const source = str(v, "source") ?? DEFAULT_SOURCE;
    for (const [name, p] of [["--binary", binary], ["--source", source], ["--data-dir", dataDir ?? "/"]]) {
      if (!p.startsWith("/")) throw new UsageError(`${name} must be an absolute path on the host, got ${JSON.stringify(p)}`);
    }
    const names = parseTlsNames({ ...v, rendezvous: str(v, "rendezvous") ?? mirror.slice(0, mirror.lastIndexOf(":")) });
    return {
      units: {
        role,
        mode,
        mirror,
        source,
        dataDir: mode === "registry" ? dataDir : undefined,
        storageDataDir: dataDir ?? "/var/lib/isoload",
        before: before.length ? before : DEFAULT_BEFORE,
        binary,
        registryCommand: str(v, "registry-command"),
        registryImage: str(v, "registry-image"),
        certsDir: str(v, "certs-dir") ?? DEFAULT_CERTS_DIR,
      },
      tls: v["insecure-http"] ? { insecureHttp: true } : tlsDir !== undefined ? { dir: tlsDir } : { make: names },
      expectFile: str(v, "expect"),
      out: required(v, "out"),
      format,
    };
  },
  async run(o, log) {
    // Checked as a list before it is shipped.
    const expectText = o.expectFile ? (await expectedFromFile(o.expectFile), await Deno.readTextFile(o.expectFile)) : undefined;
    await writeUnits({ ...o.units, expectText }, o.tls, o.out, o.format, log);
    return ExitCode.ok;
  },
};
