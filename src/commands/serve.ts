/**
 * `isoload serve`: its options, help and usage rules, the choice between the
 * built-in registry (serve_builtin.ts) and an external one, and the external
 * one: a distribution registry binary or image over DIR, in the foreground,
 * with readiness.
 */
import { basename, join, resolve } from "node:path";
import { atomicWrite } from "../util/atomic_write.ts";
import { EnvironmentError, ExitCode, InputError, TimeoutError, UsageError } from "../util/errors.ts";
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
import type { LoadedImage } from "../image/loaded_image.ts";
import { watchInterrupts } from "../util/interrupt.ts";
import { formatDuration, type Logger } from "../util/log.ts";
import { describeProbe, expectedManifests, probeAddress, waitUntilServed } from "../server/readiness.ts";
import { ensureServerCert, readCa, readTlsDir, tlsPaths } from "../server/tls.ts";
import { requireServableRecords } from "../store/records.ts";
import { parseReference, repositoryOf } from "../image/reference.ts";
import { registryEnv, renderRegistryConfig } from "../server/distribution_config.ts";
import { exportDirImage } from "../storage_mode/dir_export.ts";
import { ContainersStorage, writeDirPolicy } from "../storage_mode/containers_storage.ts";
import { RegistryStore } from "../store/storage_tree.ts";
import { type Published, publishServing } from "../server/serving_state.ts";
import { dataDirPaths } from "../store/paths.ts";
import { sdNotify } from "../server/sd_notify.ts";
import { runTool } from "../util/tools.ts";

/** Options of `isoload serve`. */
export interface ServeOptions {
  dataDir: string;
  listen: string;
  registryCommand?: string;
  registryImage?: string;
  readyTimeoutMs: number;
  /**
   * Serve HTTPS: with a certificate from DIR's CA for these names and
   * addresses (plus localhost and loopback), or with a TLS directory's
   * (`isoload tls --out DIR`).
   */
  tls?: { hostnames: string[]; ips: string[] } | { dir: string };
}

/** The fixed container name, so `--replace` clears a container left by an earlier boot. */
export const CONTAINER_NAME = "isoload-registry";
const IN_CONTAINER_ROOT = "/var/lib/registry";
const IN_CONTAINER_CONFIG = "/etc/docker/registry/config.yml";
const IN_CONTAINER_TLS = "/etc/docker/registry/tls";

/** Finds REF among the loaded images: by digest (image or child) or by tag. */
export function findLoadedImage(images: LoadedImage[], ref: string): { image: LoadedImage; digest: string } | undefined {
  const r = parseReference(ref);
  if (!r || !r.domain) return undefined;
  const repo = repositoryOf(r);
  for (const img of images) {
    if (img.source !== repo) continue;
    if (r.digest && (img.digest === r.digest || img.children?.includes(r.digest))) return { image: img, digest: r.digest };
    if (!r.digest && img.tags.includes(r.tag ?? "latest")) return { image: img, digest: img.digest };
  }
  return undefined;
}

