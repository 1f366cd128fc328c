/**
 * `isoload machine-configs`: the manifests for an agent install's extra
 * manifests (`openshift/` beside install-config.yaml) that keep the images
 * pullable on the installed cluster. Reads the TLS directory, hashes the
 * binary, lists the images; the rendering is src/host/cluster_manifests.ts.
 */
import { join, resolve } from "node:path";
import { runningIsoloadBinary } from "../util/own_binary.ts";
import { atomicWrite } from "../util/atomic_write.ts";
import { ExitCode, InputError, UsageError, wrapFsError } from "../util/errors.ts";
import { type Command, list, parseHostPort, required, sourceRegistry, str } from "./_command.ts";
import { looksLikeDomain } from "../image/reference.ts";
import type { Logger } from "../util/log.ts";
import { digestHex, newHasher } from "../image/digest.ts";
import { mergeImages } from "../image/loaded_image.ts";
import { inspect } from "./inspect.ts";
import { type Manifest, renderClusterManifests } from "../host/cluster_manifests.ts";
import { MAX_MANIFEST_BYTES } from "../host/machine_config.ts";
import { formatBytes } from "../util/log.ts";

/**
 * Where isoload's things are on the agent ISO unless told otherwise: the ISO
 * keeps the RHCOS live ISO's volume label (`rhcos-<version>`, what the
 * appliance's udev rule matches), and the archive's parts and the binary sit
 * in its images/ directory.
 */
export const ISO_DEFAULTS = { label: "rhcos-*", binary: "images/isoload", archive: "images/mirror_*.tar" } as const;

/** What the command is given, parsed. */
export interface MachineConfigsOptions {
  out: string;
  tlsDir: string;
  cluster: string;
  baseDomain: string;
  binary: string;
  /** Archives, directories or data directories whose images the mirror sets list. */
  sources: string[];
  /** HOST:PORT of the rendezvous host and the other control-plane nodes, in the order nodes ask them. */
  peers: string[];
  isoLabel: string;
  isoBinary: string;
  isoArchive: string;
  sourceRegistry?: string;
}

/** sha256 (hex) of a file, streamed. */
export async function fileSha256(path: string, what: string): Promise<string> {
  const h = newHasher();
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new InputError(`Cannot read ${what} ${path}: it does not exist`, { cause: e });
    throw wrapFsError(`read ${what} ${path}`, e);
  }
  try {
    for await (const chunk of f.readable) h.update(chunk);
  } catch (e) {
    throw wrapFsError(`read ${what} ${path}`, e);
  }
  return digestHex(h.digest());
}

async function readPem(dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new InputError(`Cannot use the TLS directory ${dir}: cannot read ${path} (isoload tls --out ${dir} makes it)`, { cause: e });
  }
  if (!text.includes("-----BEGIN ")) throw new InputError(`Cannot use the TLS directory ${dir}: ${path} is not PEM`);
  return text;
}

/** Renders the manifests for the options (reading the files they name). */
export async function buildClusterManifests(o: MachineConfigsOptions): Promise<Manifest[]> {
  const tlsDir = resolve(o.tlsDir);
  const [caPem, serverCertPem, serverKeyPem] = [
    await readPem(tlsDir, "ca.crt"),
    await readPem(tlsDir, "server.crt"),
    await readPem(tlsDir, "server.key"),
  ];
  const binarySha256 = await fileSha256(o.binary, "the isoload binary");
  const lists = [];
  for (const s of o.sources) lists.push((await inspect([s], { sourceRegistry: o.sourceRegistry })).images);
  const images = mergeImages(...lists);
  if (!images.length) throw new InputError(`Cannot write mirror sets: ${o.sources.join(" ")} holds no images`);
  return renderClusterManifests({ ...o, binarySha256, caPem, serverCertPem, serverKeyPem, images });
}

/** Writes the manifests into `out` (each atomically); returns the paths written. */
export async function writeMachineConfigs(o: MachineConfigsOptions, log: Logger): Promise<string[]> {
  const manifests = await buildClusterManifests(o);
  for (const m of manifests) {
    const size = new TextEncoder().encode(m.text).length;
    // The objects live in etcd; a list of thousands of repositories is the only thing that could grow one.
    if (size > MAX_MANIFEST_BYTES) {
      throw new InputError(
        `Cannot write ${m.file}: it would be ${formatBytes(size)}, over the ${formatBytes(MAX_MANIFEST_BYTES)} kept for etcd`,
      );
    }
  }
  const paths = [];
  for (const m of manifests) {
    const path = join(o.out, m.file);
    // The master MachineConfig carries the registry's key: readable by root only.
    await atomicWrite(path, m.text, { mode: m.file.includes("master") ? 0o600 : 0o644 });
    paths.push(path);
  }
  log.info(`Wrote ${paths.join(", ")}`);
  return paths;
}

/** HOST or HOST:PORT (port 22625 unless given; an IPv6 address in brackets). */
function peerAddress(h: string): string {
  const withPort = /^\[.*\]:\d+$|^[^:]+:\d+$/.test(h) ? h : `${h}:22625`;
  return parseHostPort(withPort, "--rendezvous and --peer");
}

