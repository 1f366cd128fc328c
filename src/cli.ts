/**
 * The command line: parsing, help and exit codes. Commands never see the
 * parser; they get typed options and a logger.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { inspect, renderInspect } from "./commands/inspect.ts";
import { load } from "./commands/load.ts";
import { DEFAULT_PIN_FILE, defaultJobs, loadStorage } from "./commands/load_storage.ts";
import { serve } from "./commands/serve.ts";
import { mirrorConfig } from "./commands/mirror_config.ts";
import { writeNodeRegistriesConf } from "./commands/registries_conf.ts";
import { waitForRegistry } from "./commands/wait.ts";
import { writeUnits } from "./commands/units.ts";
import { renderStatus, status } from "./commands/status.ts";
import { verifyDataDir } from "./commands/verify.ts";
import { DEFAULT_BEFORE } from "./host/units.ts";
import { DEFAULT_CERTS_DIR } from "./host/ca_install.ts";
import { describeError, ExitCode, InputError, IsoloadError, UsageError } from "./util/errors.ts";
import { builtinTls, contentFromDataDir, contentInPlace, runBuiltin } from "./commands/serve_builtin.ts";
import { type Expected, expectedFromDataDir, expectedFromFile } from "./host/expect.ts";
import { DEFAULT_REGISTRIES_CONF } from "./host/registries_conf_file.ts";
import { consoleLogger, type Logger } from "./util/log.ts";
import { isRepositoryPath, looksLikeDomain } from "./image/reference.ts";

/** One option of a command, for parsing and for help. */
interface OptionSpec {
  type: "string" | "boolean";
  help: string;
  arg?: string;
  default?: string;
  multiple?: boolean;
  /** A one-letter alias. */
  short?: string;
}

/** A command: its help and how to run it once parsed. */
interface CommandSpec {
  summary: string;
  usage: string;
  description: string;
  options: Record<string, OptionSpec>;
  examples: string[];
  positionals: number;
  run(values: Values, positionals: string[], log: Logger): Promise<number>;
}

type Values = Record<string, string | boolean | string[] | undefined>;

const COMMON: Record<string, OptionSpec> = {
  quiet: { type: "boolean", short: "q", help: "Print only warnings and errors." },
  "log-format": { type: "string", arg: "FORMAT", default: "text", help: "text, or json: one JSON object a line on stderr." },
  help: { type: "boolean", short: "h", help: "Show this help." },
};

function str(v: Values, name: string): string | undefined {
  const x = v[name];
  return typeof x === "string" ? x : undefined;
}

function required(v: Values, name: string): string {
  const x = str(v, name);
  if (x === undefined || x === "") throw new UsageError(`--${name} is required`);
  return x;
}

/** Checks HOST:PORT (a name or IPv4 address, or [IPv6], and a port). */
export function parseHostPort(text: string, what: string): string {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new UsageError(`${what} must be HOST:PORT, got ${JSON.stringify(text)}`);
  return text;
}

/** Where the agent ISO's image archive is expected on host0 unless --source says otherwise. */
const DEFAULT_SOURCE = "/run/media/iso/images/mirror_000001.tar";

