/**
 * `GET /v2/<name>/tags/list` and `GET /v2/_catalog`: sorted names, paginated
 * with `n` and `last` and a `Link` header to the next page.
 */
import type { ServedContent } from "./content.ts";
import { jsonResponse, paginate, RegistryError, type RepoRequest } from "./http.ts";

/** `tags/list` of one repository (any other last segment is no endpoint). */
export function tagsList(r: RepoRequest): Response {
  if (r.ref !== "list") throw new RegistryError(404, "NOT_FOUND", `no such endpoint ${r.url.pathname}`);
  const p = paginate([...r.repo.tags.keys()].sort(), r.url);
  return jsonResponse({ name: r.name, tags: p.page }, r.head, p.link ? { Link: p.link } : {});
}

/** The catalog of every repository. */
export function catalogList(content: ServedContent, url: URL, head: boolean): Response {
  const p = paginate([...content.repos.keys()].sort(), url);
  return jsonResponse({ repositories: p.page }, head, p.link ? { Link: p.link } : {});
}
