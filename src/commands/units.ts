/** `isoload units`: the boot units (or an Ignition fragment) for host0 or another node, written into a directory. */
import { basename, join } from "node:path";
import { atomicWrite } from "../util/atomic_write.ts";
import type { Logger } from "../util/log.ts";
import { DEFAULT_BEFORE, renderIgnition, renderUnits, type UnitsOptions } from "../host/units.ts";
import { DEFAULT_CERTS_DIR } from "../host/ca_install.ts";
import { expectedFromFile } from "../host/expect.ts";
import { ExitCode, UsageError } from "../util/errors.ts";
import { type Command, list, parseDuration, parseHostPort, required, str } from "./_command.ts";

/** Writes the units (`files`) or one `isoload.ign` (`ignition`) into `out`; returns the paths written. */
export async function writeUnits(opts: UnitsOptions, out: string, format: "files" | "ignition", log: Logger): Promise<string[]> {
  const rendered = renderUnits(opts);
  const written: [string, string][] = format === "ignition" ? [[join(out, "isoload.ign"), renderIgnition(rendered)]] : [
    ...rendered.units.map((u): [string, string] => [join(out, u.name), u.text]),
    ...rendered.files.map((f): [string, string] => [join(out, basename(f.path)), f.text]),
  ];
  for (const [path, text] of written) await atomicWrite(path, text);
  const what = rendered.units.map((u) => u.name).join(", ");
  log.info(`Wrote ${written.map(([p]) => p).join(", ")} (${opts.role}, ${opts.mode} mode: ${what})`);
  if (opts.role === "node" && rendered.files.length === 0) {
    log.warn("no --expect FILE given: put host0's image list (isoload inspect --json DIR) at /etc/isoload/images.json on each node");
  }
  return written.map(([p]) => p);
}

/** Where the agent ISO's image archive is expected on host0 unless --source says otherwise. */
const DEFAULT_SOURCE = "/run/media/iso/images/mirror_000001.tar";

/** What `isoload units` was asked: the units' options (less the list shipped, read at run), where and how to write. */
export interface UnitsCliOptions {
  units: Omit<UnitsOptions, "expectText">;
  /** host0's image list to ship to the nodes (checked, then read, at run). */
  expectFile?: string;
  out: string;
  format: "files" | "ignition";
}

