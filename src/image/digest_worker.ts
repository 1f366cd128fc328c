/**
 * SHA-256 off the main thread: a Worker that hashes buffers handed to it
 * (transferred, not copied, and handed back once hashed), or whole files it
 * reads itself. The main thread keeps reading and writing while the worker
 * hashes, so a load costs about the larger of the two instead of their sum.
 *
 * The worker's program is this module's `workerMain`, started from a `data:`
 * URL of its own source text: it needs no file beside the bundle
 * (dist/isoload.js) and nothing to `--include` in `deno compile` (which
 * embeds no module a `new URL("./x.ts", import.meta.url)` names, and whose
 * binaries load no `blob:` worker before Deno 2.9).
 */
/** A message to the worker. */
type Request =
  | { op: "update"; id: number; buf: ArrayBuffer; off: number; len: number }
  | { op: "digest"; id: number }
  | { op: "file"; id: number; path: string; bufferSize: number };

/** A message from the worker. */
type Reply =
  | { op: "buffer"; buf: ArrayBuffer }
  | { op: "digest"; id: number; hex: string }
  | { op: "file"; id: number; hex?: string; size?: number; error?: string };

/** The minimal hasher interface the worker uses (node:crypto's Hash). */
interface WorkerHash {
  update(b: Uint8Array): unknown;
  digest(enc: "hex"): string;
}

/** What the worker sees of its global scope. */
interface WorkerScope {
  onmessage: ((e: MessageEvent<Request>) => void) | null;
  postMessage(m: Reply, transfer?: Transferable[]): void;
}

/**
 * The worker's program. Runs inside the worker from its source text, so it
 * refers to nothing outside itself but its arguments.
 */
function workerMain(scope: WorkerScope, createHash: (alg: "sha256") => WorkerHash): void {
  const sessions = new Map<number, WorkerHash>();
  let fileBuf: Uint8Array | undefined;
  // Synchronous reads: this thread has nothing else to do, and a read straight into its own buffer copies least.
  const hashFile = (path: string, bufferSize: number): { hex: string; size: number } => {
    if (!fileBuf || fileBuf.length !== bufferSize) fileBuf = new Uint8Array(bufferSize);
    const h = createHash("sha256");
    const f = Deno.openSync(path);
    let size = 0;
    try {
      for (let n; (n = f.readSync(fileBuf)) !== null;) {
        h.update(fileBuf.subarray(0, n));
        size += n;
      }
    } finally {
      f.close();
    }
    return { hex: h.digest("hex"), size };
  };
  scope.onmessage = (e) => {
    const m = e.data;
    if (m.op === "update") {
      let h = sessions.get(m.id);
      if (!h) sessions.set(m.id, h = createHash("sha256"));
      h.update(new Uint8Array(m.buf, m.off, m.len));
      scope.postMessage({ op: "buffer", buf: m.buf }, [m.buf]);
    } else if (m.op === "digest") {
      const h = sessions.get(m.id) ?? createHash("sha256");
      sessions.delete(m.id);
      scope.postMessage({ op: "digest", id: m.id, hex: h.digest("hex") });
    } else {
      try {
        scope.postMessage({ op: "file", id: m.id, ...hashFile(m.path, m.bufferSize) });
      } catch (err) {
        scope.postMessage({ op: "file", id: m.id, error: String((err as Error)?.message ?? err) });
      }
    }
  };
}

/** The worker's module source, as a data: URL. */
function workerUrl(): string {
  const src = `import { createHash } from "node:crypto";\n(${workerMain.toString()})(self, createHash);\n`;
  return `data:text/javascript;base64,${btoa(src)}`;
}

/**
 * One hashing worker. Hash a stream with {@link DigestWorker.begin}, or a whole
 * file with {@link DigestWorker.hashFile}. Call `close()` when done: a live
 * worker keeps the process running.
 *
 * @example
 * ```ts
 * const w = new DigestWorker();
 * const s = w.begin();
 * const buf = new ArrayBuffer(4 << 20); // filled by a read
 * const back = await s.update(buf, 1024); // `buf` is detached; `back` is the same memory, returned
 * console.log(await s.digest());
 * w.close();
 * ```
 */
