/**
 * Blobs and manifests copied from a set of peers into a storage tree, with
 * failover: each copy goes through the tree's own writer (temp file, hash,
 * fsync, rename only on a digest match); a peer that fails is skipped for
 * that copy and the next is tried, a peer whose bytes do not match is never
 * asked for that digest again. One copy per digest at a time, however many
 * callers ask (the background fill and the requests of `serve --peer`).
 */
import { digestOf } from "../image/digest.ts";
import { CorruptBlobError, type RegistryStore } from "../store/storage_tree.ts";
import { EnvironmentError, InputError } from "../util/errors.ts";
import { checkInterrupt } from "../util/interrupt.ts";
import type { BlobBytes } from "../archive/ingest.ts";
import { type Peer, PeerError, PeerSelfError } from "./peer.ts";

/** What is being copied, for messages: the blob and the image that needs it. */
export interface CopyWhat {
  digest: string;
  /** Repository at the peers that links the digest (a blob GET must name one). */
  repository: string;
  /** "layer of quay.io/ns/repo:tag", "manifest of …". */
  label: string;
}

/** How far a copy has got: readers follow the temp file as it grows (see peer_blobs.ts). */
export interface CopyProgress {
  /** Bytes of the current attempt written to `tmp` so far. */
  written: number;
  /** Counts attempts: a new attempt (another peer) rewrites `tmp` from its start. */
  attempt: number;
  /** The temp file the current attempt writes; renamed to the blob's final path once verified. */
  tmp?: string;
}

/** A copy in flight. */
export interface Inflight {
  /** The bytes arrived and hash to the digest (in a pass, they may still wait in tmp/ for their batch to land). */
  verified: Promise<void>;
  /** The blob is at its final path. */
  done: Promise<void>;
  readonly progress: CopyProgress;
}

/** Rounds over all peers before a copy gives up, and the pause between rounds (a peer may be restarting). */
const ROUNDS = 3;
const ROUND_PAUSE_MS = 1000;
/** A peer that failed to connect is tried last for this long. */
const DOWN_MS = 10_000;

/** Copies from peers into a store. */
export class PeerFetcher {
  #inflight = new Map<string, Inflight>();
  #down = new Map<Peer, number>();
  #next = 0;

  /**
   * `onBytes` is told of every byte that lands (progress); `signal` stops copies
   * at their next chunk (InterruptedError).
   */
  constructor(
    readonly peers: Peer[],
    readonly store: RegistryStore,
    readonly opts: { signal?: AbortSignal; warn?: (msg: string) => void } = {},
  ) {}

  /** Told of every byte that lands (progress). */
  onBytes?: (n: number) => void;

  /** The copy of `digest` now in flight, if any. */
  inflight(digest: string): Inflight | undefined {
    return this.#inflight.get(digest);
  }

  #self = new Set<Peer>();

  /**
   * Asks each peer once (once this process serves): one that is this very process is told apart (a warning) and
   * tried last from then on. Unreachable peers are left to the copies to find out.
   */
  async findSelf(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.ping().catch((e) => e instanceof PeerSelfError && this.#isSelf(p))));
  }

  /** Says once that `peer` is this process itself; it stays tried last (with the down ones), as the name may move on. */
  #isSelf(peer: Peer): void {
    if (!this.#self.has(peer)) this.opts.warn?.(`skipping peer ${peer.name}: it is this isoload itself (its address names this node)`);
    this.#self.add(peer);
  }

  /** Peers in the order to try for one copy: spread over the peers, those that failed lately last. */
  #order(): Peer[] {
    const n = this.peers.length;
    const start = this.#next++ % n;
    const rotated = [...this.peers.slice(start), ...this.peers.slice(0, start)];
    const now = Date.now();
    const down = (p: Peer) => this.#self.has(p) || (this.#down.get(p) ?? 0) > now;
    return [...rotated.filter((p) => !down(p)), ...rotated.filter(down)];
  }