/** `isoload units --role host0|node …`. */
export const unitsCommand: Command<UnitsCliOptions> = {
  summary: "Write the systemd units (or an Ignition fragment) that run isoload at boot",
  usage: "isoload units --role host0|node [--mode registry|storage] --mirror HOST:PORT [--source PATH] [--before UNIT…] --out DIR\n" +
    "                     [--format files|ignition] [--tls [--hostname NAME…] [--ip ADDR…]] [--expect FILE]",
  description: "host0, registry mode: isoload-load.service (oneshot, after the ISO's directory is mounted) and\n" +
    "isoload-registry.service (Type=notify, isoload serve, Restart=on-failure), both ordered before the services\n" +
    "that pull images. host0, storage mode: the load unit only, before crio and kubelet. Other nodes:\n" +
    "isoload-registries-conf.service, which writes registries.conf (and the CA) pointing at host0 and then waits\n" +
    "until host0 serves every image, before the pulling services; it reads host0's image list from\n" +
    "/etc/isoload/images.json, shipped along when --expect FILE is given. --format files writes one file per unit\n" +
    "into DIR; --format ignition writes DIR/isoload.ign, an Ignition 3 config of storage.files and systemd.units to\n" +
    "merge into the host's. Same options, same bytes.",
  options: {
    role: { type: "string", arg: "ROLE", help: "host0 (serves, or loads in storage mode) or node (pulls from host0)." },
    mode: { type: "string", arg: "MODE", default: "registry", help: "registry or storage (host0 only)." },
    mirror: { type: "string", arg: "HOST:PORT", help: "Address the nodes reach host0's registry at (registry mode)." },
    source: { type: "string", arg: "PATH", default: DEFAULT_SOURCE, help: "host0: the archive on the mounted ISO." },
    before: {
      type: "string",
      arg: "UNIT",
      multiple: true,
      help: `Units to hold back until the images are there (repeatable; default: ${DEFAULT_BEFORE.join(" ")}).`,
    },
    out: { type: "string", arg: "DIR", help: "Directory to write into (created)." },
    format: { type: "string", arg: "FORMAT", default: "files", help: "files or ignition." },
    "data-dir": { type: "string", arg: "DIR", default: "/var/lib/isoload", help: "host0: the data directory on host0." },
    binary: { type: "string", arg: "PATH", default: "/usr/local/bin/isoload", help: "Where isoload is on the hosts." },
    "registry-command": {
      type: "string",
      arg: "PATH",
      help: "host0: a registry binary for isoload serve (default: the built-in registry).",
    },
    "registry-image": { type: "string", arg: "REF", help: "host0: a registry image for isoload serve (default: the built-in registry)." },
    tls: { type: "boolean", help: "The registry serves HTTPS (serve --tls; load --tls)." },
    hostname: { type: "string", arg: "NAME", multiple: true, help: "host0 with --tls: a name nodes reach host0 by." },
    ip: { type: "string", arg: "ADDR", multiple: true, help: "host0 with --tls: an address nodes reach host0 at." },
    "certs-dir": { type: "string", arg: "DIR", default: DEFAULT_CERTS_DIR, help: "Where registry CAs are trusted." },
    expect: { type: "string", arg: "FILE", help: "node: host0's image list to ship as /etc/isoload/images.json." },
    "wait-timeout": { type: "string", arg: "DURATION", default: "1h", help: "node: how long to wait for host0's registry." },
  },
  examples: [
    "isoload units --role host0 --mirror 192.168.111.20:22625 --out ./units",
    "isoload units --role node --mirror 192.168.111.20:22625 --expect images.json --out ./units --format ignition",
    "isoload units --role host0 --mode storage --source /run/media/iso/images/mirror_000001.tar --out ./units",
  ],
  positionals: 0,
  parse(v) {
    const role = str(v, "role");
    if (role !== "host0" && role !== "node") throw new UsageError(`--role must be host0 or node, got ${JSON.stringify(role ?? "")}`);
    const mode = str(v, "mode") ?? "registry";
    if (mode !== "registry" && mode !== "storage") {
      throw new UsageError(`--mode must be registry or storage, got ${JSON.stringify(mode)}`);
    }
    if (role === "node" && mode === "storage") {
      throw new UsageError("--mode storage has no registry for other nodes: it is for --role host0");
    }
    const format = str(v, "format") ?? "files";
    if (format !== "files" && format !== "ignition") {
      throw new UsageError(`--format must be files or ignition, got ${JSON.stringify(format)}`);
    }
    const mirror = mode === "storage" ? str(v, "mirror") ?? "127.0.0.1:22625" : parseHostPort(required(v, "mirror"), "--mirror");
    const before = list(v, "before").flatMap((b) => b.split(/[\s,]+/)).filter(Boolean);
    for (const u of before) {
      if (!/^[\w@:.\\-]+\.[a-z]+$/.test(u)) {
        throw new UsageError(`--before wants unit names such as crio.service, got ${JSON.stringify(u)}`);
      }
    }
    const expectFile = str(v, "expect");
    if (expectFile && role !== "node") throw new UsageError("--expect goes with --role node");
    const waitTimeout = str(v, "wait-timeout") ?? "1h";
    parseDuration(waitTimeout, "--wait-timeout");
    const binary = str(v, "binary") ?? "/usr/local/bin/isoload";
    const source = str(v, "source") ?? DEFAULT_SOURCE;
    const dataDir = str(v, "data-dir") ?? "/var/lib/isoload";
    for (const [name, p] of [["--binary", binary], ["--source", source], ["--data-dir", dataDir]]) {
      if (!p.startsWith("/")) throw new UsageError(`${name} must be an absolute path on the host, got ${JSON.stringify(p)}`);
    }
    return {
      units: {
        role,
        mode,
        mirror,
        source,
        dataDir,
        before: before.length ? before : DEFAULT_BEFORE,
        binary,
        registryCommand: str(v, "registry-command"),
        registryImage: str(v, "registry-image"),
        tls: v.tls === true,
        hostnames: list(v, "hostname"),
        ips: list(v, "ip"),
        certsDir: str(v, "certs-dir") ?? DEFAULT_CERTS_DIR,
        waitTimeout,
      },
      expectFile,
      out: required(v, "out"),
      format,
    };
  },
  async run(o, log) {
    // Checked as a list (and its CA) before it is shipped.
    const expectText = o.expectFile ? (await expectedFromFile(o.expectFile), await Deno.readTextFile(o.expectFile)) : undefined;
    await writeUnits({ ...o.units, expectText }, o.out, o.format, log);
    return ExitCode.ok;
  },
};
