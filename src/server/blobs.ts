/**
 * `GET`/`HEAD /v2/<name>/blobs/<digest>`: configs and layers (and manifests,
 * which are blobs too) streamed from their file, never whole in memory, with
 * byte ranges. A blob not yet verified (the archive in place) is hashed as it
 * is first served and cut off, and never served again, if it does not match.
 */
import { isDigest, newHasher } from "../image/digest.ts";
import type { GrowingBlob, Located, ServedContent } from "./content.ts";
import { etagOf, notModified, rangeAnswer } from "./conditional.ts";
import { API_HEADER, decodeSegment, RegistryError, type RepoRequest } from "./http.ts";
import { hashLocated, rangeStream } from "./located_bytes.ts";
import { copyStarted, growingStream } from "./growing_blob.ts";
import { sliceSpans, spansOf } from "../archive/source.ts";

/** A part of a blob is only as good as the whole: a blob not yet verified is hashed whole first. */
async function ensureVerified(content: ServedContent, l: Located, digest: string): Promise<void> {
  if (l.verified || content.verified.has(digest)) return;
  if (await hashLocated(l) !== digest) {
    content.bad.add(digest);
    throw new RegistryError(404, "BLOB_UNKNOWN", `blob ${digest} failed verification and is withheld`);
  }
  content.verified.add(digest);
}

/** The whole body of a verified blob: a whole file (DIR's tree) is handed to the runtime, which streams it without a copy through JavaScript. */
async function wholeBody(l: Located): Promise<ReadableStream<Uint8Array>> {
  const whole = !l.spans && l.offset === 0 && (await Deno.stat(l.file)).size === l.size;
  return whole ? (await Deno.open(l.file)).readable : rangeStream(spansOf(l));
}

/** First serving of a blob from the archive: hashed as it streams; a mismatch cuts the response before its end. */
function checkedBody(content: ServedContent, l: Located, digest: string, warn?: (msg: string) => void): ReadableStream<Uint8Array> {
  const hasher = newHasher();
  return rangeStream(spansOf(l), (c) => hasher.update(c), () => {
    const got = hasher.digest();
    if (got === digest) {
      content.verified.add(digest);
      return true;
    }
    content.bad.add(digest);
    warn?.(`blob ${digest} in ${l.file} hashes to ${got}: the download was cut and the blob is withheld from now on`);
    return false;
  });
}

/**
 * How long a request waits for the load to start copying a blob before it is served from the archive in place: well
 * under the 30 s a peer (or CRI-O's client) waits for response headers. ISOLOAD_MEANWHILE_AFTER_MS changes it (tests).
 */
function meanwhileAfterMs(): number {
  const text = Deno.env.get("ISOLOAD_MEANWHILE_AFTER_MS");
  const ms = Number(text);
  return text && Number.isFinite(ms) && ms >= 0 ? ms : 10_000;
}

/** Whether the copy neither started (for a range: finished) nor failed within meanwhileAfterMs(). */
async function copyLate(growing: GrowingBlob, untilDone: boolean): Promise<boolean> {
  const waited = untilDone ? growing.done.then(() => true, () => true) : copyStarted(growing).then(() => true);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(true), meanwhileAfterMs())));
  try {
    return await Promise.race([waited.then(() => false), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The blobs handler over `content`; `warn` hears of a blob that failed its check. */
export function blobsHandler(content: ServedContent, warn?: (msg: string) => void): (r: RepoRequest) => Promise<Response> {
  const handler = async (r: RepoRequest): Promise<Response> => {
    const digest = decodeSegment(r.ref, "DIGEST_INVALID");
    if (!isDigest(digest)) throw new RegistryError(400, "DIGEST_INVALID", `invalid digest ${JSON.stringify(digest)}`);
    const known = r.repo.blobs.has(digest) || r.repo.manifests.has(digest);
    let l = known && !content.bad.has(digest) ? await content.blobs.locate(digest) : undefined;
    if (!l) throw new RegistryError(404, "BLOB_UNKNOWN", `blob unknown to registry: ${r.name}@${digest}`, { detail: { digest } });
    const etag = etagOf(digest);
    const base = {
      ...API_HEADER,
      "Content-Type": "application/octet-stream",
      "Docker-Content-Digest": digest,
      "Accept-Ranges": "bytes",
      "ETag": etag,
    };
    if (notModified(r.req.headers, etag)) return new Response(null, { status: 304, headers: base });
    const range = rangeAnswer(r.req.headers, l.size, etag);
    if (range.kind === "unsatisfiable") {
      return new Response(null, { status: 416, headers: { ...base, "Content-Range": `bytes */${l.size}` } });
    }
    if (r.head) return new Response(null, { headers: { ...base, "Content-Length": String(l.size) } });
    const late = l.growing && l.meanwhile ? await copyLate(l.growing, range.kind === "part") : false;
    if (late) {
      // The load has not reached this blob in time (slow media, a large entry ahead of it): read it in place now, a second read
      // of these bytes, rather than let the client (or a peer copying from this node) give up waiting for headers.
      warn?.(`blob ${digest}: the load has not reached it after ${meanwhileAfterMs() / 1000} s; serving it from the archive in place`);
      l = l.meanwhile!;
    }
    if (l.growing) {
      // Still being copied in from a peer: a range waits for the verified copy; a whole blob follows the copy as it lands.
      const unavailable = () => new RegistryError(404, "BLOB_UNKNOWN", `blob ${digest} is not here and no peer could give it`);
      if (range.kind === "part" ? !(await l.growing.done.then(() => true, () => false)) : !(await copyStarted(l.growing))) {
        // The copy will not come (load --serve's load stopped): serve the blob from wherever it is found now, if not a copy again.
        const again = content.bad.has(digest) ? undefined : await content.blobs.locate(digest);
        if (again && !again.growing) return await handler(r);
        throw unavailable();
      }
      if (range.kind === "part") return await handler(r);
      const stream = growingStream(l.growing, digest, l.size, l.file, (why) => warn?.(`blob ${digest}: ${why}; the download was cut`));
      return new Response(stream, { headers: { ...base, "Content-Length": String(l.size) } });
    }
    if (range.kind === "part") {
      await ensureVerified(content, l, digest);
      const length = range.end - range.start + 1;
      return new Response(rangeStream(sliceSpans(spansOf(l), range.start, length)), {
        status: 206,
        headers: { ...base, "Content-Length": String(length), "Content-Range": `bytes ${range.start}-${range.end}/${l.size}` },
      });
    }
    const verified = l.verified || content.verified.has(digest);
    const body = verified ? await wholeBody(l) : checkedBody(content, l, digest, warn);
    return new Response(body, { headers: { ...base, "Content-Length": String(l.size) } });
  };
  return handler;
}
