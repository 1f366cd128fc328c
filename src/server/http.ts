/**
 * The HTTP side of the built-in registry, apart from any resource: the
 * specification's error body, JSON answers, `n`/`last` pagination, and the
 * request target as the client sent it.
 */
import type { RepoView, ServedContent } from "./content.ts";

/** Sent with every answer, as distribution does. */
export const API_HEADER = { "Docker-Distribution-API-Version": "registry/2.0" } as const;

/** The only methods a read-only registry answers (the `Allow` header of a 405). */
export const ALLOWED_METHODS = "GET, HEAD";

/**
 * An error the client is told about: HTTP status, the specification's error
 * code (`MANIFEST_UNKNOWN`, …) and a message. Handlers throw it; the
 * dispatcher turns it into the JSON error body.
 */
export class RegistryError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The distribution-spec error code. */
  readonly code: string;
  /** Optional `detail` of the error body. */
  readonly detail?: unknown;
  /** Extra response headers (`Allow` on a 405). */
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, opts: { detail?: unknown; headers?: Record<string, string> } = {}) {
    super(message);
    this.name = "RegistryError";
    this.status = status;
    this.code = code;
    this.detail = opts.detail;
    this.headers = opts.headers ?? {};
  }
}

/** The specification's error body `{"errors":[{code,message,detail?}]}`; no body for HEAD. */
export function errorResponse(e: RegistryError, head: boolean): Response {
  const body = JSON.stringify({ errors: [{ code: e.code, message: e.message, ...(e.detail === undefined ? {} : { detail: e.detail }) }] });
  return new Response(head ? null : body, {
    status: e.status,
    headers: {
      ...API_HEADER,
      ...e.headers,
      "Content-Type": "application/json",
      "Content-Length": String(new TextEncoder().encode(body).length),
    },
  });
}

/** A JSON answer (200), with its length also for HEAD. */
export function jsonResponse(value: unknown, head: boolean, extra: Record<string, string> = {}): Response {
  const body = JSON.stringify(value);
  return new Response(head ? null : body, {
    headers: {
      ...API_HEADER,
      "Content-Type": "application/json",
      ...extra,
      "Content-Length": String(new TextEncoder().encode(body).length),
    },
  });
}

/** Sorted names after `last`, at most `n`, and the Link header for the next page; 400 on a bad `n`. */
export function paginate(all: string[], url: URL): { page: string[]; link?: string } {
  const nText = url.searchParams.get("n");
  const last = url.searchParams.get("last") ?? "";
  const n = nText === null ? all.length : Number(nText);
  if (!Number.isInteger(n) || n < 0) throw new RegistryError(400, "PAGINATION_NUMBER_INVALID", "n must be a non-negative integer");
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

/**
 * The path of a request target exactly as sent, before any dot-segment
 * resolution or decoding. `Request.url` parsed by `URL` would resolve
 * `/v2/a/../b` and `%2e%2e` to another name; the raw text keeps them, so the
 * name check refuses them.
 */
export function rawPath(target: string): string {
  // Drop scheme and authority (Request.url and absolute-form targets carry them), then query and fragment.
  return target.replace(/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/, "").replace(/[?#].*$/s, "");
}

/** Percent-decodes one path segment; 400 with `code` when it is not valid percent-encoded UTF-8. */
export function decodeSegment(raw: string, code: string): string {
  try {
    return decodeURIComponent(raw);
  } catch (e) {
    throw new RegistryError(400, code, `malformed percent-encoding in ${JSON.stringify(raw)}`, { detail: (e as Error).message });
  }
}

/** A request for one repository's resource, as the dispatcher hands it to a handler. */
export interface RepoRequest {
  req: Request;
  url: URL;
  head: boolean;
  content: ServedContent;
  /** The repository name, checked against the name grammar. */
  name: string;
  repo: RepoView;
  /** The last path segment (tag, digest, `list`) as sent, still percent-encoded. */
  ref: string;
}