export class DigestWorker {
  readonly #worker: Worker;
  #nextId = 1;
  /** Buffers handed over, in order: the worker hands them back in the same order. */
  readonly #buffers: { resolve: (buf: ArrayBuffer) => void; reject: (e: Error) => void }[] = [];
  readonly #results = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  #failed: Error | undefined;
  #closed = false;

  constructor() {
    this.#worker = new Worker(workerUrl(), { type: "module", name: "isoload-sha256" });
    this.#worker.onmessage = (e: MessageEvent<Reply>) => {
      const m = e.data;
      if (m.op === "buffer") this.#buffers.shift()?.resolve(m.buf);
      else {
        const r = this.#results.get(m.id);
        this.#results.delete(m.id);
        r?.resolve(m);
      }
    };
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#fail(new Error(`the hashing worker failed: ${e.message}`));
    };
  }

  #fail(err: Error): void {
    this.#failed = err;
    for (const r of this.#results.values()) r.reject(err);
    this.#results.clear();
    for (const b of this.#buffers.splice(0)) b.reject(err);
  }

  #call(req: Request & { id: number }, transfer: Transferable[] = []): Promise<Reply> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#closed) return Promise.reject(new Error("the hashing worker is closed"));
    return new Promise((resolve, reject) => {
      this.#results.set(req.id, { resolve, reject });
      this.#worker.postMessage(req, transfer);
    });
  }

  /** Starts hashing one stream of bytes. */
  begin(): DigestSession {
    const id = this.#nextId++;
    return {
      update: (buf, len, off = 0) => {
        if (this.#failed) return Promise.reject(this.#failed);
        const back = new Promise<ArrayBuffer>((resolve, reject) => this.#buffers.push({ resolve, reject }));
        this.#worker.postMessage({ op: "update", id, buf, off, len } satisfies Request, [buf]);
        return back;
      },
      digest: async () => {
        const r = await this.#call({ op: "digest", id });
        return `sha256:${(r as { hex: string }).hex}`;
      },
    };
  }

  /** Reads and hashes a whole file in the worker; resolves to its digest and size. */
  async hashFile(path: string, bufferSize = 8 << 20): Promise<{ digest: string; size: number }> {
    const r = await this.#call({ op: "file", id: this.#nextId++, path, bufferSize }) as Reply & { op: "file" };
    if (r.error !== undefined) throw new Error(`Cannot read ${path}: ${r.error}`);
    return { digest: `sha256:${r.hex}`, size: r.size! };
  }

  /** Stops the worker. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.terminate();
    this.#fail(new Error("the hashing worker is closed"));
  }
}

/**
 * Hashes whole files on every core: one worker per CPU, each reading and
 * hashing its own files (largest first, so the last to finish is small).
 * Calls `done` as each file is hashed; a file that cannot be read gets an
 * `error` instead of a digest. Stops handing out files once `stop()` says so.
 */
export async function hashFiles(
  files: { path: string; size: number }[],
  done: (file: { path: string; size: number }, r: { digest?: string; error?: string }) => void,
  opts: { workers?: number; stop?: () => boolean } = {},
): Promise<void> {
  const order = [...files].sort((a, b) => b.size - a.size);
  const lanes = Math.max(1, Math.min(opts.workers ?? navigator.hardwareConcurrency ?? 1, order.length));
  const workers = Array.from({ length: lanes }, () => new DigestWorker());
  let next = 0;
  try {
    await Promise.all(workers.map(async (w) => {
      while (next < order.length && !opts.stop?.()) {
        const f = order[next++];
        try {
          done(f, { digest: (await w.hashFile(f.path)).digest });
        } catch (e) {
          done(f, { error: (e as Error).message });
        }
      }
    }));
  } finally {
    for (const w of workers) w.close();
  }
}

/** One stream being hashed in a {@link DigestWorker}. */
export interface DigestSession {
  /**
   * Hashes `len` bytes of `buf` from `off` (0 by default), which is
   * transferred (detached here); resolves to the same memory, handed back once
   * hashed. Calls are hashed in the order made.
   */
  update(buf: ArrayBuffer, len: number, off?: number): Promise<ArrayBuffer>;
  /** The digest of everything given, once all of it is hashed. */
  digest(): Promise<string>;
}
