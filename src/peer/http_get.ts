/**
 * HTTP/1.1 GETs of blobs from one peer over kept-alive connections, each
 * response body read straight from the socket into the caller's buffer.
 * fetch() hands a body over as many small freshly allocated chunks that
 * must be gathered again; a replication of a release is ~1 GB of them, and
 * that copying and allocating cost three times the CPU of curl doing the
 * same. Only what isoload's own registry answers is understood: a status
 * line, headers and a Content-Length body (no chunked encoding, no redirects).
 */

/** A response whose status line and headers have arrived. */
export interface GetResponse {
  status: number;
  /** Header names in lower case. */
  headers: Map<string, string>;
  /** The Content-Length, when the response gave one. */
  length: number | undefined;
  /** Reads the next body bytes into `dst` (what one read of the socket gives, at most `dst`'s length); 0 at the end. */
  read(dst: Uint8Array): Promise<number>;
  /** Gives up the rest of the body (the connection is closed, not reused). */
  cancel(): void;
}

/** The peer stopped sending (PeerError's message says this), or the connection broke. */
export class GetError extends Error {}

/** Largest status line and headers accepted. */
const MAX_HEAD = 64 << 10;
const CRLFCRLF = [13, 10, 13, 10];

/** Connections to one `http(s)://HOST:PORT`. */
export class GetPool {
  #idle: Deno.Conn[] = [];
  #closed = false;

  /** `caCerts` (PEM) replace the default roots for https, as fetch's client does. */
  /** `headers` are sent with every request. */
  constructor(
    readonly url: URL,
    readonly caCerts: string[] | undefined,
    readonly idleMs: number,
    readonly headers: Record<string, string> = {},
  ) {}

