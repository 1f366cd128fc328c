/** Image references: `domain/path[:tag][@sha256:hex]`, parsed strictly. */
import { isDigest } from "./digest.ts";

/** A parsed reference. `domain` is empty when the text named none. */
export interface ImageReference {
  domain: string;
  path: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOMAIN =
  /^(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;

/** True when `name` is a valid repository path (slash-separated lowercase components). */
export function isRepositoryPath(name: string): boolean {
  return name.length > 0 && name.length <= 255 && name.split("/").every((c) => COMPONENT.test(c));
}

/** True when `s` is a valid tag. */
export function isTag(s: string): boolean {
  return TAG.test(s);
}

/** True when the first component of a name is a registry host, as docker decides it. */
export function looksLikeDomain(first: string): boolean {
  return (first.includes(".") || first.includes(":") || first === "localhost" || /[A-Z]/.test(first)) &&
    DOMAIN.test(first);
}

/**
 * Parses a reference; returns undefined when it is not one. A text with no
 * "/" and no ":" is ambiguous (a tag or a bare name): callers decide.
 */
export function parseReference(text: string): ImageReference | undefined {
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) return undefined;
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isTag(tag)) return undefined;
  }
  let domain = "";
  const slash = rest.indexOf("/");
  if (slash !== -1 && looksLikeDomain(rest.slice(0, slash))) {
    domain = rest.slice(0, slash);
    rest = rest.slice(slash + 1);
  }
  if (!isRepositoryPath(rest)) return undefined;
  return { domain, path: rest, tag, digest };
}

/** `domain/path`, the repository a reference names. */
export function repositoryOf(ref: ImageReference): string {
  return ref.domain ? `${ref.domain}/${ref.path}` : ref.path;
}

/**
 * The repository name isoload uses inside its registry for a source
 * repository: the source name itself, with a port's ":" made "-" since
 * repository names cannot hold ":".
 */
export function mirrorRepositoryFor(sourceRepository: string): string {
  const slash = sourceRepository.indexOf("/");
  const domain = sourceRepository.slice(0, slash).toLowerCase().replace(/[:\[\]]/g, "-").replace(/-+$/, "");
  return `${domain}/${sourceRepository.slice(slash + 1)}`;
}
