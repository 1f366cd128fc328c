/**
 * `isoload load`: its options, help and usage rules, and the choice between
 * registry mode (load_registry.ts), storage mode (load_storage.ts) and serving
 * in place while loading (serve_builtin.ts).
 */
import { resolve } from "node:path";
import { DEFAULT_CERTS_DIR } from "../host/ca_install.ts";
import { DEFAULT_REGISTRIES_CONF } from "../host/registries_conf_file.ts";
import { ExitCode, UsageError } from "../util/errors.ts";
import {
  type Command,
  list,
  parseHostPort,
  parseJobs,
  peerTrust,
  refuse,
  required,
  type ServingOptions,
  servingOptions,
  sourceRegistry,
  SOURCES_HELP,
  str,
} from "./_command.ts";
import { isPeerAddress, parsePeerUrl } from "../peer/peer.ts";
import { DEFAULT_PEER_JOBS } from "../peer/replicate.ts";
import { load, type LoadOptions } from "./load_registry.ts";
import { DEFAULT_PIN_FILE, defaultJobs, loadStorage, type StorageLoadOptions } from "./load_storage.ts";
import { builtinTls, checkListenable, contentInPlace, runBuiltin } from "./serve_builtin.ts";
import { Landings } from "../store/landings.ts";
/** What `isoload load` was asked: a storage-mode load, or a registry-mode load (served while it runs with --serve). */
export type LoadCliOptions =
  | { mode: "storage"; storage: StorageLoadOptions }
  | { mode: "registry"; load: LoadOptions; serve?: ServingOptions & { accessLog: boolean } };

/** Options that only registry mode takes. */
const REGISTRY_ONLY = [
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
];
/** Options that only a load from peers takes. */
const PEER_ONLY = ["ca", "tls-dir"];
/** Options that only --serve takes. */
const SERVE_ONLY = ["builtin", "listen", "access-log", "hostname", "ip"];

/** The rule for a data directory in memory, for the help. */
const RAM_TARGET_HELP = "A DIR on a RAM-backed file system (tmpfs, ramfs; the live ISO's /var is one) is refused before any work\n" +
  "(exit 5) when what the load would write there (the archive's bytes less blobs already in DIR) is more than half\n" +
  "of MemAvailable (/proc/meminfo): serve the archive in place instead (serve --source), or load onto a disk.\n" +
  "--allow-ram-target loads anyway.";

