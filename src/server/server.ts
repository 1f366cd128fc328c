/**
 * isoload's own read-only registry: the pull side of the OCI Distribution
 * Specification v1.1 over a RegistryView. Stored manifest bytes are served
 * unchanged; blobs stream from their file (with Range), never whole in
 * memory; a blob not yet verified is hashed as it is first served and cut off,
 * and never served again, if it does not match. Every write method is 405.
 */
import { isDigest, newHasher } from "../image/digest.ts";
import { MAX_MANIFEST_BYTES, MediaType } from "../image/manifest.ts";
import type { BlobFinder, Located, RepoView } from "./content.ts";

/** What the handler serves. */
export interface ServedContent {
  repos: Map<string, RepoView>;
  /** Media type of each manifest, for Content-Type. */
  mediaTypes: Map<string, string>;
  blobs: BlobFinder;
  /** Digests found corrupt while serving: never served again. */
  bad: Set<string>;
  /** Digests checked against their bytes. */
  verified: Set<string>;
}

// distribution/reference's path component grammar: no "..", no empty parts, no encoded anything.
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const WRITE_METHODS = new Set(["PUT", "POST", "PATCH", "DELETE"]);
const API_HEADER = { "Docker-Distribution-API-Version": "registry/2.0" };

function errorResponse(status: number, code: string, message: string, head = false, detail?: unknown): Response {
  const body = JSON.stringify({ errors: [{ code, message, ...(detail === undefined ? {} : { detail }) }] });
  return new Response(head ? null : body, {
    status,
    headers: { ...API_HEADER, "Content-Type": "application/json", "Content-Length": String(body.length) },
  });
}

function jsonResponse(value: unknown, head: boolean, extra: Record<string, string> = {}): Response {
  const body = JSON.stringify(value);
  return new Response(head ? null : body, {
    headers: {
      ...API_HEADER,
      ...extra,
      "Content-Type": "application/json",
      "Content-Length": String(new TextEncoder().encode(body).length),
    },
  });
}

/** Sorted names after `last`, at most `n`, and the Link header for the next page. */
function paginate(all: string[], url: URL): { page: string[]; link?: string } | Response {
  const nText = url.searchParams.get("n");
  const last = url.searchParams.get("last") ?? "";
  const n = nText === null ? all.length : Number(nText);
  if (!Number.isInteger(n) || n < 0) return errorResponse(400, "PAGINATION_NUMBER_INVALID", "n must be a non-negative integer");
  const rest = all.filter((x) => x > last);
  const page = rest.slice(0, n);
  if (page.length < rest.length && page.length > 0) {
    const next = new URL(url);
    next.searchParams.set("last", page[page.length - 1]);
    next.searchParams.set("n", String(n));
    return { page, link: `<${next.pathname}${next.search}>; rel="next"` };
  }
  return { page };
}

/** Parses a single "bytes=a-b" range against a size; undefined: serve whole; null: unsatisfiable. */
function parseRange(header: string | null, size: number): { start: number; end: number } | undefined | null {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  let start: number, end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return null;
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return null;
  return { start, end };
}

/**
 * Reads `length` bytes of a file from `offset` as a stream, 1 MiB at a time.
 * With `onEnd`, the last chunk is held back until `onEnd` approves (true): a
 * blob that fails verification is cut short, so no client ever receives it whole.
 */
function rangeStream(file: string, offset: number, length: number, onChunk?: (c: Uint8Array) => void, onEnd?: () => boolean) {
  let f: Deno.FsFile | undefined;
  let left = length;
  let held: Uint8Array | undefined;
  const close = () => {
    f?.close();
    f = undefined;
  };
  return new ReadableStream<Uint8Array>({
    async start() {
      f = await Deno.open(file);
      await f.seek(offset, Deno.SeekMode.Start);
    },
    async pull(ctl) {
      // Each pull must enqueue, close or error: a pull that only holds a chunk back would stall the stream.
      for (;;) {
        if (left === 0) {
          close();
          // Ending short of Content-Length makes the server drop the connection: the client sees a failed download.
          if (onEnd?.() === false) return ctl.close();
          if (held) ctl.enqueue(held);
          return ctl.close();
        }
        const buf = new Uint8Array(Math.min(left, 1 << 20));
        const n = await f!.read(buf);
        if (n === null) {
          // The file shrank: end short of Content-Length, which drops the connection (no half blob passes as whole).
          close();
          return ctl.close();
        }
        const chunk = buf.subarray(0, n);
        left -= n;
        onChunk?.(chunk);
        if (!onEnd) return ctl.enqueue(chunk);
        const out = held;
        held = chunk;
        if (out) return ctl.enqueue(out);
      }
    },
    cancel() {
      close();
    },
  });
}

