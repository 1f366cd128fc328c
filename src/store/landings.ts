/**
 * The blobs a load's pass is landing, as `load --serve` follows them: each
 * blob's temp file and how much of it is written, when it is verified and
 * when it lands at its final path, and the blobs clients asked for before the
 * pass reached them (read next, out of order, from where the archive's index
 * found them). Clients are served from the bytes the load reads, so the
 * medium is read once.
 */
import type { BlobLocation } from "../archive/source.ts";
import type { GrowingBlob } from "../server/content.ts";

/** Where a blob stands in the pass. */
type Stage = "waiting" | "writing" | "verified";

interface Landing extends GrowingBlob {
  progress: { written: number; attempt: number; tmp?: string };
  stage: Stage;
  /** A client follows it: it is read next if not begun, and settled (made durable, renamed) soon once verified. */
  followed: boolean;
  resolve(): void;
  reject(e: unknown): void;
}

/** A blob a client waits for, to be read before the sequential pass reaches it. */
export interface WantedBlob {
  digest: string;
  where: BlobLocation;
}

/**
 * The state a pass shares with the server while it runs. The pass reports
 * (`begin`, `wrote`, `verified`, `landed`, `failed`, and `close` at its end);
 * the server asks `follow`; the pass takes `nextWanted` between entries.
 */
export class Landings {
  readonly #entries = new Map<string, Landing>();
  readonly #landed = new Set<string>();
  #wanted: string[] = [];
  #closed = false;
  /** Where the archive's index found each blob, for reading one out of order. */
  #where: ReadonlyMap<string, BlobLocation> = new Map();
  /** Set by the store in a pass: a followed blob is verified and waits for its batch to settle. */
  hurry?: () => void;

  /** Where each blob lies in the archive (the in-place index), so a wanted blob can be read out of order. */
  locate(where: ReadonlyMap<string, BlobLocation>): void {
    this.#where = where;
  }

  #entry(digest: string): Landing {
    let e = this.#entries.get(digest);
    if (!e) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const done = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // Followers await it; one nobody follows must not leave a rejection unhandled.
      done.catch(() => {});
      e = { progress: { written: 0, attempt: 0 }, stage: "waiting", followed: false, done, resolve, reject };
      this.#entries.set(digest, e);
    }
    return e;
  }

  /**
   * A client wants `digest`: its landing to follow, or "landed" when it is at
   * its final path, or undefined when no pass will land it (none runs any
   * more: serve it from elsewhere). A blob not begun is queued to be read next.
   */
  follow(digest: string): GrowingBlob | "landed" | undefined {
    if (this.#landed.has(digest)) return "landed";
    if (this.#closed) return undefined;
    const e = this.#entry(digest);
    if (!e.followed) {
      e.followed = true;
      if (e.stage === "waiting") this.#wanted.push(digest);
    }
    if (e.stage === "verified") this.hurry?.();
    return e;
  }

  /** The next blob a client waits for that the pass has not begun, and where it lies; undefined when none. */
  nextWanted(): WantedBlob | undefined {
    while (this.#wanted.length) {
      const digest = this.#wanted.shift()!;
      const where = this.#where.get(digest);
      if (this.#entries.get(digest)?.stage === "waiting" && where) return { digest, where };
    }
    return undefined;
  }

  /** The pass begins writing `digest` to `tmp` (an attempt starts from byte 0). */
  begin(digest: string, tmp: string): void {
    const e = this.#entry(digest);
    e.stage = "writing";
    e.progress.attempt++;
    e.progress.written = 0;
    e.progress.tmp = tmp;
  }

  /** The first `written` bytes of `digest` are in its temp file. */
  wrote(digest: string, written: number): void {
    const e = this.#entries.get(digest);
    if (e) e.progress.written = written;
  }

  /** `digest` hashed to its name and waits to be settled; true when a client follows it (settle it soon). */
  verified(digest: string): boolean {
    const e = this.#entries.get(digest);
    if (!e) return false;
    e.stage = "verified";
    return e.followed;
  }

  /** True when a client follows `digest`. */
  followed(digest: string): boolean {
    return this.#entries.get(digest)?.followed === true;
  }

  /** `digest` is at its final path. */
  landed(digest: string): void {
    this.#landed.add(digest);
    const e = this.#entries.get(digest);
    this.#entries.delete(digest);
    e?.resolve();
  }

  /** `digest` will not land in this attempt (its bytes did not match, or a write failed). */
  failed(digest: string, why: unknown): void {
    const e = this.#entries.get(digest);
    this.#entries.delete(digest);
    e?.reject(why);
  }

  /** The pass is over: what did not land will not (followers are cut, later requests served from elsewhere). */
  close(why: unknown = new Error("the load ended before this blob landed")): void {
    this.#closed = true;
    this.#wanted = [];
    for (const [digest, e] of this.#entries) {
      this.#entries.delete(digest);
      e.reject(why);
    }
  }
}