/** Parses "90s", "5m", "1h", "1h30m" or a number of seconds into milliseconds. */
export function parseDuration(text: string, what: string): number {
  const t = text.trim();
  let ms = 0;
  if (/^\d+(\.\d+)?$/.test(t)) ms = Number(t) * 1000;
  else {
    const parts = [...t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
    if (!parts.length || parts.map((p) => p[0]).join("") !== t) {
      throw new UsageError(`${what} must be a duration such as 90s, 5m or 1h, got ${JSON.stringify(text)}`);
    }
    const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    for (const p of parts) ms += Number(p[1]) * unit[p[2]];
  }
  if (!(ms > 0)) throw new UsageError(`${what} must be longer than zero, got ${JSON.stringify(text)}`);
  return ms;
}

function list(v: Values, name: string): string[] {
  const x = v[name];
  return Array.isArray(x) ? x : typeof x === "string" ? [x] : [];
}

/** The image list a node expects: from host0's data directory or from an exported file (exactly one). */
async function expected(v: Values, action: string): Promise<Expected> {
  const dir = str(v, "data-dir");
  const file = str(v, "expect");
  if (!!dir === !!file) throw new UsageError("give exactly one of --data-dir DIR or --expect FILE");
  return dir ? await expectedFromDataDir(dir, action) : await expectedFromFile(file!);
}

/** --listen, --tls with --hostname/--ip, and --ready-timeout: the options every way of serving shares. */
function servingOptions(v: Values): { listen: string; tls?: { hostnames: string[]; ips: string[] }; timeoutMs: number } {
  const timeoutMs = parseDuration(str(v, "ready-timeout") ?? "120s", "--ready-timeout");
  if (!v.tls && (list(v, "hostname").length || list(v, "ip").length)) throw new UsageError("--hostname and --ip go with --tls");
  for (const ip of list(v, "ip")) {
    if (!/^[0-9.]+$|:/.test(ip)) throw new UsageError(`--ip must be an IPv4 or IPv6 address, got ${JSON.stringify(ip)}`);
  }
  const listen = parseHostPort(str(v, "listen") ?? "0.0.0.0:22625", "--listen");
  return { listen, tls: v.tls ? { hostnames: list(v, "hostname"), ips: list(v, "ip") } : undefined, timeoutMs };
}

function sourceRegistry(v: Values): string | undefined {
  const h = str(v, "source-registry");
  if (h === undefined) return undefined;
  const first = h.split("/")[0];
  if (!looksLikeDomain(first) || (h.includes("/") && !isRepositoryPath(h.slice(first.length + 1)))) {
    throw new UsageError(`--source-registry must be a registry host such as quay.io, got ${JSON.stringify(h)}`);
  }
  return h;
}

const COMMANDS: Record<string, CommandSpec> = {
  inspect: {
    summary: "Show the images an archive, directory or loaded data directory holds",
    usage: "isoload inspect SOURCE [--json] [--source-registry HOST]",
    description: "Reads SOURCE (an oc-mirror v2 archive, an OCI image layout archive, or a directory holding either) and prints its\n" +
      "format, each image (source reference, digest, media type, platforms of an index), the blob count and total bytes.\n" +
      "Nothing is written. SOURCE may also be a data directory isoload loaded: its --json report (with the registry's\n" +
      "CA when it serves TLS) is the list the other nodes are given (registries-conf and wait --expect FILE).",
    options: {
      json: { type: "boolean", help: "Print one JSON document instead of text." },
      "source-registry": { type: "string", arg: "HOST", help: "Registry for image names that carry none." },
    },
    examples: ["isoload inspect /run/media/iso/images/mirror_000001.tar", "isoload inspect ./oci-layout-dir --json"],
    positionals: 1,
    async run(v, pos) {
      const report = await inspect(pos[0], { sourceRegistry: sourceRegistry(v) });
      const out = v.json ? JSON.stringify(report, null, 2) + "\n" : renderInspect(report);
      await Deno.stdout.write(new TextEncoder().encode(out));
      return report.missing.length ? ExitCode.badInput : ExitCode.ok;
    },
  },
  load: {
    summary: "Make an archive's images available: as a registry storage tree, or in containers-storage",
    usage: "isoload load SOURCE --data-dir DIR [--mode registry] [--mirror HOST:PORT] [--registries-conf FILE | --no-registries-conf]\n" +
      "                    [--source-registry HOST] [--tls] [--serve [--listen HOST:PORT] [--hostname NAME…] [--ip ADDR…]]\n" +
      "       isoload load SOURCE --data-dir DIR --mode storage [--storage-conf FILE] [--jobs N] [--pin FILE|none] [--keep]",
    description: "Reads SOURCE (an oc-mirror v2 archive, an OCI image layout archive, or a directory holding either) in one\n" +
      "streaming pass, verifying every blob's sha256 as it streams. Re-running is safe and quick.\n" +
      "\n" +
      "--mode registry (default): lays the images out under DIR/docker/registry/v2 for a read-only registry (isoload\n" +
      "serve), records them in DIR/isoload/images.json, and writes registries.conf so pulls of the images' source\n" +
      "names go to the mirror. Blobs already in place are not read again; a complete DIR is left untouched.\n" +
      'Repositories with tags in the archive are mirrored for tag and digest pulls (pull-from-mirror = "all");\n' +
      'digest-only repositories for digest pulls ("digest-only"), as OpenShift renders an ImageDigestMirrorSet.\n' +
      "\n" +
      "--mode storage: no registry. Copies every image into containers-storage with skopeo under its source name, by\n" +
      "digest and by each tag the archive gives it (for an index, this host's platform), so CRI-O and podman find\n" +
      "quay.io/ns/repo@sha256:... locally. The archive is verified into a scratch tree under DIR, copied from there,\n" +
      "and the scratch is removed unless --keep. Images already in the store are skipped. A CRI-O drop-in pins every\n" +
      "reference against kubelet image garbage collection. One image failing does not stop the others: every\n" +
      "failure is listed at the end and the exit is non-zero.",
    options: {
      "data-dir": { type: "string", arg: "DIR", help: "Where the storage tree (or scratch) and isoload's records go (created if absent)." },
      mode: { type: "string", arg: "MODE", default: "registry", help: "registry or storage." },
      mirror: {
        type: "string",
        arg: "HOST:PORT",
        default: "127.0.0.1:22625",
        help: "registry mode: address clients reach the registry at.",
      },
      "registries-conf": {
        type: "string",
        arg: "FILE",
        default: DEFAULT_REGISTRIES_CONF,
        help: "registry mode: registries.conf to write. A file isoload did not write is merged into, with a backup.",
      },
      "no-registries-conf": { type: "boolean", help: "registry mode: write no registries.conf." },
      tls: {
        type: "boolean",
        help: "registry mode: the registry will serve HTTPS (serve --tls): make DIR's CA, trust it, no insecure = true.",
      },
      "certs-dir": {
        type: "string",
        arg: "DIR",
        default: DEFAULT_CERTS_DIR,
        help: "registry mode with --tls: where host0's trust of the CA goes (DIR/HOST:PORT/ca.crt).",
      },
      "source-registry": { type: "string", arg: "HOST", help: "Registry for image names that carry none." },
      "storage-conf": {
        type: "string",
        arg: "FILE",
        help: "storage mode: storage.conf for skopeo (CONTAINERS_STORAGE_CONF); default: the host's, CRI-O's store.",
      },
      jobs: {
        type: "string",
        arg: "N",
        default: String(defaultJobs()),
        help: "storage mode: copies run at once (default: CPUs, at most 4).",
      },
      pin: {
        type: "string",
        arg: "FILE|none",
        default: DEFAULT_PIN_FILE,
        help: "storage mode: CRI-O drop-in listing pinned_images; none: write none.",
      },
      keep: { type: "boolean", help: "storage mode: keep the scratch tree under DIR (a re-run then reads no blob again)." },
      serve: {
        type: "boolean",
        help: "registry mode: serve at once from SOURCE in place with the built-in registry while the load copies it into DIR;\n" +
          " ".repeat(30) + "each blob switches to its verified copy in DIR once landed. Runs until SIGTERM.",
      },
      builtin: { type: "boolean", help: "With --serve: the built-in registry (the only one --serve runs)." },
      listen: { type: "string", arg: "HOST:PORT", help: "With --serve: address to listen on (default 0.0.0.0 and --mirror's port)." },
      "access-log": { type: "boolean", help: "With --serve: one log line per request." },
      "ready-timeout": { type: "string", arg: "DURATION", default: "120s", help: "With --serve: how long to wait for readiness." },
      hostname: { type: "string", arg: "NAME", multiple: true, help: "With --serve --tls: a name nodes reach host0 by (repeatable)." },
      ip: { type: "string", arg: "ADDR", multiple: true, help: "With --serve --tls: an address nodes reach host0 at (repeatable)." },
    },
    examples: [
      "isoload load /run/media/iso/images/mirror_000001.tar --data-dir /var/lib/isoload",
      "isoload load /run/media/iso/images/mirror_000001.tar --data-dir /var/lib/isoload --mirror host0.example.com:22625 --tls",
      "isoload load images.oci.tar --data-dir /var/lib/isoload --mirror host0.example.com:22625 --registries-conf /tmp/r.conf",
      "isoload load /run/media/iso/images/mirror_000001.tar --data-dir /var/tmp/isoload --mode storage",
      "isoload load images.oci.tar --data-dir /tmp/x --mode storage --storage-conf ./storage.conf --pin none --jobs 2",
      "isoload load /run/media/iso/images/mirror_000001.tar --data-dir /var/lib/isoload --serve   # pullable in seconds",
    ],
    positionals: 1,
    async run(v, pos, log) {
      const mode = str(v, "mode") ?? "registry";
      if (mode !== "registry" && mode !== "storage") {
        throw new UsageError(`--mode must be registry or storage, got ${JSON.stringify(mode)}`);
      }
      const only = (names: string[], m: string) => {
        const given = names.filter((n) => v[n] !== undefined);
        if (given.length) throw new UsageError(`--${given[0]} applies to --mode ${m} only`);
      };
      const naming = { sourceRegistry: sourceRegistry(v) };
      const dataDir = required(v, "data-dir");
      if (mode === "storage") {
        only([
          "mirror",
          "registries-conf",
          "no-registries-conf",
          "tls",
          "certs-dir",
          "serve",
          "builtin",
          "listen",
          "access-log",
          "hostname",
          "ip",
        ], "registry");
        const jobs = Number(str(v, "jobs") ?? defaultJobs());
        if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) {
          throw new UsageError(`--jobs must be a whole number from 1 to 64, got ${str(v, "jobs")}`);
        }
        const pin = str(v, "pin") ?? DEFAULT_PIN_FILE;
        if (pin === "") throw new UsageError("--pin needs a FILE or none");
        await loadStorage({
          source: pos[0],
          dataDir,
          storageConf: str(v, "storage-conf"),
          jobs,
          pinFile: pin === "none" ? undefined : pin,
          keep: v.keep === true,
          naming,
        }, log);
        return ExitCode.ok;
      }
      only(["storage-conf", "jobs", "pin", "keep"], "storage");
      if (!v.serve) {
        const serving = ["builtin", "listen", "access-log", "hostname", "ip"].find((n) => v[n] !== undefined);
        if (serving) throw new UsageError(`--${serving} goes with --serve`);
      }
      if (v["no-registries-conf"] && str(v, "registries-conf")) {
        throw new UsageError("--registries-conf and --no-registries-conf exclude each other");
      }
      const mirror = parseHostPort(str(v, "mirror") ?? "127.0.0.1:22625", "--mirror");
      const loadOptions = {
        source: pos[0],
        dataDir,
        mirror,
        registriesConf: v["no-registries-conf"] ? undefined : str(v, "registries-conf") ?? DEFAULT_REGISTRIES_CONF,
        naming,
        insecure: v.tls !== true,
        certsDir: str(v, "certs-dir") ?? DEFAULT_CERTS_DIR,
      };
      if (!v.serve) {
        await load(loadOptions, log);
        return ExitCode.ok;
      }
      // Serve while loading: index the archive in place, serve it, and load in the background.
      const { listen, tls, timeoutMs } = servingOptions({
        ...v,
        listen: str(v, "listen") ?? `0.0.0.0:${mirror.slice(mirror.lastIndexOf(":") + 1)}`,
      });
      const built = await contentInPlace(pos[0], naming, log, resolve(dataDir));
      return await runBuiltin(built, {
        listen,
        tls: await builtinTls(dataDir, tls),
        readyTimeoutMs: timeoutMs,
        accessLog: v["access-log"] === true,
        during: () => load(loadOptions, log),
      }, log);
    },
  },
  serve: {
    summary: "Run a read-only registry over a loaded data directory, or straight from an archive in place",
    usage: "isoload serve --data-dir DIR [--listen HOST:PORT] [--builtin | --registry-command PATH | --registry-image REF] [--tls …]\n" +
      "       isoload serve --source ARCHIVE|DIR [--data-dir DIR] [--builtin] [--listen HOST:PORT] [--tls …]",
    description: "Runs a read-only registry in the foreground. --builtin (the default when no registry is named) is isoload's own\n" +
      "server: the pull side of the OCI Distribution Specification, nothing else needed. --registry-command runs a\n" +
      "distribution registry binary over DIR; --registry-image runs the registry image under podman (when REF is not\n" +
      "in containers-storage but is one of DIR's images, it is loaded from DIR first).\n" +
      "--source serves an oc-mirror or OCI-layout archive (or a directory, such as the mounted ISO) in place, with\n" +
      "no copy: one pass over its entries, then blobs as byte ranges of it, each checked against its digest the first\n" +
      "time it is served. Once /v2/ answers and every manifest is served by digest, prints one line and tells systemd\n" +
      "READY=1. SIGTERM or SIGINT stops it (in-flight downloads get 10 s); if an external registry dies, exits non-zero.",
    options: {
      "data-dir": { type: "string", arg: "DIR", help: "A data directory isoload load completed (with --source: only for --tls)." },
      source: { type: "string", arg: "PATH", help: "Serve this archive or directory in place (built-in server)." },
      listen: { type: "string", arg: "HOST:PORT", default: "0.0.0.0:22625", help: "Address the registry listens on." },
      builtin: { type: "boolean", help: "Use isoload's own registry server (the default)." },
      "registry-command": { type: "string", arg: "PATH", help: "A distribution registry binary (e.g. /usr/bin/docker-registry)." },
      "registry-image": { type: "string", arg: "REF", help: "A registry image to run with podman (--net host, DIR read-only)." },
      "access-log": { type: "boolean", help: "Built-in: one log line per request." },
      "ready-timeout": { type: "string", arg: "DURATION", default: "120s", help: "How long to wait for readiness (90s, 5m, …)." },
      tls: {
        type: "boolean",
        help: "Serve HTTPS: a CA and server certificate are made in DIR/isoload/tls on first use and kept.",
      },
      hostname: {
        type: "string",
        arg: "NAME",
        multiple: true,
        help: "With --tls: a name the nodes reach host0 by (repeatable; localhost is always included).",
      },
      ip: {
        type: "string",
        arg: "ADDR",
        multiple: true,
        help: "With --tls: an address the nodes reach host0 at (repeatable; 127.0.0.1 and ::1 are always included).",
      },
      "source-registry": { type: "string", arg: "HOST", help: "With --source: registry for image names that carry none." },
    },
    examples: [
      "isoload serve --data-dir /var/lib/isoload",
      "isoload serve --source /run/media/iso/images/mirror_000001.tar --listen 0.0.0.0:22625",
      "isoload serve --data-dir /var/lib/isoload --registry-command /usr/bin/docker-registry --tls --hostname host0.example.com --ip 192.168.111.20",
    ],
    positionals: 0,
    async run(v, _pos, log) {
      const cmd = str(v, "registry-command");
      const image = str(v, "registry-image");
      const source = str(v, "source");
      if ([!!cmd, !!image, v.builtin === true].filter(Boolean).length > 1) {
        throw new UsageError("give at most one of --builtin, --registry-command or --registry-image");
      }
      const { listen, tls, timeoutMs } = servingOptions(v);
      if (cmd || image) {
        if (source) throw new UsageError("--source is served by the built-in server only");
        if (v["access-log"]) throw new UsageError("--access-log goes with the built-in server");
        return await serve(
          { dataDir: required(v, "data-dir"), listen, registryCommand: cmd, registryImage: image, readyTimeoutMs: timeoutMs, tls },
          log,
        );
      }
      const dataDir = str(v, "data-dir");
      if (!source && !dataDir) throw new UsageError("give --data-dir DIR, or --source PATH to serve an archive in place");
      const built = source
        ? await contentInPlace(source, { sourceRegistry: sourceRegistry(v) }, log)
        : await contentFromDataDir(resolve(dataDir!));
      return await runBuiltin(
        built,
        { listen, tls: await builtinTls(dataDir, tls), readyTimeoutMs: timeoutMs, accessLog: v["access-log"] === true },
        log,
      );
    },
  },
  "registries-conf": {
    summary: "Point a node (not host0) at host0's registry: registries.conf and the registry's CA",
    usage: "isoload registries-conf --mirror HOST:PORT (--data-dir DIR | --expect FILE) [--certs-dir DIR] [--out FILE]",
    description: "Writes the registries.conf of a node that pulls from host0, during install and after it boots the final\n" +
      "image: one [[registry]] per source repository of the images, host0's registry first, with the same rules as\n" +
      "host0's own (validated, atomic, a drop-in by default, same bytes for the same input). The image list comes from\n" +
      "host0's data directory or from a file exported from it (isoload inspect --json DIR). When the registry serves\n" +
      "TLS, its CA (carried in that list, or already in --certs-dir) is installed at DIR/HOST:PORT/ca.crt and no\n" +
      "insecure = true is written.",
    options: {
      mirror: { type: "string", arg: "HOST:PORT", help: "Address the node reaches host0's registry at." },
      "data-dir": { type: "string", arg: "DIR", help: "host0's data directory (on host0 itself)." },
      expect: { type: "string", arg: "FILE", help: "The image list exported from host0 (isoload inspect --json DIR)." },
      "certs-dir": { type: "string", arg: "DIR", default: DEFAULT_CERTS_DIR, help: "Where containers/image looks for registry CAs." },
      out: { type: "string", arg: "FILE", default: DEFAULT_REGISTRIES_CONF, help: "registries.conf or drop-in to write." },
    },
    examples: [
      "isoload registries-conf --mirror 192.168.111.20:22625 --expect /etc/isoload/images.json",
      "isoload inspect --json /var/lib/isoload > images.json   # on host0: the list (and CA) to give the nodes",
    ],
    positionals: 0,
    async run(v, _pos, log) {
      await writeNodeRegistriesConf(await expected(v, "write registries.conf"), {
        mirror: parseHostPort(required(v, "mirror"), "--mirror"),
        certsDir: str(v, "certs-dir") ?? DEFAULT_CERTS_DIR,
        out: str(v, "out") ?? DEFAULT_REGISTRIES_CONF,
      }, log);
      return ExitCode.ok;
    },
  },
  wait: {
    summary: "Wait until host0's registry serves every expected image",
    usage: "isoload wait --mirror HOST:PORT (--data-dir DIR | --expect FILE) [--certs-dir DIR] [--timeout DURATION]",
    description: "Probes the registry at HOST:PORT until /v2/ answers and every expected manifest (each image, and each\n" +
      "platform manifest of an index) is served by digest; prints progress while waiting. Exits 0 when all are\n" +
      "served, 6 on timeout naming what was missing. Uses HTTPS when the list carries the registry's CA or one is\n" +
      "installed in --certs-dir, plain HTTP otherwise.",
    options: {
      mirror: { type: "string", arg: "HOST:PORT", help: "Address of host0's registry." },
      "data-dir": { type: "string", arg: "DIR", help: "host0's data directory (on host0 itself)." },
      expect: { type: "string", arg: "FILE", help: "The image list exported from host0 (isoload inspect --json DIR)." },
      "certs-dir": { type: "string", arg: "DIR", default: DEFAULT_CERTS_DIR, help: "Where a CA installed by registries-conf is found." },
      timeout: { type: "string", arg: "DURATION", default: "30m", help: "How long to wait (90s, 5m, 1h, …)." },
    },
    examples: [
      "isoload wait --mirror 192.168.111.20:22625 --expect /etc/isoload/images.json --timeout 1h",
      "isoload wait --mirror 127.0.0.1:22625 --data-dir /var/lib/isoload --timeout 2m",
    ],
    positionals: 0,
    async run(v, _pos, log) {
      await waitForRegistry(await expected(v, "wait for the registry"), {
        mirror: parseHostPort(required(v, "mirror"), "--mirror"),
        certsDir: str(v, "certs-dir") ?? DEFAULT_CERTS_DIR,
        timeoutMs: parseDuration(str(v, "timeout") ?? "30m", "--timeout"),
      }, log);
      return ExitCode.ok;
    },
  },
  units: {
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
    async run(v, _pos, log) {
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
      for (
        const [name, p] of [["--binary", binary], ["--source", str(v, "source") ?? DEFAULT_SOURCE], [
          "--data-dir",
          str(v, "data-dir") ?? "/var/lib/isoload",
        ]]
      ) {
        if (!p.startsWith("/")) throw new UsageError(`${name} must be an absolute path on the host, got ${JSON.stringify(p)}`);
      }
      await writeUnits(
        {
          role,
          mode,
          mirror,
          source: str(v, "source") ?? DEFAULT_SOURCE,
          dataDir: str(v, "data-dir") ?? "/var/lib/isoload",
          before: before.length ? before : DEFAULT_BEFORE,
          binary,
          registryCommand: str(v, "registry-command"),
          registryImage: str(v, "registry-image"),
          tls: v.tls === true,
          hostnames: list(v, "hostname"),
          ips: list(v, "ip"),
          certsDir: str(v, "certs-dir") ?? DEFAULT_CERTS_DIR,
          // Checked as a list (and its CA) before it is shipped.
          expectText: expectFile ? (await expectedFromFile(expectFile), await Deno.readTextFile(expectFile)) : undefined,
          waitTimeout,
        },
        required(v, "out"),
        format,
        log,
      );
      return ExitCode.ok;
    },
  },
  status: {
    summary: "Show what a data directory holds, whether it is verified and served, and what isoload wrote",
    usage: "isoload status --data-dir DIR [--json]",
    description: "Prints the images and bytes loaded (registry mode) or copied into containers-storage (storage mode), whether\n" +
      "the load finished, the last full verify, whether a load runs now, whether the registry answers and at which\n" +
      "address, and the registries.conf, CA and pinned-images files isoload wrote. Changes nothing.",
    options: {
      "data-dir": { type: "string", arg: "DIR", help: "A data directory isoload loaded." },
      json: { type: "boolean", help: "Print one JSON document instead of text." },
    },
    examples: ["isoload status --data-dir /var/lib/isoload", "isoload status --data-dir /var/lib/isoload --json | jq .registry.serving"],
    positionals: 0,
    async run(v) {
      const report = await status(required(v, "data-dir"));
      await Deno.stdout.write(new TextEncoder().encode(v.json ? JSON.stringify(report, null, 2) + "\n" : renderStatus(report)));
      return ExitCode.ok;
    },
  },
  verify: {
    summary: "Re-hash every blob and check every link of a data directory",
    usage: "isoload verify --data-dir DIR [--json]",
    description: "Reads every blob under DIR/docker/registry/v2 and checks it hashes to its name, checks that every link file\n" +
      "names a blob that is there, and that every recorded image has all the links and blobs it needs. Each problem is\n" +
      "reported with its path. Exits 0 when all is well, 3 when anything is wrong. The result is kept for isoload status.",
    options: {
      "data-dir": { type: "string", arg: "DIR", help: "A data directory isoload loaded." },
      json: { type: "boolean", help: "Print the report as one JSON document on stdout." },
    },
    examples: ["isoload verify --data-dir /var/lib/isoload"],
    positionals: 0,
    async run(v, _pos, log) {
      const report = await verifyDataDir(required(v, "data-dir"), log);
      if (v.json) await Deno.stdout.write(new TextEncoder().encode(JSON.stringify(report, null, 2) + "\n"));
      if (!report.ok) {
        throw new InputError(
          `Cannot vouch for ${report.dataDir}: ${report.problems.length} problems (first: ${report.problems[0].path}: ${
            report.problems[0].what
          })`,
        );
      }
      return ExitCode.ok;
    },
  },
  "mirror-config": {
    summary: "Print the mirror-set YAML the installed cluster needs",
    usage: "isoload mirror-config --data-dir DIR --mirror HOST:PORT [--kind idms|itms|icsp|trusted-ca]",
    description: "Prints an ImageDigestMirrorSet (default), ImageTagMirrorSet or legacy ImageContentSourcePolicy mapping every\n" +
      "source repository of DIR's images to the mirror at HOST:PORT, for the cluster's manifests: installed nodes get\n" +
      "their registries.conf from it. When the registry serves TLS, --kind trusted-ca prints the ConfigMap (key\n" +
      "host..port) and the cluster Image config's additionalTrustedCA that make installed nodes trust its CA.",
    options: {
      "data-dir": { type: "string", arg: "DIR", help: "A data directory isoload load completed." },
      mirror: { type: "string", arg: "HOST:PORT", help: "Address the nodes reach host0's registry at." },
      kind: { type: "string", arg: "KIND", default: "idms", help: "idms, itms, icsp or trusted-ca." },
    },
    examples: [
      "isoload mirror-config --data-dir /var/lib/isoload --mirror host0.example.com:22625 > idms.yaml",
      "isoload mirror-config --data-dir /var/lib/isoload --mirror host0.example.com:22625 --kind trusted-ca > trusted-ca.yaml",
    ],
    positionals: 0,
    async run(v) {
      const kind = str(v, "kind") ?? "idms";
      if (kind !== "idms" && kind !== "itms" && kind !== "icsp" && kind !== "trusted-ca") {
        throw new UsageError(`--kind must be idms, itms, icsp or trusted-ca, got ${JSON.stringify(kind)}`);
      }
      const out = await mirrorConfig(required(v, "data-dir"), parseHostPort(required(v, "mirror"), "--mirror"), kind);
      await Deno.stdout.write(new TextEncoder().encode(out));
      return ExitCode.ok;
    },
  },
};