/** Reads a whole located blob (small: manifests). */
async function readLocated(l: Located): Promise<Uint8Array> {
  const out = new Uint8Array(l.size);
  const f = await Deno.open(l.file);
  try {
    await f.seek(l.offset, Deno.SeekMode.Start);
    let o = 0;
    while (o < l.size) {
      const n = await f.read(out.subarray(o));
      if (n === null) throw new Error(`${l.file} ended early`);
      o += n;
    }
  } finally {
    f.close();
  }
  return out;
}

/** Hashes a located blob whole, for a range request on a blob not yet verified. */
async function hashLocated(l: Located): Promise<string> {
  const hasher = newHasher();
  for await (const c of rangeStream(l.file, l.offset, l.size)) hasher.update(c);
  return `sha256:${hasher.digest("hex")}`;
}

/** The request handler. `log` gets one access-log line per request when given. */
export function registryHandler(
  content: ServedContent,
  log?: (line: string) => void,
  warn?: (msg: string) => void,
): (req: Request) => Promise<Response> {
  const manifestCache = new Map<string, Uint8Array>();

  const manifestBytes = async (digest: string): Promise<Uint8Array | undefined> => {
    const cached = manifestCache.get(digest);
    if (cached) return cached;
    if (content.bad.has(digest)) return undefined;
    const l = await content.blobs.locate(digest);
    if (!l || l.size > MAX_MANIFEST_BYTES) return undefined;
    const bytes = await readLocated(l);
    // Manifests are small: always checked before they are served or cached.
    const hasher = newHasher();
    hasher.update(bytes);
    if (`sha256:${hasher.digest("hex")}` !== digest) {
      content.bad.add(digest);
      return undefined;
    }
    content.verified.add(digest);
    manifestCache.set(digest, bytes);
    return bytes;
  };

  const manifest = async (req: Request, repo: RepoView, name: string, ref: string, head: boolean): Promise<Response> => {
    const byDigest = isDigest(ref);
    if (!byDigest && !TAG_RE.test(ref)) return errorResponse(400, "TAG_INVALID", `invalid tag or digest ${JSON.stringify(ref)}`, head);
    const digest = byDigest ? ref : repo.tags.get(ref);
    if (!digest || !repo.manifests.has(digest)) {
      return errorResponse(404, "MANIFEST_UNKNOWN", `manifest unknown: ${name}:${ref}`, head, { Name: name, Revision: ref });
    }
    const bytes = await manifestBytes(digest);
    if (!bytes) return errorResponse(404, "MANIFEST_UNKNOWN", `manifest unknown or corrupt: ${name}@${digest}`, head);
    const type = content.mediaTypes.get(digest) ?? "application/vnd.oci.image.manifest.v1+json";
    // Accept negotiation: a tag whose manifest type the client did not list is refused (a digest names exact bytes).
    const accept = req.headers.get("Accept");
    if (!byDigest && accept) {
      const listed = accept.split(",").map((a) => a.split(";")[0].trim());
      if (!listed.includes(type) && !listed.includes("*/*") && listed.some((a) => (Object.values(MediaType) as string[]).includes(a))) {
        return errorResponse(404, "MANIFEST_UNKNOWN", `manifest of type ${type} not acceptable (Accept: ${accept})`, head);
      }
    }
    return new Response(head ? null : bytes as BodyInit, {
      headers: {
        ...API_HEADER,
        "Content-Type": type,
        "Content-Length": String(bytes.length),
        "Docker-Content-Digest": digest,
        "ETag": `"${digest}"`,
      },
    });
  };

  const blob = async (req: Request, repo: RepoView, name: string, digest: string, head: boolean): Promise<Response> => {
    if (!isDigest(digest)) return errorResponse(400, "DIGEST_INVALID", `invalid digest ${JSON.stringify(digest)}`, head);
    const known = repo.blobs.has(digest) || repo.manifests.has(digest);
    const l = known && !content.bad.has(digest) ? await content.blobs.locate(digest) : undefined;
    if (!l) return errorResponse(404, "BLOB_UNKNOWN", `blob unknown to registry: ${name}@${digest}`, head, { digest });
    const base = {
      ...API_HEADER,
      "Content-Type": "application/octet-stream",
      "Docker-Content-Digest": digest,
      "Accept-Ranges": "bytes",
      "ETag": `"${digest}"`,
    };
    const range = parseRange(req.headers.get("Range"), l.size);
    if (range === null) {
      return new Response(null, { status: 416, headers: { ...base, "Content-Range": `bytes */${l.size}` } });
    }
    if (head) return new Response(null, { headers: { ...base, "Content-Length": String(l.size) } });
    let verified = l.verified || content.verified.has(digest);
    if (range) {
      // A part of a blob is only as good as the whole: check the whole first.
      if (!verified) {
        if (await hashLocated(l) !== digest) {
          content.bad.add(digest);
          return errorResponse(404, "BLOB_UNKNOWN", `blob ${digest} failed verification and is withheld`, false);
        }
        content.verified.add(digest);
        verified = true;
      }
      const length = range.end - range.start + 1;
      return new Response(rangeStream(l.file, l.offset + range.start, length), {
        status: 206,
        headers: { ...base, "Content-Length": String(length), "Content-Range": `bytes ${range.start}-${range.end}/${l.size}` },
      });
    }
    if (verified) {
      // A whole file (DIR's tree): hand the runtime the file itself, which it streams without a copy through JavaScript.
      const whole = l.offset === 0 && (await Deno.stat(l.file)).size === l.size;
      const body = whole ? (await Deno.open(l.file)).readable : rangeStream(l.file, l.offset, l.size);
      return new Response(body, { headers: { ...base, "Content-Length": String(l.size) } });
    }
    // First serving of a blob from the archive: hash as it streams; a mismatch cuts the response before its end.
    const hasher = newHasher();
    const stream = rangeStream(l.file, l.offset, l.size, (c) => hasher.update(c), () => {
      const got = `sha256:${hasher.digest("hex")}`;
      if (got === digest) {
        content.verified.add(digest);
        return true;
      }
      content.bad.add(digest);
      warn?.(`blob ${digest} in ${l.file} hashes to ${got}: the download was cut and the blob is withheld from now on`);
      return false;
    });
    return new Response(stream, { headers: { ...base, "Content-Length": String(l.size) } });
  };

  const route = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const head = req.method === "HEAD";
    if (WRITE_METHODS.has(req.method)) return errorResponse(405, "UNSUPPORTED", "this registry is read-only");
    if (req.method !== "GET" && !head) return errorResponse(405, "UNSUPPORTED", `method ${req.method} not supported`);
    const path = url.pathname;
    if (path === "/v2/" || path === "/v2") return jsonResponse({}, head);
    if (path === "/v2/_catalog") {
      const p = paginate([...content.repos.keys()].sort(), url);
      if (p instanceof Response) return p;
      return jsonResponse({ repositories: p.page }, head, p.link ? { Link: p.link } : {});
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs|tags)\/([^/]+)$/.exec(path);
    if (!m) return errorResponse(404, "NOT_FOUND", `no such endpoint ${path}`, head);
    const [, name, kind, ref] = m;
    if (!NAME_RE.test(name)) return errorResponse(400, "NAME_INVALID", `invalid repository name ${JSON.stringify(name)}`, head);
    const repo = content.repos.get(name);
    if (!repo) return errorResponse(404, "NAME_UNKNOWN", `repository name not known to registry: ${name}`, head, { name });
    if (kind === "tags") {
      if (ref !== "list") return errorResponse(404, "NOT_FOUND", `no such endpoint ${path}`, head);
      const p = paginate([...repo.tags.keys()].sort(), url);
      if (p instanceof Response) return p;
      return jsonResponse({ name, tags: p.page }, head, p.link ? { Link: p.link } : {});
    }
    const r = decodeURIComponent(ref);
    return kind === "manifests" ? await manifest(req, repo, name, r, head) : await blob(req, repo, name, r, head);
  };

  return async (req) => {
    const t0 = performance.now();
    let res: Response;
    try {
      res = await route(req);
    } catch (e) {
      res = errorResponse(500, "UNKNOWN", `cannot serve: ${(e as Error).message}`, req.method === "HEAD");
    }
    if (log) {
      const u = new URL(req.url);
      log(
        `${req.method} ${u.pathname}${u.search} ${res.status} ${res.headers.get("Content-Length") ?? "-"} ${
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

/** Listens on HOST:PORT (HTTPS when given a certificate and key) and serves `content`. */
export function startRegistryServer(
  content: ServedContent,
  listen: string,
  opts: { tls?: { cert: string; key: string }; accessLog?: (line: string) => void; warn?: (msg: string) => void } = {},
): RunningServer {
  const i = listen.lastIndexOf(":");
  const hostname = listen.slice(0, i).replace(/^\[(.*)\]$/, "$1") || "0.0.0.0";
  const port = Number(listen.slice(i + 1));
  const server = Deno.serve(
    { hostname, port, onListen() {}, ...(opts.tls ? { cert: opts.tls.cert, key: opts.tls.key } : {}) },
    registryHandler(content, opts.accessLog, opts.warn),
  );
  return { shutdown: () => server.shutdown(), finished: server.finished };
}