/** `isoload load SOURCE… --data-dir DIR`. */
export const loadCommand: Command<LoadCliOptions> = {
  summary: "Make an archive's images available: as a registry storage tree, or in containers-storage",
  usage: "isoload load SOURCE… --data-dir DIR [--mode registry] [--mirror HOST:PORT] [--registries-conf FILE | --no-registries-conf]\n" +
    "                    [--source-registry HOST] [--tls] [--serve [--listen HOST:PORT] [--hostname NAME…] [--ip ADDR…]]\n" +
    "       isoload load SOURCE… --data-dir DIR --mode storage [--storage-conf FILE] [--jobs N] [--pin FILE|none] [--keep]\n" +
    "       isoload load https://PEER:PORT… --data-dir DIR [--ca FILE] [--tls-dir DIR] [--certs-dir DIR] [--jobs N] [--mirror …]",
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
    "failure is listed at the end and the exit is non-zero.\n" +
    "\n" +
    "Replication (registry mode): SOURCE may be one or more peer isoload registries (http:// or https://HOST:PORT,\n" +
    "serving with isoload serve). The image list, with the source names, comes from the first that answers; then\n" +
    "every manifest and blob is copied by digest, --jobs at once, spread over the peers, each verified and written\n" +
    "as from an archive: DIR ends up as a load of the archive would leave it. A peer that fails or goes away is not\n" +
    "fatal while another has the blob; one that serves wrong bytes is not asked for that blob again. Blobs in place\n" +
    "are not copied again, so a re-run after a kill finishes the copy. The peers' CA: --ca FILE, --tls-dir DIR\n" +
    "(its ca.crt), --certs-dir DIR (DIR/HOST:PORT/ca.crt). Exit 5 when no peer answers or none can give a blob, 3\n" +
    "when every peer that has a blob serves bytes that do not match it.\n" +
    "\n" +
    SOURCES_HELP + "\n" +
    "\n" +
    RAM_TARGET_HELP,
  options: {
    "data-dir": { type: "string", arg: "DIR", help: "Where the storage tree (or scratch) and isoload's records go (created if absent)." },
    "allow-ram-target": { type: "boolean", help: "Load into a RAM-backed DIR (tmpfs, ramfs) even past half of MemAvailable." },
    mode: { type: "string", arg: "MODE", default: "registry", help: "registry or storage." },
    mirror: {
      type: "string",
      arg: "HOST:PORT",
      default: "127.0.0.1:22625",
      multiple: true,
      help: "registry mode: address clients reach the registry at; repeat to list further mirrors, tried in order\n" +
        " ".repeat(31) + "(this host's registry first, then host0's: a pull fails over to the next).",
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
      help: "registry mode with --tls: where host0's trust of the CA goes (DIR/HOST:PORT/ca.crt); from peers: where\n" +
        " ".repeat(30) + "a peer's CA is also looked for (DIR/HOST:PORT/ca.crt).",
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
      help: "storage mode: copies run at once (default: CPUs, at most 4). From peers: blobs copied at once (default 4).",
    },
    ca: { type: "string", arg: "FILE", multiple: true, help: "From peers: a CA the peers' certificates chain to (repeatable)." },
    "tls-dir": { type: "string", arg: "DIR", help: "From peers: trust DIR/ca.crt, the cluster CA (isoload tls --out DIR)." },
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
    "isoload load '/run/media/iso/images/mirror_*.tar' --data-dir /var/lib/isoload   # a multi-part oc-mirror archive",
    "isoload load /run/media/iso/images.tar.00 /run/media/iso/images.tar.01 --data-dir /mnt/disk/isoload   # a split tar",
    "isoload load https://master-0:22625 https://master-1:22625 --data-dir /var/lib/isoload --tls-dir /etc/isoload/tls",
  ],
  positionals: -1,
  parse(v, pos) {
    const mode = str(v, "mode") ?? "registry";
    if (mode !== "registry" && mode !== "storage") {
      throw new UsageError(`--mode must be registry or storage, got ${JSON.stringify(mode)}`);
    }
    const peerUrls = pos.filter(isPeerAddress);
    if (peerUrls.length && peerUrls.length !== pos.length) {
      throw new UsageError("give either peer registries (https://HOST:PORT…) or an archive as SOURCE, not both");
    }
    if (pos.length === 0) throw new UsageError("expected SOURCE (one or more paths or quoted globs), got none");
    if (!peerUrls.length) refuse(v, PEER_ONLY, "goes with peer sources (https://HOST:PORT)");
    const naming = { sourceRegistry: sourceRegistry(v) };
    const dataDir = required(v, "data-dir");
    if (mode === "storage") {
      if (peerUrls.length) throw new UsageError("--mode storage reads an archive, not peers");
      refuse(v, REGISTRY_ONLY, "applies to --mode registry only");
      const jobs = parseJobs(v, defaultJobs());
      const pin = str(v, "pin") ?? DEFAULT_PIN_FILE;
      if (pin === "") throw new UsageError("--pin needs a FILE or none");
      return {
        mode,
        storage: {
          sources: pos,
          allowRamTarget: v["allow-ram-target"] === true,
          dataDir,
          storageConf: str(v, "storage-conf"),
          jobs,
          pinFile: pin === "none" ? undefined : pin,
          keep: v.keep === true,
          naming,
        },
      };
    }
    refuse(v, ["storage-conf", "pin", "keep", ...(peerUrls.length ? [] : ["jobs"])], "applies to --mode storage only");
    if (!v.serve) refuse(v, SERVE_ONLY, "goes with --serve");
    if (v["no-registries-conf"] && str(v, "registries-conf")) {
      throw new UsageError("--registries-conf and --no-registries-conf exclude each other");
    }
    const [mirror, ...alsoMirrors] = (list(v, "mirror").length ? list(v, "mirror") : ["127.0.0.1:22625"])
      .map((m) => parseHostPort(m, "--mirror"));
    const load: LoadOptions = {
      sources: pos,
      allowRamTarget: v["allow-ram-target"] === true,
      dataDir,
      mirror,
      alsoMirrors,
      registriesConf: v["no-registries-conf"] ? undefined : str(v, "registries-conf") ?? DEFAULT_REGISTRIES_CONF,
      naming,
      insecure: v.tls !== true,
      certsDir: str(v, "certs-dir") ?? DEFAULT_CERTS_DIR,
      peers: peerUrls.length ? { urls: peerUrls.map(parsePeerUrl), trust: peerTrust(v), jobs: parseJobs(v, DEFAULT_PEER_JOBS) } : undefined,
    };
    if (v.serve && peerUrls.length) {
      throw new UsageError("--serve serves an archive while it loads; to serve while copying from peers, use serve --peer");
    }
    if (!v.serve) return { mode, load };
    const serving = servingOptions(v, `0.0.0.0:${mirror.slice(mirror.lastIndexOf(":") + 1)}`);
    return { mode, load, serve: { ...serving, accessLog: v["access-log"] === true } };
  },
  async run(o, log) {
    if (o.mode === "storage") {
      await loadStorage(o.storage, log);
      return ExitCode.ok;
    }
    if (!o.serve) {
      await load(o.load, log);
      return ExitCode.ok;
    }
    // Serve while loading: index the archive in place, serve it, and load in the background.
    checkListenable(o.serve.listen);
    // Clients are served from the bytes the load reads (the medium is read once), followed through these landings.
    const landings = new Landings();
    const built = await contentInPlace(o.load.sources, o.load.naming, log, { dataDir: resolve(o.load.dataDir), landings });
    return await runBuiltin(built, {
      listen: o.serve.listen,
      tls: await builtinTls(o.load.dataDir, o.serve.tls),
      readyTimeoutMs: o.serve.readyTimeoutMs,
      accessLog: o.serve.accessLog,
      during: () => load({ ...o.load, landings }, log).finally(() => landings.close()),
      dataDir: o.load.dataDir,
    }, log);
  },
};
