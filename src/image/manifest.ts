/** Manifests and indexes of the OCI and Docker v2 schema 2 formats. */

/** Media types isoload understands. */
export const MediaType = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
} as const;

/** Every manifest media type a registry client should accept from us. */
export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.ociManifest,
  MediaType.dockerList,
  MediaType.dockerManifest,
].join(", ");

/** A platform as an index lists it. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** A descriptor: what a manifest points to. */
export interface Descriptor {
  digest: string;
  size: number;
  mediaType: string;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

/** What OCI 1.1 adds to a manifest or an index: what it is, and what it refers to (the referrers API lists it under its subject). */
export interface ArtifactFields {
  artifactType?: string;
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** A parsed manifest or index. */
export type ParsedManifest =
  | ({ kind: "index"; mediaType: string; children: Descriptor[] } & ArtifactFields)
  | ({ kind: "image"; mediaType: string; config: Descriptor; layers: Descriptor[] } & ArtifactFields);

/** The largest manifest accepted, as distribution limits pushes. */
export const MAX_MANIFEST_BYTES = 4 << 20;

/** "linux/amd64" or "linux/arm/v7". */
export function platformString(p: Platform | undefined): string {
  if (!p) return "unknown";
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

function descriptor(v: unknown, where: string): Descriptor {
  const d = v as Descriptor;
  if (!d || typeof d !== "object" || typeof d.digest !== "string" || typeof d.size !== "number") {
    throw new SyntaxError(`${where} is not a descriptor`);
  }
  if (!/^sha256:[a-f0-9]{64}$/.test(d.digest)) throw new SyntaxError(`${where} has an unsupported digest ${JSON.stringify(d.digest)}`);
  if (!Number.isSafeInteger(d.size) || d.size < 0) throw new SyntaxError(`${where} has a bad size`);
  return d;
}

/** `artifactType`, `subject` and `annotations` when present and well-formed (a malformed one is left out, as before OCI 1.1). */
function artifactFields(m: Record<string, unknown>): ArtifactFields {
  const out: ArtifactFields = {};
  if (typeof m.artifactType === "string") out.artifactType = m.artifactType;
  if (m.subject !== undefined) {
    try {
      out.subject = descriptor(m.subject, "subject");
    } catch {
      // A subject isoload cannot read only keeps the manifest out of the referrers API.
    }
  }
  const a = m.annotations;
  if (a && typeof a === "object" && !Array.isArray(a) && Object.values(a).every((v) => typeof v === "string")) {
    out.annotations = a as Record<string, string>;
  }
  return out;
}

/** Parses manifest bytes; SyntaxError when they are not a manifest isoload can serve. */
export function parseManifest(bytes: Uint8Array): ParsedManifest {
  const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  const m = JSON.parse(text);
  if (!m || typeof m !== "object" || Array.isArray(m)) throw new SyntaxError("manifest is not a JSON object");
  if (m.schemaVersion !== 2) throw new SyntaxError(`unsupported manifest schemaVersion ${JSON.stringify(m.schemaVersion)}`);
  if (Array.isArray(m.manifests)) {
    const mediaType = typeof m.mediaType === "string" ? m.mediaType : MediaType.ociIndex;
    return {
      kind: "index",
      mediaType,
      children: m.manifests.map((d: unknown, i: number) => descriptor(d, `manifests[${i}]`)),
      ...artifactFields(m),
    };
  }
  if (Array.isArray(m.layers) && m.config) {
    const mediaType = typeof m.mediaType === "string" ? m.mediaType : MediaType.ociManifest;
    return {
      kind: "image",
      mediaType,
      config: descriptor(m.config, "config"),
      layers: m.layers.map((d: unknown, i: number) => descriptor(d, `layers[${i}]`)),
      ...artifactFields(m),
    };
  }
  throw new SyntaxError("JSON is neither an image manifest nor an index");
}

/** Layers a registry never holds (foreign / non-distributable), which may be absent. */
export function isForeignLayer(d: Descriptor): boolean {
  return /foreign|nondistributable/.test(d.mediaType) || (Array.isArray(d.urls) && d.urls.length > 0);
}