/** Makes REF present in containers-storage, loading it from DIR when it is one of DIR's images. */
async function ensureImage(dataDir: string, images: LoadedImage[], ref: string, log: Logger): Promise<void> {
  const exists = await runTool("podman", ["image", "exists", ref]);
  if (exists.code === 0) return;
  const found = findLoadedImage(images, ref);
  if (!found) {
    throw new EnvironmentError(`Cannot run registry image ${ref}: it is not in containers-storage and not among the images in ${dataDir}`);
  }
  log.info(`Loading registry image ${ref} from ${dataDir} into containers-storage`);
  const store = new RegistryStore(dataDir);
  const tmp = join(store.tmpDir, `registry-image-${Deno.pid}`);
  try {
    await exportDirImage(store, found.digest, tmp);
    await new ContainersStorage(await writeDirPolicy(store.paths)).copyFromDir(tmp, ref);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** Runs the registry until a signal or its death; resolves to the exit code. */
export async function serve(opts: ServeOptions, log: Logger): Promise<number> {
  const dataDir = resolve(opts.dataDir);
  const records = await requireServableRecords(dataDir);
  const configPath = dataDirPaths(dataDir).registryConfig;
  const inContainer = !!opts.registryImage;
  const tlsDir = opts.tls && "dir" in opts.tls ? await readTlsDir(resolve(opts.tls.dir)) : undefined;
  const tls = tlsDir ??
    (opts.tls && "ips" in opts.tls ? await ensureServerCert(tlsPaths(dataDir), opts.tls.hostnames, opts.tls.ips) : undefined);
  // The registry sees DIR at IN_CONTAINER_ROOT under podman (and a TLS directory at IN_CONTAINER_TLS): the certificate paths follow.
  const seen = (p: string) =>
    !inContainer ? p : tlsDir ? `${IN_CONTAINER_TLS}/${basename(p)}` : IN_CONTAINER_ROOT + p.slice(dataDir.length);
  const cfg = {
    rootDirectory: inContainer ? IN_CONTAINER_ROOT : dataDir,
    listen: opts.listen,
    tls: tls ? { certificate: seen(tls.cert), key: seen(tls.key) } : undefined,
  };
  const client = tls ? Deno.createHttpClient({ caCerts: [tlsDir?.caPem ?? (await readCa(dataDir))!] }) : undefined;
  if (tls) log.info(`Serving HTTPS with ${tls.cert}, issued by the CA ${tls.caCert} (give it to the nodes)`);
  await atomicWrite(configPath, renderRegistryConfig(cfg));

  let command: Deno.Command;
  if (opts.registryImage) {
    await ensureImage(dataDir, records.images, opts.registryImage, log);
    const env = Object.entries({ ...registryEnv(cfg), REGISTRY_CONFIGURATION_PATH: IN_CONTAINER_CONFIG })
      .flatMap(([k, v]) => ["-e", `${k}=${v}`]);
    command = new Deno.Command("podman", {
      args: [
        "run",
        "--rm",
        "--replace",
        "--name",
        CONTAINER_NAME,
        "--net",
        "host",
        "--pull",
        "never",
        "-v",
        `${dataDir}:${IN_CONTAINER_ROOT}:ro,Z`,
        "-v",
        `${configPath}:${IN_CONTAINER_CONFIG}:ro,Z`,
        ...(tlsDir ? ["-v", `${tlsDir.dir}:${IN_CONTAINER_TLS}:ro,Z`] : []),
        ...env,
        opts.registryImage,
      ],
      stdin: "null",
    });
  } else {
    command = new Deno.Command(opts.registryCommand!, {
      args: ["serve", configPath],
      env: { REGISTRY_CONFIGURATION_PATH: configPath },
      stdin: "null",
    });
  }
  let child: Deno.ChildProcess;
  try {
    child = command.spawn();
  } catch (e) {
    const what = opts.registryImage ? "podman" : opts.registryCommand;
    if (e instanceof Deno.errors.NotFound) throw new EnvironmentError(`Cannot start registry: ${what} not found`);
    throw new EnvironmentError(`Cannot start registry with ${what}`, { cause: e });
  }

  const base = `${tls ? "https" : "http"}://${probeAddress(opts.listen)}`;
  let published: Published | undefined;
  let stopping = false;
  const stop = (sig: Deno.Signal) => {
    if (stopping) return;
    stopping = true;
    log.info(`Received ${sig}: stopping the registry`);
    if (opts.registryImage) {
      // podman stop waits for the container to end; the client then removes it (--rm).
      runTool("podman", ["stop", "--time", "10", CONTAINER_NAME]).catch(() => {});
    } else {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
    }
    setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 15_000).unref?.();
  };
  const interrupts = watchInterrupts();
  interrupts.signal.addEventListener("abort", () => stop(interrupts.signal.reason as Deno.Signal), { once: true });
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  try {
    published = await publishServing(dataDirPaths(dataDir), {
      server: opts.registryImage ? "registry-image" : "registry-command",
      listen: opts.listen,
      url: `${base}/v2/`,
      tls: !!tls,
      from: dataDir,
    });
    const manifests = expectedManifests(records.images);
    const outcome = await waitUntilServed(base, manifests, {
      timeoutMs: opts.readyTimeoutMs,
      client,
      stopped: () => exited || stopping,
      report: (last) => log.info(`Waiting for the registry at ${base}: ${describeProbe(base, last, manifests.length)}`),
    });
    if (!outcome.ready && !exited && !stopping) {
      stop("SIGTERM");
      await status;
      throw new TimeoutError(
        `Cannot serve ${dataDir}: registry not ready after ${formatDuration(outcome.waitedMs)} (${
          describeProbe(base, outcome.last, manifests.length)
        })`,
      );
    }
    if (!exited && !stopping) {
      log.info(
        `Registry ready at ${base} (listening on ${opts.listen}): ${records.images.length} images, ${manifests.length} manifests served from ${dataDir}`,
      );
      await sdNotify(`READY=1\nSTATUS=Serving ${records.images.length} images on ${opts.listen}`);
    }
    const s = await status;
    if (opts.registryImage) await runTool("podman", ["rm", "--force", "--ignore", CONTAINER_NAME]).catch(() => {});
    if (stopping) return ExitCode.ok;
    throw new EnvironmentError(`Cannot serve ${dataDir}: the registry exited with ${s.signal ? `signal ${s.signal}` : `code ${s.code}`}`);
  } finally {
    interrupts.dispose();
    client?.close();
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await status;
    }
    await published?.withdraw();
  }
}

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
  };

/** `isoload serve (--data-dir DIR | --source PATH…)`. */
export const serveCommand: Command<ServeCliOptions> = {
  summary: "Run a read-only registry over a loaded data directory, or straight from an archive in place",
  usage: "isoload serve --data-dir DIR [--listen HOST:PORT] [--builtin | --registry-command PATH | --registry-image REF]\n" +
    "                     [--tls [--hostname NAME…] [--ip ADDR…] | --tls-dir DIR]\n" +
    "       isoload serve --source SOURCE… [--data-dir DIR] [--builtin] [--listen HOST:PORT] [--tls … | --tls-dir DIR]\n" +
    "       isoload serve --data-dir DIR --peer https://HOST:PORT… [--no-fill] [--jobs N] [--ca FILE] [--certs-dir DIR] [--listen …]",
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
    "https://PEER would) and DIR's records say complete once it is all there. The process holds DIR while serving.\n" +
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
    if (!peerUrls.length) refuse(v, ["no-fill", "jobs", "ca"], "goes with --peer");
    if (peerUrls.length && source) throw new UsageError("--peer goes with --data-dir, not --source");
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
