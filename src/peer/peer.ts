/**
 * A peer isoload registry seen as a source: its image list (with the source
 * names a load from the archive gave them), manifests and blobs by digest,
 * over HTTP or HTTPS trusting the cluster CA. Network and HTTP failures are
 * PeerError (try another peer); bytes that do not hash to their digest are
 * the caller's to detect (the storage tree writer does it as it writes).
 */
import { readTextIfExists } from "../util/atomic_write.ts";
import { caPathFor } from "../host/ca_install.ts";
import { isDigest } from "../image/digest.ts";
import type { ImageCandidate } from "../archive/format.ts";
import { isRepositoryPath, isTag, parseReference, repositoryOf } from "../image/reference.ts";
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from "../image/manifest.ts";
import { describeError, EnvironmentError, UsageError } from "../util/errors.ts";
import type { BlobBytes } from "../archive/ingest.ts";
import { GetPool, type GetResponse } from "./http_get.ts";
import { fromThisInstance, INSTANCE_HEADER, INSTANCE_ID } from "../server/instance.ts";

/** The path of isoload's image-list extension: `_`-prefixed, so no repository name can collide with it (as `_catalog`). */
export const PEER_IMAGES_PATH = "/v2/_isoload/images";

/** What the image-list extension answers. */
export interface PeerImageList {
  images: (ImageCandidate & { children?: string[] })[];
}

/** A blob's bytes from a peer; `cancel` gives up what is not read yet (nothing, once all was read), closing the connection. */
export type PeerBlob = BlobBytes & { cancel(): void };

/** A peer could not give what was asked (unreachable, went away, HTTP error): another peer may. */
export class PeerError extends EnvironmentError {
  constructor(readonly peer: string, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The peer is this very process's own registry (its answer carries this process's instance id): never ask it. */
export class PeerSelfError extends PeerError {
  constructor(peer: string) {
    super(peer, `Cannot use ${peer} as a peer: it is this isoload itself (it answered with this process's instance id)`);
  }
}

/** Where the CA that peers' certificates chain to comes from. */
export interface PeerTrust {
  /** containers' certs.d layout: `DIR/HOST:PORT/ca.crt` for each peer (absent files are skipped). */
  certsDir?: string;
  /** CA files trusted for every peer (`--ca FILE`, `--tls-dir DIR`'s ca.crt). */
  caFiles: string[];
}

/** How long a peer may stay silent (no response headers, no body bytes) before it counts as gone. */
export const PEER_IDLE_MS = 30_000;

/** Checks a peer address: `http(s)://HOST:PORT` with nothing after it. UsageError otherwise. */
export function parsePeerUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`a peer must be http://HOST:PORT or https://HOST:PORT, got ${JSON.stringify(text)}`);
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || url.username || url.password || url.search || url.hash) {
    throw new UsageError(`a peer must be http://HOST:PORT or https://HOST:PORT, got ${JSON.stringify(text)}`);
  }
  if (url.pathname !== "/" && url.pathname !== "") throw new UsageError(`a peer address carries no path, got ${JSON.stringify(text)}`);
  return url;
}

/** True when a command-line source names a peer registry rather than a file. */
export function isPeerAddress(text: string): boolean {
  return /^https?:\/\//i.test(text);
}

/** `HOST:PORT` of a peer URL, with the scheme's default port filled in (the certs.d directory name). */
export function peerHostPort(url: URL): string {
  return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
}

function checkCandidate(v: unknown, i: number): ImageCandidate & { children?: string[] } {
  const img = v as Record<string, unknown>;
  const bad = (what: string) => new SyntaxError(`images[${i}] ${what}`);
  if (!img || typeof img !== "object") throw bad("is not an object");
  const { source, repository, digest, tags, mediaType, children } = img;
  const ref = typeof source === "string" ? parseReference(source) : undefined;
  if (!ref || !ref.domain || ref.tag || ref.digest || repositoryOf(ref) !== source) throw bad("has no valid source repository");
  if (typeof repository !== "string" || !isRepositoryPath(repository)) throw bad("has no valid repository name");
  if (typeof digest !== "string" || !isDigest(digest)) throw bad("has no valid digest");
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === "string" && isTag(t))) throw bad("has invalid tags");
  if (children !== undefined && (!Array.isArray(children) || !children.every((c) => typeof c === "string" && isDigest(c)))) {
    throw bad("has invalid children");
  }
  return {
    source: source as string,
    repository,
    digest,
    tags: [...tags] as string[],
    mediaType: typeof mediaType === "string" ? mediaType : "",
    ...(children ? { children: [...children] as string[] } : {}),
  };
}