  /**
   * A new connection, within `idleMs` for the TCP connect and again for the
   * TLS handshake: a peer that halts or loses its link halfway would
   * otherwise hold the copy (and every client waiting on it) for good.
   */
  async #connect(): Promise<Deno.Conn> {
    const tls = this.url.protocol === "https:";
    const hostname = this.url.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(this.url.port || (tls ? 443 : 80));
    const limit = `${Math.round(this.idleMs / 1000)} s`;
    let tcp: Deno.TcpConn;
    try {
      tcp = await Deno.connect({ hostname, port, signal: AbortSignal.timeout(this.idleMs) });
    } catch (e) {
      throw new GetError((e as Error)?.name === "TimeoutError" ? `it did not accept a connection in ${limit}` : describe(e), { cause: e });
    }
    tcp.setNoDelay(true);
    if (!tls) return tcp;
    const conn = await Deno.startTls(tcp, { hostname, ...(this.caCerts ? { caCerts: this.caCerts } : {}) });
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      closeQuietly(conn);
    }, this.idleMs);
    try {
      await conn.handshake();
    } catch (e) {
      closeQuietly(conn);
      throw new GetError(late ? `its TLS handshake did not finish in ${limit}` : describe(e), { cause: e });
    } finally {
      clearTimeout(timer);
    }
    return conn;
  }

  /**
   * GETs `path`; resolves once the headers are in. A kept-alive connection
   * the peer closed meanwhile is replaced by a new one, once.
   */
  async get(path: string, accept?: string): Promise<GetResponse> {
    const request = new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: ${this.url.host}\r\nUser-Agent: isoload\r\n${accept ? `Accept: ${accept}\r\n` : ""}` +
        `${Object.entries(this.headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`,
    );
    for (;;) {
      const reused = this.#idle.pop();
      const conn = reused ?? await this.#connect();
      try {
        return await this.#exchange(conn, request);
      } catch (e) {
        closeQuietly(conn);
        // Only a reused connection may have been closed by the peer between two requests: retry on a new one.
        if (!reused || !(e instanceof StaleError)) throw e;
      }
    }
  }

  /** Closes every idle connection; later responses close theirs instead of keeping them. */
  close(): void {
    this.#closed = true;
    for (const c of this.#idle.splice(0)) closeQuietly(c);
  }

  /** Reads under way, each with when it began: the watchdog closes the connection of one that waited `idleMs`. */
  readonly #reads = new Set<{ conn: Deno.Conn; since: number; silent: boolean }>();
  #watchdog: ReturnType<typeof setInterval> | undefined;

  /**
   * One read with the idle timer: a peer silent for `idleMs` has its connection closed (GetError). One
   * watchdog interval for every read, not a timer set and cleared per read: a replication makes ~5,000 reads a GB.
   */
  async #read(conn: Deno.Conn, dst: Uint8Array): Promise<number | null> {
    const r = { conn, since: performance.now(), silent: false };
    this.#reads.add(r);
    this.#watch();
    try {
      return await conn.read(dst);
    } catch (e) {
      throw new GetError(r.silent ? "it stopped sending" : describe(e), { cause: e });
    } finally {
      this.#reads.delete(r);
    }
  }

  /** Starts the watchdog, checking every quarter of the idle time while reads are under way (it holds no process open). */
  #watch(): void {
    if (this.#watchdog !== undefined) return;
    const id = this.#watchdog = setInterval(() => {
      const now = performance.now();
      for (const r of this.#reads) {
        if (now - r.since < this.idleMs) continue;
        r.silent = true;
        closeQuietly(r.conn);
      }
      if (this.#reads.size === 0) {
        clearInterval(id);
        this.#watchdog = undefined;
      }
    }, Math.max(5, this.idleMs / 4));
    Deno.unrefTimer(id as unknown as number);
  }

  async #exchange(conn: Deno.Conn, request: Uint8Array): Promise<GetResponse> {
    try {
      for (let w = 0; w < request.length;) w += await conn.write(request.subarray(w));
    } catch (e) {
      throw new StaleError(describe(e), { cause: e });
    }
    const head = new Uint8Array(MAX_HEAD);
    let have = 0;
    let end = -1;
    while (end < 0) {
      if (have === head.length) throw new GetError(`its response headers exceed ${MAX_HEAD} bytes`);
      let n;
      try {
        n = await this.#read(conn, head.subarray(have));
      } catch (e) {
        if (have === 0) throw new StaleError((e as Error).message, { cause: e });
        throw e;
      }
      if (n === null) {
        if (have === 0) throw new StaleError("the connection closed");
        throw new GetError("the connection closed inside the response headers");
      }
      end = indexOf(head, CRLFCRLF, Math.max(0, have - 3), have + n);
      have += n;
    }
    const lines = new TextDecoder("latin1").decode(head.subarray(0, end)).split("\r\n");
    const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!statusLine) throw new GetError(`it answered ${JSON.stringify(lines[0].slice(0, 80))}, not HTTP/1.1`);
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
    }
    const cl = headers.get("content-length");
    const length = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
    const keep = !/^HTTP\/1\.0/.test(lines[0]) && !/\bclose\b/i.test(headers.get("connection") ?? "") && length !== undefined &&
      !headers.has("transfer-encoding");
    // Body bytes that came in with the headers.
    let extra = head.subarray(end + 4, have);
    let left = length ?? Infinity;
    let open = true;
    const release = (reuse: boolean) => {
      if (!open) return;
      open = false;
      if (reuse && keep && !this.#closed) this.#idle.push(conn);
      else closeQuietly(conn);
    };
    if (left === 0) release(true);
    const read = async (dst: Uint8Array): Promise<number> => {
      let n = 0;
      while (n < dst.length && left > 0) {
        if (extra.length) {
          const k = Math.min(extra.length, dst.length - n, left);
          dst.set(extra.subarray(0, k), n);
          extra = extra.subarray(k);
          n += k;
          left -= k;
          continue;
        }
        if (!open) throw new GetError("the response was given up");
        let got;
        try {
          got = await this.#read(conn, dst.subarray(n, n + Math.min(dst.length - n, left)));
        } catch (e) {
          release(false);
          throw e;
        }
        if (got === null) {
          release(false);
          if (length === undefined) {
            left = 0;
            break;
          }
          throw new GetError("the connection closed");
        }
        n += got;
        left -= got;
        // What arrived goes to the caller at once: written while still in the CPU's cache.
        break;
      }
      if (left === 0) release(true);
      return n;
    };
    return { status: Number(statusLine[1]), headers, length, read, cancel: () => release(false) };
  }
}

/** A failure before any byte of the response: on a reused connection, the peer had closed it. */
class StaleError extends GetError {}

function indexOf(hay: Uint8Array, needle: number[], from: number, to: number): number {
  outer: for (let i = from; i + needle.length <= to; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* closed */ }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
