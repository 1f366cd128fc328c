/**
 * `isoload serve`: its options, help and usage rules, and the choice between
 * the built-in registry (serve_builtin.ts, with peers: serve_peers.ts) and an
 * external one (serve_external.ts).
 */
import { resolve } from "node:path";
import { InputError, UsageError } from "../util/errors.ts";
import type { NamingOptions } from "../archive/format.ts";
import {
  type Command,
  list,
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
import { DEFAULT_CERTS_DIR } from "../host/ca_install.ts";
import { parsePeerUrl } from "../peer/peer.ts";
import { DEFAULT_PEER_JOBS } from "../peer/replicate.ts";
import { type ServePeersOptions, servingWithPeers } from "./serve_peers.ts";
import { builtinTls, checkListenable, contentFromDataDir, contentInPlace, runBuiltin } from "./serve_builtin.ts";
import { servePersisting } from "./serve_persist.ts";

import { serve, type ServeOptions } from "./serve_external.ts";

/** What `isoload serve` was asked: an external registry over DIR, or the built-in one over DIR or a source in place. */
export type ServeCliOptions =
  | { server: "external"; external: ServeOptions }
  | {
    server: "builtin";
    sources?: string[];
    dataDir?: string;
    naming: NamingOptions;
    serving: ServingOptions;
    accessLog: boolean;
    /** With --peer: what DIR lacks comes from these. */
    peers?: Omit<ServePeersOptions, "listTimeoutMs" | "listen">;
    binaryFile?: string;
    /** With --source and --data-dir: copy the archive into DIR while serving it (also implied by --source with --peer). */
    persist?: boolean;
    /** With persist: copy in the background (false: --no-fill). */
    fill?: boolean;
  };

/** `isoload serve (--data-dir DIR | --source PATH…)`. */
export const serveCommand: Command<ServeCliOptions> = {
  summary: "Run a read-only registry over a loaded data directory, or straight from an archive in place",
  usage: "isoload serve --data-dir DIR [--listen HOST:PORT] [--builtin | --registry-command PATH | --registry-image REF]\n" +
    "                     [--tls [--hostname NAME…] [--ip ADDR…] | --tls-dir DIR]\n" +
    "       isoload serve --source SOURCE… [--data-dir DIR] [--builtin] [--listen HOST:PORT] [--tls … | --tls-dir DIR]\n" +
    "       isoload serve --data-dir DIR --peer https://HOST:PORT… [--no-fill] [--jobs N] [--ca FILE] [--certs-dir DIR] [--listen …]\n" +
    "       isoload serve --data-dir DIR --source SOURCE… (--peer https://HOST:PORT… | --persist) [--no-fill] [--listen …]",
  description: "Runs a read-only registry in the foreground. --builtin (the default when no registry is named) is isoload's own\n" +
    "server: the pull side of the OCI Distribution Specification, nothing else needed. --registry-command runs a\n" +
    "distribution registry binary over DIR; --registry-image runs the registry image under podman (when REF is not\n" +
    "in containers-storage but is one of DIR's images, it is loaded from DIR first).\n" +
    "--source serves an oc-mirror or OCI-layout archive (or a directory, such as the mounted ISO) in place, with\n" +
    "no copy: one pass over its entries, then blobs as byte ranges of it, each checked against its digest the first\n" +
    "time it is served. Once /v2/ answers and every manifest is served by digest, prints one line and tells systemd\n" +
    "READY=1. SIGTERM or SIGINT stops it (in-flight downloads get 10 s); if an external registry dies, exits non-zero.\n" +
    "--peer (built-in server) serves DIR even empty or unfinished (a complete DIR is served as it is, peers or not):\n" +
    "the image list comes from the first peer that answers (asked until --ready-timeout), every manifest is copied\n" +
    "into DIR at start, and a\n" +
    "blob DIR lacks is copied from a peer on its first request (once, however many ask), verified before the last\n" +
    "byte reaches the client, and kept in DIR. Unless --no-fill, the rest is copied in the background (as load\n" +
    "https://PEER would) and DIR's records say complete once it is all there. The process holds DIR until it is complete.\n" +
    "--source with --data-dir and --peer (or --persist) keeps the images on DIR's disk (a node whose ISO is still\n" +
    "attached): a complete DIR is served alone, reading neither SOURCE nor the peers; otherwise SOURCE is served in\n" +
    "place at once and copied into DIR in the background (as load --serve; not with --no-fill), each blob served from\n" +
    "its verified copy once landed. If SOURCE cannot be read (the ISO was ejected), DIR is served with the peers behind\n" +
    "it, as with --peer alone; if the background copy fails, serve exits non-zero so a restart serves from DIR and peers\n" +
    "(only when SOURCE stopped answering; for no room in DIR or a corrupt blob it goes on serving SOURCE in place).\n" +
    "A peer that is this very process (api-int resolving to this node) is found by the instance id its answers carry\n" +
    "(Isoload-Instance) and skipped, with a warning.\n" +
    "\n" +
    "--source may be given several times for one source in several files (each may be a quoted glob).\n" +
    SOURCES_HELP + "\n" +
    "While it serves, DIR/isoload/serving.json says what, where and by which process (isoload status reads it);\n" +
    "--source without --data-dir has no DIR, so nothing is recorded and status has nothing to show.",
  options: {
    "data-dir": { type: "string", arg: "DIR", help: "A data directory isoload load completed (with --source: only for --tls)." },
    source: {
      type: "string",
      arg: "PATH",
      multiple: true,
      help: "Serve this archive or directory in place (built-in server); repeat it, or quote a glob, for the parts of one.",
    },
    listen: { type: "string", arg: "HOST:PORT", default: "0.0.0.0:22625", help: "Address the registry listens on." },
    builtin: { type: "boolean", help: "Use isoload's own registry server (the default)." },
    "registry-command": { type: "string", arg: "PATH", help: "A distribution registry binary (e.g. /usr/bin/docker-registry)." },
    "registry-image": { type: "string", arg: "REF", help: "A registry image to run with podman (--net host, DIR read-only)." },
    "access-log": { type: "boolean", help: "Built-in: one log line per request." },
    "binary-file": {
      type: "string",
      arg: "PATH",
      help:
        "Built-in: the isoload binary to hand to nodes by digest at /v2/_isoload/binary/blobs/DIGEST (default: this isoload, when compiled).",
    },
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
    "tls-dir": {
      type: "string",
      arg: "DIR",
      help: "Serve HTTPS with DIR/server.crt and DIR/server.key (made by isoload tls --out DIR, the cluster's CA).",
    },
    "source-registry": { type: "string", arg: "HOST", help: "With --source: registry for image names that carry none." },
    peer: {
      type: "string",
      arg: "URL",
      multiple: true,
      help: "With --data-dir: a peer isoload registry (https://HOST:PORT) to copy what DIR lacks from (repeatable).",
    },
    "no-fill": { type: "boolean", help: "With --peer: copy only what clients ask for, not the rest in the background." },
    persist: {
      type: "boolean",
      help: "With --source and --data-dir: copy SOURCE into DIR in the background while serving it (implied by --peer).",
    },
    jobs: { type: "string", arg: "N", help: "With --peer: blobs the background fill copies at once (default 4)." },
    ca: { type: "string", arg: "FILE", multiple: true, help: "With --peer: a CA the peers' certificates chain to (repeatable)." },
    "certs-dir": {
      type: "string",
      arg: "DIR",
      default: DEFAULT_CERTS_DIR,
      help: "With --peer: a peer's CA is also looked for at DIR/HOST:PORT/ca.crt.",
    },
  },
  examples: [
    "isoload serve --data-dir /var/lib/isoload",
    "isoload serve --data-dir /var/lib/isoload --peer https://master-0:22625 --peer https://master-1:22625 --ca /etc/isoload/tls/ca.crt",
    "isoload serve --source '/run/media/iso/images/mirror_*.tar' --listen '[::]:22625' --tls-dir /etc/isoload/tls",
    "isoload serve --source /run/media/iso/images/mirror_000001.tar --listen 0.0.0.0:22625",
    "isoload serve --source '/run/media/iso/images/mirror_*.tar'   # every part of a multi-part archive",
    "isoload serve --data-dir /var/lib/isoload --registry-command /usr/bin/docker-registry --tls --hostname host0.example.com --ip 192.168.111.20",
  ],
  positionals: 0,
  parse(v) {
    const registryCommand = str(v, "registry-command");
    const registryImage = str(v, "registry-image");
    const sources = list(v, "source");
    const source = sources.length > 0;
    if ([!!registryCommand, !!registryImage, v.builtin === true].filter(Boolean).length > 1) {
      throw new UsageError("give at most one of --builtin, --registry-command or --registry-image");
    }
    const serving = servingOptions(v);
    if (registryCommand || registryImage) {
      if (source) throw new UsageError("--source is served by the built-in server only");
      if (v["access-log"]) throw new UsageError("--access-log goes with the built-in server");
      if (v.peer) throw new UsageError("--peer goes with the built-in server");
      if (v["binary-file"]) throw new UsageError("--binary-file goes with the built-in server");
      return { server: "external", external: { dataDir: required(v, "data-dir"), registryCommand, registryImage, ...serving } };
    }
    const dataDir = str(v, "data-dir");
    if (!source && !dataDir) throw new UsageError("give --data-dir DIR, or --source PATH to serve an archive in place");
    // Found here, before the archive is indexed: the CA and certificate are kept in a data directory.
    if (serving.tls && "ips" in serving.tls && !dataDir) {
      throw new UsageError("--tls needs --data-dir DIR (with --source too): its CA and certificate live there");
    }
    const peerUrls = list(v, "peer");
    if (v.persist && !source) throw new UsageError("--persist goes with --source (a data directory alone is already on disk)");
    const persist = source && (peerUrls.length > 0 || v.persist === true);
    if (!peerUrls.length) refuse(v, persist ? ["jobs", "ca"] : ["no-fill", "jobs", "ca"], "goes with --peer");
    if (persist && !dataDir) {
      throw new UsageError(`--source with ${peerUrls.length ? "--peer" : "--persist"} needs --data-dir DIR: the images are kept there`);
    }
    return {
      server: "builtin",
      sources: source ? sources : undefined,
      dataDir,
      naming: { sourceRegistry: sourceRegistry(v) },
      serving,
      accessLog: v["access-log"] === true,
      ...(peerUrls.length
        ? {
          peers: {
            urls: peerUrls.map(parsePeerUrl),
            trust: peerTrust(v),
            jobs: parseJobs(v, DEFAULT_PEER_JOBS),
            fill: v["no-fill"] !== true,
          },
        }
        : {}),
      ...(v["binary-file"] ? { binaryFile: str(v, "binary-file") } : {}),
      ...(persist ? { persist: true, fill: v["no-fill"] !== true } : {}),
    };
  },
  async run(o, log) {
    if (o.server === "external") return await serve(o.external, log);
    if (o.binaryFile && !(await Deno.stat(o.binaryFile).then((st) => st.isFile, () => false))) {
      throw new InputError(`Cannot serve the isoload binary ${o.binaryFile}: it is not a file`);
    }
    // The TLS material is checked before the archive is read: a missing key fails in a moment, not after the index pass.
    const tls = await builtinTls(o.dataDir, o.serving.tls);
    checkListenable(o.serving.listen);
    if (o.persist && o.sources) {
      return await servePersisting(
        {
          sources: o.sources,
          dataDir: o.dataDir!,
          naming: o.naming,
          peers: o.peers,
          fill: o.fill !== false,
          run: { listen: o.serving.listen, readyTimeoutMs: o.serving.readyTimeoutMs, accessLog: o.accessLog, binaryFile: o.binaryFile },
        },
        tls,
        log,
      );
    }
    if (o.peers) {
      const peering = await servingWithPeers(
        o.dataDir!,
        { ...o.peers, listTimeoutMs: o.serving.readyTimeoutMs, listen: o.serving.listen },
        log,
      );
      try {
        return await runBuiltin(peering.built, {
          listen: o.serving.listen,
          tls,
          readyTimeoutMs: o.serving.readyTimeoutMs,
          accessLog: o.accessLog,
          binaryFile: o.binaryFile,
          during: peering.during,
          duringFallback: "with the peers behind the data directory",
          dataDir: o.dataDir,
        }, log);
      } finally {
        peering.close();
      }
    }
    const built = o.sources ? await contentInPlace(o.sources, o.naming, log) : await contentFromDataDir(resolve(o.dataDir!));
    return await runBuiltin(built, {
      listen: o.serving.listen,
      tls,
      readyTimeoutMs: o.serving.readyTimeoutMs,
      accessLog: o.accessLog,
      binaryFile: o.binaryFile,
      dataDir: o.dataDir,
    }, log);
  },
};