  /**
   * Copies a blob of `size` bytes into the store unless it is there (or being
   * copied, then waits for that copy). PeerError-based failures on every peer
   * give EnvironmentError; corrupt bytes on every peer that had it, InputError.
   */
  blob(what: CopyWhat, size: number): Inflight {
    return this.#once(what.digest, async (progress) => {
      // Landed since the caller looked (a copy that just finished): nothing to do.
      if ((await this.store.blobSize(what.digest)) === size) return;
      await this.#copy(what, async (peer) => {
        const bytes = await peer.blob(what.repository, what.digest, size);
        progress.attempt++;
        progress.written = 0;
        progress.tmp = this.store.tempPath(what.digest);
        try {
          await this.store.putFetched(what.digest, size, this.#watch(bytes, progress), what.label);
        } finally {
          // A write that failed (a full disk) leaves the response unread: its connection is closed, not leaked.
          bytes.cancel();
        }
      });
    });
  }

  /** Copies a manifest (size unknown until it arrives; checked in memory before it is written). */
  manifest(what: CopyWhat): Inflight {
    return this.#once(what.digest, () =>
      this.#copy(what, async (peer) => {
        const bytes = await peer.manifest(what.repository, what.digest);
        const got = digestOf(bytes);
        if (got !== what.digest) {
          throw new CorruptBlobError(what.digest, `Cannot load manifest ${what.digest} (${what.label}): its bytes hash to ${got}`);
        }
        let at = 0;
        const whole: BlobBytes = {
          read(dst) {
            const n = Math.min(dst.length, bytes.length - at);
            dst.set(bytes.subarray(at, at += n));
            return Promise.resolve(n);
          },
          async *[Symbol.asyncIterator]() {
            yield bytes;
          },
        };
        await this.store.putFetched(what.digest, bytes.length, whole, what.label);
        this.onBytes?.(bytes.length);
      }));
  }

  #once(digest: string, run: (progress: CopyProgress) => Promise<void>): Inflight {
    const have = this.#inflight.get(digest);
    if (have) return have;
    const progress: CopyProgress = { written: 0, attempt: 0 };
    const verified = run(progress);
    const flight: Inflight = {
      progress,
      verified,
      done: verified.then(() => this.store.landed(digest)).finally(() => this.#inflight.delete(digest)),
    };
    // Callers that only follow the progress must not leave a rejection unhandled.
    verified.catch(() => {});
    flight.done.catch(() => {});
    this.#inflight.set(digest, flight);
    return flight;
  }

  /**
   * Counts bytes as they pass to the writer: chunks once it asks for the next
   * (it has written this one), reads as they return (it is writing them: a
   * follower of the temp file may find fewer there for a moment and reads on).
   */
  #watch(bytes: BlobBytes, progress: CopyProgress): BlobBytes {
    const count = (n: number) => {
      progress.written += n;
      this.onBytes?.(n);
    };
    const signal = this.opts.signal;
    return {
      async read(dst) {
        checkInterrupt(signal, `copy from peers`);
        const n = await bytes.read(dst);
        count(n);
        return n;
      },
      async *[Symbol.asyncIterator]() {
        for await (const c of bytes) {
          checkInterrupt(signal, `copy from peers`);
          yield c;
          count(c.length);
        }
      },
    };
  }

  async #copy(what: CopyWhat, attempt: (peer: Peer) => Promise<void>): Promise<void> {
    const failures = new Map<string, string>();
    const distrusted = new Set<Peer>();
    for (let round = 0; round < ROUNDS; round++) {
      if (round > 0) await new Promise((r) => setTimeout(r, ROUND_PAUSE_MS * round));
      for (const peer of this.#order()) {
        if (distrusted.has(peer)) continue;
        checkInterrupt(this.opts.signal, `copy ${what.digest} from ${peer.name}`);
        try {
          await attempt(peer);
          this.#down.delete(peer);
          return;
        } catch (e) {
          if (e instanceof PeerSelfError) this.#isSelf(peer);
          if (e instanceof PeerError) {
            failures.set(peer.name, e.message);
            if (!/HTTP \d+$/.test(e.message)) this.#down.set(peer, Date.now() + DOWN_MS);
            continue;
          }
          if (e instanceof CorruptBlobError || (e instanceof InputError && e.constructor === InputError)) {
            // The peer served bytes that are not the blob: never ask it for this one again.
            distrusted.add(peer);
            failures.set(peer.name, `corrupt: ${e.message}`);
            this.opts.warn?.(`${peer.name} served ${what.digest} (${what.label}) with bytes that do not match it; trying another peer`);
            continue;
          }
          throw e;
        }
      }
      if (distrusted.size === this.peers.length) break;
    }
    const detail = [...failures].map(([p, m]) => `${p}: ${m.replace(/^Cannot [^:]*: /, "")}`).join("; ");
    if (distrusted.size > 0 && [...failures.values()].every((m) => m.startsWith("corrupt: ") || /HTTP 404$/.test(m))) {
      throw new InputError(
        `Cannot copy ${what.digest} (${what.label}): every peer that has it serves bytes that do not match it (${detail})`,
      );
    }
    throw new EnvironmentError(`Cannot copy ${what.digest} (${what.label}) from any peer (${detail})`);
  }
}