function optionHelp(name: string, o: OptionSpec): string {
  const flag = `${o.short ? `-${o.short}, ` : ""}--${name}${o.arg ? ` ${o.arg}` : ""}`;
  const def = o.default ? ` (default: ${o.default})` : "";
  return `  ${flag.padEnd(28)} ${o.help}${def}`;
}

/** The help text of one command. */
export function commandHelp(name: string): string {
  const c = COMMANDS[name];
  return [
    `isoload ${name}: ${c.summary}`,
    "",
    `Usage: ${c.usage}`,
    "",
    c.description,
    "",
    "Options:",
    ...Object.entries({ ...c.options, ...COMMON }).map(([n, o]) => optionHelp(n, o)),
    "",
    "Examples:",
    ...c.examples.map((e) => `  ${e}`),
    "",
  ].join("\n");
}

/** The top-level help text. */
export function mainHelp(): string {
  return [
    "isoload: make the container images of an install ISO pullable on the first host, offline.",
    "",
    "Usage: isoload <command> [options]",
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(15)} ${c.summary}`),
    "",
    "Run 'isoload <command> --help' for a command's options.",
    "",
    "Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input, 4 bad configuration file, 5 host failure",
    "(tool, disk, registry), 6 timeout, 7 data directory busy, 130 interrupted.",
    "",
    "Example:",
    "  isoload load mirror_000001.tar --data-dir /var/lib/isoload && isoload serve --data-dir /var/lib/isoload --registry-command /usr/bin/docker-registry",
    "",
  ].join("\n");
}

function out(text: string, err = false): void {
  (err ? Deno.stderr : Deno.stdout).writeSync(new TextEncoder().encode(text));
}

/** Runs the CLI and returns the exit code. */
export async function runCli(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    if (name === "help" && rest[0] && COMMANDS[rest[0]]) out(commandHelp(rest[0]));
    else out(mainHelp());
    return name ? ExitCode.ok : ExitCode.usage;
  }
  if (name === "--version") {
    out("isoload 0.1.0\n");
    return ExitCode.ok;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    out(`isoload: unknown command ${JSON.stringify(name)}\nRun 'isoload --help' for the list of commands.\n`, true);
    return ExitCode.usage;
  }
  // Until the options are parsed, a --log-format json anywhere still gets JSON errors.
  const early = rest.some((a, i) => a === "--log-format=json" || (a === "--log-format" && rest[i + 1] === "json")) ? "json" : "text";
  let log: Logger = consoleLogger(false, early, name);
  try {
    const options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {};
    for (const [n, o] of Object.entries({ ...cmd.options, ...COMMON })) {
      options[n] = { type: o.type, multiple: o.multiple === true, ...(o.short ? { short: o.short } : {}) };
    }
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
    } catch (e) {
      // node:util's messages run on ("To specify a positional argument…"): the first sentence is the cause.
      throw new UsageError((e as Error).message.split("\n")[0].split(". ")[0]);
    }
    const values = parsed.values as Values;
    if (values.help) {
      out(commandHelp(name));
      return ExitCode.ok;
    }
    if (parsed.positionals.length !== cmd.positionals) {
      throw new UsageError(
        cmd.positionals
          ? `expected ${cmd.positionals} argument (SOURCE), got ${parsed.positionals.length}`
          : `unexpected argument ${JSON.stringify(parsed.positionals[0])}`,
      );
    }
    const format = str(values, "log-format") ?? "text";
    if (format !== "text" && format !== "json") throw new UsageError(`--log-format must be text or json, got ${JSON.stringify(format)}`);
    log = consoleLogger(values.quiet === true, format, name);
    return await cmd.run(values, parsed.positionals, log);
  } catch (e) {
    if (e instanceof UsageError) {
      log.error(e.message, e.exitCode);
      if (early === "text") out(`Usage: ${cmd.usage}\nRun 'isoload ${name} --help' for details.\n`, true);
      return e.exitCode;
    }
    if (e instanceof IsoloadError) {
      log.error(describeError(e), e.exitCode);
      return e.exitCode;
    }
    log.error(`internal error: ${describeError(e)}`, ExitCode.internal);
    if (Deno.env.get("ISOLOAD_DEBUG")) console.error(e);
    return ExitCode.internal;
  }
}
