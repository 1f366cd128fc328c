/**
 * Conditional and partial requests (RFC 9110 §13, §14) for content whose ETag
 * is its digest: `If-None-Match` (304), and `Range` with `If-Range`. Anything
 * this registry does not do (another unit, several ranges, a stale
 * `If-Range`) means the whole body, as the RFC allows; only a single byte
 * range that lies past the end is 416.
 */

/** The strong ETag of content named by its digest. */
export function etagOf(digest: string): string {
  return `"${digest}"`;
}

/** Opaque tags of an If-None-Match / If-Match list (weakness dropped: If-None-Match compares weakly). */
function entityTags(header: string): string[] {
  return header.split(",").map((t) => t.trim().replace(/^W\//, "")).filter(Boolean);
}

/** True when `If-None-Match` names the current ETag (or is `*`): the answer is 304 Not Modified. */
export function notModified(headers: Headers, etag: string): boolean {
  const h = headers.get("If-None-Match");
  if (h === null) return false;
  return entityTags(h).some((t) => t === "*" || t === etag);
}

/** What to send of a body of `size` bytes: all of it, one byte range, or 416. */
export type RangeAnswer = { kind: "whole" } | { kind: "part"; start: number; end: number } | { kind: "unsatisfiable" };

/** Parses one `first-last` / `first-` / `-suffix` byte range; undefined when it is not one. */
function byteRange(spec: string, size: number): { start: number; end: number } | null | undefined {
  const m = /^(\d*)-(\d*)$/.exec(spec.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return null;
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  if (m[2] !== "" && Number(m[2]) < start) return undefined; // last < first: invalid, so ignored
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  return start >= size || size === 0 ? null : { start, end };
}

/**
 * The answer to a request's `Range` (and `If-Range`) for content of `size`
 * bytes with ETag `etag`. A unit other than bytes, a malformed range or a list
 * of ranges is ignored (whole body: RFC 9110 §14.2 lets a server ignore what it
 * does not do); an `If-Range` other than the current strong ETag (a date
 * included: there is no Last-Modified) also means the whole body.
 */
export function rangeAnswer(headers: Headers, size: number, etag: string): RangeAnswer {
  const header = headers.get("Range");
  if (header === null) return { kind: "whole" };
  const ifRange = headers.get("If-Range");
  if (ifRange !== null && ifRange.trim() !== etag) return { kind: "whole" };
  const m = /^\s*bytes\s*=(.*)$/i.exec(header);
  if (!m || m[1].includes(",")) return { kind: "whole" };
  const r = byteRange(m[1], size);
  if (r === undefined) return { kind: "whole" };
  if (r === null) return { kind: "unsatisfiable" };
  return { kind: "part", ...r };
}
