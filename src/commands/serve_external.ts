/**
 * `isoload serve` with an external registry: a distribution registry binary
 * (`--registry-command`) or image under podman (`--registry-image`) over DIR,
 * in the foreground, with readiness, READY=1, TLS and SIGTERM.
 */
import { basename, join, resolve } from "node:path";
import { atomicWrite } from "../util/atomic_write.ts";
import { EnvironmentError, ExitCode, TimeoutError } from "../util/errors.ts";
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

/** Options of `isoload serve` with an external registry. */
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