/** `isoload machine-configs --out DIR --tls-dir DIR --cluster NAME --base-domain DOMAIN --source PATH…`. */
export const machineConfigsCommand: Command<MachineConfigsOptions> = {
  summary: "Write the MachineConfigs and mirror sets that keep the images pullable on the installed cluster",
  usage: "isoload machine-configs --out DIR --tls-dir DIR --cluster NAME --base-domain DOMAIN --source PATH… [--binary PATH]\n" +
    "                               [--rendezvous HOST[:PORT]] [--peer HOST[:PORT]…] [--iso-label PATTERN] [--iso-binary PATH]\n" +
    "                               [--iso-archive GLOB]",
  description: "Writes, for the agent install's extra manifests (the openshift/ directory beside install-config.yaml):\n" +
    "  99_openshift-machineconfig_99-master-isoload.yaml  control-plane nodes: /usr/local/bin/isoload-boot, the cluster's\n" +
    "      CA, server certificate and key (0600) in /etc/isoload/tls, and two units ordered before\n" +
    "      machine-config-daemon-pull/-firstboot, crio and kubelet: isoload-binary.service puts isoload on the disk (from\n" +
    "      the ISO, found by its volume label and mounted read-only, else from a peer's registry; checked against the\n" +
    "      binary's sha256 written here) and isoload-registry.service serves the images at 22625 from /var/lib/isoload,\n" +
    "      with what it lacks from the ISO in place when attached (copied to the disk in the background, so the images\n" +
    "      outlive the ISO), else from api-int and the peers (copied as asked and in the background)\n" +
    "  99_openshift-machineconfig_99-worker-isoload.yaml  workers: trust of the CA (system anchors and certs.d for api-int)\n" +
    "  99_isoload-image-digest-mirror-set.yaml, 99_isoload-image-tag-mirror-set.yaml  every source repository of the\n" +
    "      images mirrored to localhost:22625 first, then api-int.<cluster>.<domain>:22625\n" +
    "No binary rides in a manifest: each stays well under 1 MB. Same options, same bytes.",
  options: {
    out: { type: "string", arg: "DIR", help: "The install's extra-manifests directory (created)." },
    "tls-dir": { type: "string", arg: "DIR", help: "The cluster's TLS directory (isoload tls --out DIR): ca.crt, server.crt, server.key." },
    cluster: { type: "string", arg: "NAME", help: "The cluster name (install-config metadata.name)." },
    "base-domain": { type: "string", arg: "DOMAIN", help: "The base domain (install-config baseDomain)." },
    source: {
      type: "string",
      arg: "PATH",
      multiple: true,
      help: "The archive (or directory, or loaded data directory) whose images the mirror sets list (repeatable).",
    },
    binary: {
      type: "string",
      arg: "PATH",
      help: "The isoload binary the nodes install, as shipped on the ISO (default: this isoload when compiled).",
    },
    rendezvous: {
      type: "string",
      arg: "HOST[:PORT]",
      help: "host0's address: a peer the nodes ask after api-int (port 22625 unless given).",
    },
    peer: {
      type: "string",
      arg: "HOST[:PORT]",
      multiple: true,
      help: "Another control-plane node's address, asked after the rendezvous host (repeatable).",
    },
    "iso-label": { type: "string", arg: "PATTERN", default: ISO_DEFAULTS.label, help: "The ISO's volume label, a shell pattern." },
    "iso-binary": { type: "string", arg: "PATH", default: ISO_DEFAULTS.binary, help: "The isoload binary's path inside the ISO." },
    "iso-archive": {
      type: "string",
      arg: "GLOB",
      default: ISO_DEFAULTS.archive,
      help: "The image archive's path inside the ISO (a glob of its parts).",
    },
    "source-registry": { type: "string", arg: "HOST", help: "Registry for image names that carry none." },
  },
  examples: [
    "isoload machine-configs --out install/openshift --tls-dir tls --cluster ocp --base-domain example.com \\\n" +
    "    --source 'images/mirror_*.tar' --binary dist/isoload --rendezvous 192.168.111.20 --peer 192.168.111.21 --peer 192.168.111.22",
  ],
  positionals: 0,
  parse(v) {
    const out = required(v, "out");
    const tlsDir = required(v, "tls-dir");
    const cluster = required(v, "cluster");
    const baseDomain = required(v, "base-domain");
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(cluster)) {
      throw new UsageError(`--cluster must be a DNS label, got ${JSON.stringify(cluster)}`);
    }
    if (!looksLikeDomain(baseDomain)) throw new UsageError(`--base-domain must be a DNS domain, got ${JSON.stringify(baseDomain)}`);
    const sources = list(v, "source");
    if (!sources.length) throw new UsageError("--source is required: the archive whose images the mirror sets list");
    const binary = str(v, "binary") ?? runningIsoloadBinary();
    if (!binary) throw new UsageError("--binary is required when isoload runs from source (give the compiled isoload the ISO carries)");
    const rendezvous = str(v, "rendezvous");
    const peers = [...(rendezvous ? [rendezvous] : []), ...list(v, "peer")].map(peerAddress);
    const isoLabel = str(v, "iso-label") ?? ISO_DEFAULTS.label;
    const isoBinary = str(v, "iso-binary") ?? ISO_DEFAULTS.binary;
    const isoArchive = str(v, "iso-archive") ?? ISO_DEFAULTS.archive;
    for (const [name, p] of [["iso-binary", isoBinary], ["iso-archive", isoArchive]]) {
      if (p === "" || p.startsWith("/") || p.split("/").includes("..")) {
        throw new UsageError(`--${name} is a path inside the ISO, got ${JSON.stringify(p)}`);
      }
    }
    return {
      out,
      tlsDir,
      cluster,
      baseDomain,
      binary,
      sources,
      peers,
      isoLabel,
      isoBinary,
      isoArchive,
      sourceRegistry: sourceRegistry(v),
    };
  },
  async run(o, log) {
    await writeMachineConfigs(o, log);
    return ExitCode.ok;
  },
};
