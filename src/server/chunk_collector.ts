/**
 * Keeping a streaming server's memory flat. A blob streamed through
 * JavaScript (in place from the archive, or following a copy from a peer) goes
 * out as chunks in fresh buffers: Deno's response body keeps a zero-copy
 * reference to each chunk until hyper has written it and gives no signal when
 * it lets go, so a buffer can never be provably reused. Dead buffers are
 * freed only when V8 collects, which external-memory pressure starts only
 * after ~64 MB of them (RSS rose 70–150 MB while 4 clients pulled). So, every
 * few MiB of chunks handed out, a young-generation collection (a scavenge,
 * well under a millisecond on this small heap) frees the chunks already
 * sent. It needs V8's `--expose-gc` (deno.json's compile tasks and the
 * Containerfile's bundle entry pass it); without it this does nothing.
 */

/** Bytes per chunk read for a response: small, so the few chunks in flight per client stay small. */
export const CHUNK = 256 << 10;

/** Bytes of chunks handed out between two collections. */
const EVERY = 8 << 20;

/** What V8's `--expose-gc` puts on the global object. */
type Collect = (opts: { type: "minor" | "major"; execution: "sync" | "async" }) => void;

/**
 * A counter that runs `collect` (a young-generation collection) once per
 * `every` bytes counted; with no `collect`, a counter that does nothing.
 */
export function chunkCollector(collect: Collect | undefined, every = EVERY): (bytes: number) => void {
  if (!collect) return () => {};
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since < every) return;
    since = 0;
    collect({ type: "minor", execution: "sync" });
  };
}

const exposed = (globalThis as { gc?: unknown }).gc;

/** Counts the bytes of a freshly allocated chunk about to be handed to a response body. */
export const countChunk: (bytes: number) => void = chunkCollector(typeof exposed === "function" ? exposed as Collect : undefined);
