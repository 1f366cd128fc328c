/** The OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`). */
import { InputError } from "../util/errors.ts";
import { isHex } from "../image/digest.ts";
import { mirrorRepositoryFor, parseReference, repositoryOf } from "../image/reference.ts";
import { MediaType } from "../image/manifest.ts";
import type { ArchiveFormat, EntryRole, ImageCandidate, NamingOptions } from "./format.ts";

const REF_NAME = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME = "io.containerd.image.name";

/** True when a path is characteristic of an OCI layout. */
export function looksLikeOciLayout(path: string): boolean {
  return path === "oci-layout" || path === "index.json" || path.startsWith("blobs/");
}

/** Resolves one index.json entry's annotations to a source repository and tag. */
export function nameFromAnnotations(
  annotations: Record<string, string> | undefined,
  digest: string,
  options: NamingOptions,
): { source: string; tag?: string } {
  const full = annotations?.[CONTAINERD_NAME] ?? annotations?.[REF_NAME];
  if (!full) {
    throw new InputError(`Cannot name image ${digest}: index.json gives it no ${REF_NAME} or ${CONTAINERD_NAME} annotation`);
  }
  const ref = parseReference(full);
  // A bare word is a tag per the OCI spec: it names no repository.
  if (!ref || (!full.includes("/") && !full.includes("@") && !ref.domain)) {
    throw new InputError(
      `Cannot name image ${digest}: its name ${
        JSON.stringify(full)
      } is only a tag; the archive must carry full references (quay.io/ns/repo:tag)`,
    );
  }
  if (!ref.domain) {
    if (!options.sourceRegistry) {
      throw new InputError(
        `Cannot name image ${digest}: ${JSON.stringify(full)} names no registry; give --source-registry HOST to say where it came from`,
      );
    }
    ref.domain = options.sourceRegistry;
  }
  return { source: repositoryOf(ref), tag: ref.tag };
}

/** The OCI image layout format. */
export const ociLayout: ArchiveFormat = {
  name: "oci-layout",
  incremental: false,
  classify(path: string): EntryRole {
    if (path === "oci-layout" || path === "index.json") return { role: "meta" };
    const m = /^blobs\/([^/]+)\/([^/]+)$/.exec(path);
    if (m) {
      if (m[1] !== "sha256") throw new InputError(`Cannot read blob ${path}: only sha256 digests are supported`);
      if (!isHex(m[2])) throw new InputError(`Cannot read blob ${path}: its name is not a sha256 digest`);
      return { role: "blob", digest: `sha256:${m[2]}` };
    }
    return { role: "ignore" };
  },
  nameImages(meta, _readManifest, options) {
    const layoutBytes = meta.get("oci-layout");
    if (!layoutBytes) throw new InputError("Cannot read OCI layout: the oci-layout file is missing");
    let version: unknown;
    try {
      version = JSON.parse(new TextDecoder().decode(layoutBytes)).imageLayoutVersion;
    } catch (e) {
      throw new InputError("Cannot read OCI layout: oci-layout is not JSON", { cause: e });
    }
    if (typeof version !== "string" || !version.startsWith("1.")) {
      throw new InputError(`Cannot read OCI layout: unsupported imageLayoutVersion ${JSON.stringify(version)}`);
    }
    const indexBytes = meta.get("index.json");
    if (!indexBytes) throw new InputError("Cannot read OCI layout: index.json is missing");
    let index: { manifests?: unknown };
    try {
      index = JSON.parse(new TextDecoder().decode(indexBytes));
    } catch (e) {
      throw new InputError("Cannot read OCI layout: index.json is not JSON", { cause: e });
    }
    if (!Array.isArray(index.manifests)) throw new InputError("Cannot read OCI layout: index.json has no manifests list");
    const out: ImageCandidate[] = [];
    for (const [i, d] of (index.manifests as Record<string, unknown>[]).entries()) {
      const digest = d?.digest;
      if (typeof digest !== "string" || !/^sha256:[a-f0-9]{64}$/.test(digest)) {
        throw new InputError(`Cannot read OCI layout: index.json manifests[${i}] has no sha256 digest`);
      }
      const { source, tag } = nameFromAnnotations(d.annotations as Record<string, string> | undefined, digest, options);
      out.push({
        source,
        repository: mirrorRepositoryFor(source),
        digest,
        tags: tag ? [tag] : [],
        mediaType: typeof d.mediaType === "string" ? d.mediaType : MediaType.ociManifest,
      });
    }
    return Promise.resolve(out);
  },
};