/** One peer registry. */
export class Peer {
  /** `https://HOST:PORT`, for messages and records. */
  readonly name: string;
  #client?: Deno.HttpClient;
  /** Blob GETs: kept-alive connections read into the caller's buffers (see http_get.ts). */
  #blobs: GetPool;

  private constructor(readonly url: URL, cas: string[]) {
    this.name = url.origin;
    this.#client = cas.length ? Deno.createHttpClient({ caCerts: cas }) : undefined;
    // Every request names this process, so that its own registry (a peer list naming this node) refuses it at once.
    this.#blobs = new GetPool(url, cas.length ? cas : undefined, PEER_IDLE_MS, { [INSTANCE_HEADER]: INSTANCE_ID });
  }

  /** A peer with its own HTTP client, trusting the CAs `trust` names for it. */
  static async open(url: URL, trust: PeerTrust): Promise<Peer> {
    const cas: string[] = [];
    if (url.protocol === "https:") {
      for (const f of trust.caFiles) {
        const pem = await readTextIfExists(f);
        if (pem === undefined) throw new EnvironmentError(`Cannot trust peers with ${f}: no such file`);
        cas.push(pem);
      }
      if (trust.certsDir) {
        const pem = await readTextIfExists(caPathFor(trust.certsDir, peerHostPort(url)));
        if (pem !== undefined) cas.push(pem);
      }
    }
    return new Peer(url, cas);
  }

