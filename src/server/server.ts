/**
 * isoload's own read-only registry: the pull side of the OCI Distribution
 * Specification v1.1 over a content view. This file only routes a request to
 * the handler of its resource (manifests.ts, blobs.ts, tags.ts, referrers.ts) and listens;
 * http.ts holds what they share. Every method but GET and HEAD is 405.
 */
import type { ServedContent } from "./content.ts";
import { BINARY_ROUTE, binaryHandler } from "./binary.ts";
import { blobsHandler } from "./blobs.ts";
import { ALLOWED_METHODS, errorResponse, jsonResponse, rawPath, RegistryError, type RepoRequest } from "./http.ts";
import { manifestsHandler } from "./manifests.ts";
import { referrersList } from "./referrers.ts";
import { catalogList, tagsList } from "./tags.ts";
import { PEER_IMAGES_PATH } from "../peer/peer.ts";
import { fromThisInstance, INSTANCE_HEADER, INSTANCE_ID } from "./instance.ts";

// distribution/reference's path component grammar: no "..", no "." segment, no empty parts, no encoded anything.
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const REPO_ROUTE = /^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\/([^/]+)$/;

/**
 * The request handler. `log` gets one access-log line per request when given;
 * `warn` hears of a blob that failed its check. `target` is the request target
 * as sent (defaults to the path of `req.url`, which Deno.serve leaves raw).
 * With `binaryFile`, that file is served by its digest at
 * /v2/_isoload/binary/blobs/DIGEST (binary.ts).
 */
export function registryHandler(
  content: ServedContent,
  log?: (line: string) => void,
  warn?: (msg: string) => void,
  binaryFile?: string,
): (req: Request, target?: string) => Promise<Response> {
  const manifests = manifestsHandler(content);
  const blobs = blobsHandler(content, warn);
  const binary = binaryFile ? binaryHandler(binaryFile) : undefined;

  const route = async (req: Request, target: string): Promise<Response> => {
    const head = req.method === "HEAD";
    if (!head && req.method !== "GET") {
      throw new RegistryError(405, "UNSUPPORTED", `method ${req.method} not supported: this registry is read-only`, {
        headers: { Allow: ALLOWED_METHODS },
      });
    }
    const url = new URL(req.url);
    // Routed on the raw path: dot segments and encoded characters reach the name check instead of being resolved away.
    const path = rawPath(target);
    if (path === "/v2/" || path === "/v2") return jsonResponse({}, head);
    if (path === "/v2/_catalog") return catalogList(content, url, head);
    if (path === PEER_IMAGES_PATH) return jsonResponse({ images: content.images ?? [] }, head);
    const b = binary && BINARY_ROUTE.exec(path);
    if (b) return await binary!(b[1], head);
    const m = REPO_ROUTE.exec(path);
    if (!m) throw new RegistryError(404, "NOT_FOUND", `no such endpoint ${path}`);
    const [, name, kind, ref] = m;
    if (!NAME_RE.test(name)) throw new RegistryError(400, "NAME_INVALID", `invalid repository name ${JSON.stringify(name)}`);
    const repo = content.repos.get(name);
    if (!repo) throw new RegistryError(404, "NAME_UNKNOWN", `repository name not known to registry: ${name}`, { detail: { name } });
    const r: RepoRequest = { req, url, head, content, name, repo, ref };
    switch (kind) {
      case "manifests":
        return await manifests(r);
      case "blobs":
        return await blobs(r);
      case "tags":
        return tagsList(r);
      default:
        return referrersList(r);
    }
  };

  return async (req, target = req.url) => {
    const t0 = performance.now();
    let res: Response;
    try {
      // A peer request from this very process (its peer list names its own address): refused at once, before any
      // blob is looked up, so the asker skips itself instead of waiting on the copy it is making.
      if (fromThisInstance(req.headers)) {
        throw new RegistryError(508, "LOOP_DETECTED", "this request comes from this isoload itself: it is not its own peer");
      }
      res = await route(req, target);
    } catch (e) {
      const err = e instanceof RegistryError ? e : new RegistryError(500, "UNKNOWN", `cannot serve: ${(e as Error).message}`);
      res = errorResponse(err, req.method === "HEAD");
    }
    try {
      res.headers.set(INSTANCE_HEADER, INSTANCE_ID);
    } catch {
      // Immutable headers (none of ours today): the request check above is what matters.
    }
    if (log) {
      log(
        `${req.method} ${rawPath(target)}${new URL(req.url).search} ${res.status} ${res.headers.get("Content-Length") ?? "-"} ${
          (performance.now() - t0).toFixed(1)
        }ms`,
      );
    }
    return res;
  };
}

/** A running built-in registry. */
export interface RunningServer {
  /** Stops accepting and lets in-flight responses finish (bounded by the caller). */
  shutdown(): Promise<void>;
  finished: Promise<void>;
}

/** HOST:PORT (or [V6]:PORT, or :PORT for every address) as Deno.serve and Deno.listen take it. */
export function listenAddress(listen: string): { hostname: string; port: number } {
  const i = listen.lastIndexOf(":");
  return { hostname: listen.slice(0, i).replace(/^\[(.*)\]$/, "$1") || "0.0.0.0", port: Number(listen.slice(i + 1)) };
}

/** Listens on HOST:PORT (HTTPS when given a certificate and key) and serves `content`. */
export function startRegistryServer(
  content: ServedContent,
  listen: string,
  opts: {
    tls?: { cert: string; key: string };
    accessLog?: (line: string) => void;
    warn?: (msg: string) => void;
    binaryFile?: string;
  } = {},
): RunningServer {
  const { hostname, port } = listenAddress(listen);
  const handler = registryHandler(content, opts.accessLog, opts.warn, opts.binaryFile);
  const server = Deno.serve(
    { hostname, port, onListen() {}, ...(opts.tls ? { cert: opts.tls.cert, key: opts.tls.key } : {}) },
    (req) => handler(req),
  );
  return { shutdown: () => server.shutdown(), finished: server.finished };
}
