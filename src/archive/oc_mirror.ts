/**
 * oc-mirror v2 archives: a distribution storage tree (`docker/registry/v2`)
 * plus `working-dir/` whose cluster-resources map mirror repositories back to
 * their sources. oc-mirror v1 archives are recognised and refused.
 */
import { parseAllDocuments } from "yaml";
import { InputError } from "../util/errors.ts";
import { isDigest, isHex } from "../image/digest.ts";
import { isRepositoryPath, isTag, looksLikeDomain, parseReference, repositoryOf } from "../image/reference.ts";
import type { ArchiveFormat, EntryRole, ImageCandidate } from "./format.ts";

const V2 = "docker/registry/v2/";

/** True when a path is characteristic of an oc-mirror v2 archive. */
export function looksLikeOcMirror(path: string): boolean {
  return path.startsWith(V2) || path.startsWith("working-dir/") || /^isc_[^/]*$/.test(path);
}

/** True when a path is characteristic of an oc-mirror v1 archive. */
export function looksLikeOcMirrorV1(path: string): boolean {
  return path.startsWith("v2/") || path === "publish/.metadata.json" || path.startsWith("publish/");
}

interface LinkFact {
  repo: string;
  tag?: string;
  digest: string;
}

/** Reads the meaning of a link file path and content; undefined when it is not one we use. */
function linkFact(path: string, bytes: Uint8Array): LinkFact | undefined {
  const m = /^docker\/registry\/v2\/repositories\/(.+)\/_manifests\/(?:tags\/([^/]+)\/current|revisions\/sha256\/([a-f0-9]{64}))\/link$/
    .exec(path);
  if (!m) return undefined;
  const digest = new TextDecoder().decode(bytes).trim();
  if (!isDigest(digest)) throw new InputError(`Cannot read ${path}: link does not hold a sha256 digest`);
  if (m[3] && `sha256:${m[3]}` !== digest) throw new InputError(`Cannot read ${path}: link names ${digest}, not its own digest`);
  if (!isRepositoryPath(m[1])) throw new InputError(`Cannot read ${path}: ${JSON.stringify(m[1])} is not a repository name`);
  if (m[2] !== undefined && !isTag(m[2])) throw new InputError(`Cannot read ${path}: ${JSON.stringify(m[2])} is not a tag`);
  return { repo: m[1], tag: m[2], digest };
}

/** Mirror path (repository in the tree) → source, from IDMS/ITMS/ICSP documents. */
export function mirrorMappings(docs: unknown[]): { mirror: string; source: string }[] {
  const out: { mirror: string; source: string }[] = [];
  for (const doc of docs) {
    const spec = (doc as { spec?: Record<string, unknown> })?.spec;
    if (!spec) continue;
    const lists = [spec.imageDigestMirrors, spec.imageTagMirrors, spec.repositoryDigestMirrors];
    for (const list of lists) {
      if (!Array.isArray(list)) continue;
      for (const e of list as { source?: unknown; mirrors?: unknown }[]) {
        if (typeof e?.source !== "string" || !Array.isArray(e.mirrors)) continue;
        for (const mirror of e.mirrors) {
          if (typeof mirror !== "string") continue;
          const slash = mirror.indexOf("/");
          const path = slash !== -1 && looksLikeDomain(mirror.slice(0, slash)) ? mirror.slice(slash + 1) : mirror;
          out.push({ mirror: path, source: e.source });
        }
      }
    }
  }
  return out;
}

/** The source repository of a tree repository, by the longest matching mirror path. */
export function sourceFor(repo: string, maps: { mirror: string; source: string }[]): string | undefined {
  let best: { mirror: string; source: string } | undefined;
  for (const m of maps) {
    if ((repo === m.mirror || repo.startsWith(`${m.mirror}/`)) && (!best || m.mirror.length > best.mirror.length)) best = m;
  }
  return best ? best.source + repo.slice(best.mirror.length) : undefined;
}

