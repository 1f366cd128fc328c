/**
 * Serving a blob while it is still being copied in (from a peer): the
 * response follows the temp file as the copy writes it, at the client's own
 * pace, and hashes what it sends; the last chunk is held back until the copy
 * is verified at its final path and the bytes sent hash to the digest. A copy
 * that fails, or bytes that do not match, end the response short of its
 * Content-Length, so the client sees a failed transfer and never a whole
 * wrong blob (as in-place serving does).
 */
import { newHasher } from "../image/digest.ts";
import type { GrowingBlob } from "./content.ts";
import { CHUNK, countChunk } from "./chunk_collector.ts";

/** How long a reader that caught up with the copy waits before looking again. */
const POLL_MS = 10;

/** Opens a file if it exists. */
async function openIfExists(path: string): Promise<Deno.FsFile | undefined> {
  try {
    return await Deno.open(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/**
 * The whole blob as a stream. `final` is its path once landed; `onBad` is told
 * when the response had to be cut.
 */
export function growingStream(
  blob: GrowingBlob,
  digest: string,
  size: number,
  final: string,
  onBad: (why: string) => void,
): ReadableStream<Uint8Array> {
  let state: "copying" | "landed" | "failed" = "copying";
  let failure = "";
  blob.done.then(() => (state = "landed"), (e) => {
    state = "failed";
    failure = e instanceof Error ? e.message : String(e);
  });
  const hasher = newHasher();
  let sent = 0;
  let file: Deno.FsFile | undefined;
  /** What `file` is: an attempt's temp file, or the final path. */
  let openFor: number | "final" | undefined;
  let held: Uint8Array | undefined;
  const close = () => {
    file?.close();
    file = undefined;
    openFor = undefined;
  };
  const wait = () => Promise.race([new Promise((r) => setTimeout(r, POLL_MS)), blob.done.catch(() => {})]);

  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      for (;;) {
        if (sent === size) {
          close();
          await blob.done.catch(() => {});
          const got = hasher.digest();
          if (state !== "landed" || got !== digest) {
            onBad(state !== "landed" ? `the copy failed (${failure})` : `the bytes sent hash to ${got}`);
            // Ending short of Content-Length drops the connection: the client sees a failed download.
            return ctl.close();
          }
          if (held) ctl.enqueue(held);
          return ctl.close();
        }
        if (state === "failed") {
          close();
          onBad(`the copy failed (${failure})`);
          return ctl.close();
        }
        // How much may be read, and from which file.
        const landed = state === "landed";
        const attempt = blob.progress.attempt;
        const available = landed ? size : blob.progress.written;
        if (available <= sent) {
          await wait();
          continue;
        }
        const want = landed ? "final" : attempt;
        if (openFor !== want) {
          close();
          const f = await openIfExists(landed ? final : blob.progress.tmp ?? final);
          if (!f) {
            // Renamed (or restarted) between the look and the open: look again.
            await wait();
            continue;
          }
          await f.seek(sent, Deno.SeekMode.Start);
          file = f;
          openFor = want;
        }
        const buf = new Uint8Array(Math.min(available - sent, CHUNK));
        countChunk(buf.length);
        const n = await file!.read(buf);
        if (n === null) {
          await wait();
          continue;
        }
        const chunk = buf.subarray(0, n);
        hasher.update(chunk);
        sent += n;
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

/**
 * Waits until the copy has written its first bytes or has landed (true), or
 * failed (false): a blob no peer can give is answered with an error status
 * rather than a response cut short.
 */
export async function copyStarted(blob: GrowingBlob): Promise<boolean> {
  let settled: boolean | undefined;
  blob.done.then(() => (settled = true), () => (settled = false));
  while (settled === undefined && blob.progress.written === 0) {
    await Promise.race([new Promise((r) => setTimeout(r, POLL_MS)), blob.done.catch(() => {})]);
  }
  return settled ?? true;
}