  /** Releases the HTTP client. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
    this.#blobs.close();
  }

  /**
   * GET a path; resolves once headers arrive. The body's reads share the same
   * idle timer: a peer silent for PEER_IDLE_MS is aborted (PeerError).
   */
  async #get(path: string, what: string, accept?: string, answerMs = PEER_IDLE_MS): Promise<Got> {
    const ctl = new AbortController();
    let timer = setTimeout(() => ctl.abort(), answerMs);
    const done = () => clearTimeout(timer);
    let res: Response;
    try {
      res = await fetch(new URL(path, this.url), {
        client: this.#client,
        signal: ctl.signal,
        headers: { [INSTANCE_HEADER]: INSTANCE_ID, ...(accept ? { Accept: accept } : {}) },
      });
    } catch (e) {
      done();
      throw new PeerError(this.name, `Cannot get ${what} from ${this.name}: ${ctl.signal.aborted ? "no answer in time" : describe(e)}`, {
        cause: e,
      });
    }
    if (fromThisInstance(res.headers)) {
      done();
      await res.body?.cancel().catch(() => {});
      throw new PeerSelfError(this.name);
    }
    if (res.status !== 200) {
      done();
      await res.body?.cancel().catch(() => {});
      throw new PeerError(this.name, `Cannot get ${what} from ${this.name}: HTTP ${res.status}`);
    }
    // Each body chunk restarts the idle timer (readers call touch).
    const touch = () => {
      clearTimeout(timer);
      timer = setTimeout(() => ctl.abort(), PEER_IDLE_MS);
    };
    return { res, done, touch, aborted: () => ctl.signal.aborted };
  }

  /** Asks the API root: resolves when the peer answers; PeerSelfError when the peer is this very process. */
  async ping(): Promise<void> {
    const got = await this.#get("/v2/", "the API root");
    got.done();
    await got.res.body?.cancel().catch(() => {});
  }

  /** The images the peer serves, with their source names. */
  async images(): Promise<(ImageCandidate & { children?: string[] })[]> {
    const what = "the image list";
    let got;
    try {
      // A peer that does not answer the list soon is passed over for the next (a host still booting, a dead address).
      got = await this.#get(PEER_IMAGES_PATH, what, undefined, LIST_ANSWER_MS);
    } catch (e) {
      if (e instanceof PeerError && /HTTP 404$/.test(e.message)) {
        throw new PeerError(
          this.name,
          `Cannot get the image list from ${this.name}: it is not an isoload registry (no ${PEER_IMAGES_PATH})`,
        );
      }
      throw e;
    }
    let list: PeerImageList;
    try {
      const bytes = await this.#readAll(got, MAX_LIST_BYTES, what);
      const v = JSON.parse(new TextDecoder().decode(bytes));
      if (!v || !Array.isArray(v.images)) throw new SyntaxError("no images array");
      list = { images: v.images.map(checkCandidate) };
    } catch (e) {
      if (e instanceof PeerError) throw e;
      throw new PeerError(this.name, `Cannot read the image list of ${this.name}: ${describe(e)}`, { cause: e });
    } finally {
      got.done();
    }
    return list.images;
  }

  async #readAll(got: Got, max: number, what: string): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let n = 0;
    try {
      for await (const c of got.res.body!) {
        got.touch();
        n += c.length;
        if (n > max) throw new SyntaxError(`${what} is more than ${max} bytes`);
        parts.push(c);
      }
    } catch (e) {
      if (e instanceof SyntaxError) throw e;
      throw new PeerError(this.name, `Cannot get ${what} from ${this.name}: ${got.aborted() ? "it stopped sending" : describe(e)}`, {
        cause: e,
      });
    }
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) out.set(p, (o += p.length) - p.length);
    return out;
  }

  /** A manifest's bytes, unverified (the caller checks the digest). */
  async manifest(repository: string, digest: string): Promise<Uint8Array> {
    const what = `manifest ${repository}@${digest}`;
    const got = await this.#get(`/v2/${repository}/manifests/${digest}`, what, MANIFEST_ACCEPT);
    try {
      return await this.#readAll(got, MAX_MANIFEST_BYTES, what);
    } catch (e) {
      if (e instanceof SyntaxError) throw new PeerError(this.name, `Cannot get ${what} from ${this.name}: ${e.message}`);
      throw e;
    } finally {
      got.done();
    }
  }

  /**
   * A blob's bytes, unverified: read straight from the connection into the
   * caller's buffers, or iterated as chunks of up to 1 MiB. Ending before
   * `size` bytes, or going silent, is a PeerError raised from the read.
   */
  async blob(repository: string, digest: string, size: number): Promise<PeerBlob> {
    const what = `blob ${digest}`;
    const fail = (why: string, cause?: unknown) =>
      new PeerError(this.name, `Cannot get ${what} from ${this.name}: ${why}`, cause === undefined ? undefined : { cause });
    let res: GetResponse;
    try {
      res = await this.#blobs.get(`/v2/${repository}/blobs/${digest}`);
    } catch (e) {
      throw fail(describe(e), e);
    }
    if (res.headers.get(INSTANCE_HEADER.toLowerCase()) === INSTANCE_ID) {
      res.cancel();
      throw new PeerSelfError(this.name);
    }
    if (res.status !== 200 || res.length !== size) {
      res.cancel();
      if (res.status !== 200) throw fail(`HTTP ${res.status}`);
      throw fail(res.length === undefined ? "it gives no Content-Length" : `it offers ${res.length} bytes, the manifest says ${size}`);
    }
    let total = 0;
    const read = async (dst: Uint8Array): Promise<number> => {
      let n;
      try {
        n = await res.read(dst);
      } catch (e) {
        throw fail(describe(e), e);
      }
      total += n;
      if (n === 0 && total < size) throw fail(`it sent ${total} of ${size} bytes and stopped`);
      return n;
    };
    return {
      read,
      cancel: () => res.cancel(),
      async *[Symbol.asyncIterator]() {
        // The consumer is done with a chunk when it asks for the next (the writer has hashed and written it), so one buffer serves.
        const buf = new Uint8Array(Math.min(size, CHUNK) || 1);
        try {
          for (let n; (n = await read(buf)) > 0;) yield buf.subarray(0, n);
        } finally {
          res.cancel();
        }
      },
    };
  }
}

const CHUNK = 1 << 20;

/** A response whose headers arrived, with its idle timer. */
interface Got {
  res: Response;
  /** Stops the idle timer. */
  done: () => void;
  /** Restarts the idle timer (a chunk arrived). */
  touch: () => void;
  aborted: () => boolean;
}
/** How long a peer may take to start answering the image list. */
const LIST_ANSWER_MS = 10_000;
/** The image list of a release with every operator is a few MB at most. */
const MAX_LIST_BYTES = 64 << 20;

function describe(e: unknown): string {
  return describeError(e);
}