/** The oc-mirror v2 archive format. */
export const ocMirror: ArchiveFormat = {
  name: "oc-mirror-v2",
  incremental: true,
  classify(path: string): EntryRole {
    if (path.startsWith(`${V2}blobs/`)) {
      const m = /^docker\/registry\/v2\/blobs\/([^/]+)\/([^/]+)\/([^/]+)\/data$/.exec(path);
      if (!m) return { role: "ignore" };
      if (m[1] !== "sha256") throw new InputError(`Cannot read blob ${path}: only sha256 digests are supported`);
      if (!isHex(m[3]) || m[2] !== m[3].slice(0, 2)) throw new InputError(`Cannot read blob ${path}: path is not a sha256 blob path`);
      return { role: "blob", digest: `sha256:${m[3]}` };
    }
    if (/^docker\/registry\/v2\/repositories\/.+\/_manifests\/(tags\/[^/]+\/current|revisions\/sha256\/[^/]+)\/link$/.test(path)) {
      return { role: "meta" };
    }
    if (/^working-dir\/cluster-resources\/[^/]+\.ya?ml$/.test(path)) return { role: "meta" };
    return { role: "ignore" };
  },
  async nameImages(meta, readManifest, options) {
    const facts: LinkFact[] = [];
    const docs: unknown[] = [];
    for (const [path, bytes] of meta) {
      if (path.startsWith("working-dir/")) {
        try {
          for (const d of parseAllDocuments(new TextDecoder().decode(bytes))) {
            if (d.errors.length) throw d.errors[0];
            docs.push(d.toJS());
          }
        } catch (e) {
          throw new InputError(`Cannot read ${path}: not valid YAML`, { cause: e });
        }
        continue;
      }
      const f = linkFact(path, bytes);
      if (f) facts.push(f);
    }
    const maps = mirrorMappings(docs);
    const byRepo = new Map<string, { tags: Map<string, string[]>; revisions: Set<string> }>();
    for (const f of facts) {
      const r = byRepo.get(f.repo) ?? { tags: new Map(), revisions: new Set() };
      byRepo.set(f.repo, r);
      if (f.tag !== undefined) r.tags.set(f.digest, [...(r.tags.get(f.digest) ?? []), f.tag]);
      else r.revisions.add(f.digest);
    }
    const unnamed: string[] = [];
    const out: ImageCandidate[] = [];
    for (const [repo, r] of [...byRepo].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      let source = sourceFor(repo, maps);
      if (!source && options.sourceRegistry) source = `${options.sourceRegistry}/${repo}`;
      if (!source) {
        unnamed.push(repo);
        continue;
      }
      const ref = parseReference(source);
      if (!ref || !ref.domain) {
        throw new InputError(`Cannot name repository ${repo}: its source ${JSON.stringify(source)} is not a registry repository`);
      }
      source = repositoryOf(ref);
      // Children of an index in the same repository are part of that image, not images of their own.
      const children = new Set<string>();
      for (const d of new Set([...r.revisions, ...r.tags.keys()])) {
        const m = await readManifest(d);
        if (m?.kind === "index") { for (const c of m.children) children.add(c.digest); }
      }
      for (const d of [...new Set([...r.revisions, ...r.tags.keys()])].sort()) {
        const tags = r.tags.get(d) ?? [];
        if (children.has(d) && tags.length === 0) continue;
        const m = await readManifest(d);
        out.push({ source, repository: repo, digest: d, tags, mediaType: m?.mediaType ?? "" });
      }
    }
    if (unnamed.length) {
      throw new InputError(
        `Cannot name ${unnamed.length} repositories (${unnamed.slice(0, 3).join(", ")}${unnamed.length > 3 ? ", …" : ""}): ` +
          "working-dir/cluster-resources maps no source to them; give --source-registry HOST",
      );
    }
    return out;
  },
};
