/** `isoload inspect`: what a source holds, without writing anything. */
import { catalog } from "../image/catalog.ts";
import { requireRecords } from "../store/records.ts";
import { readCa } from "../server/tls.ts";
import type { NamingOptions } from "../archive/format.ts";
import type { LoadedImage } from "../image/loaded_image.ts";
import { type BlobSink, ingest } from "../archive/ingest.ts";
import { formatBytes } from "../util/log.ts";
import { MAX_MANIFEST_BYTES } from "../image/manifest.ts";
import { openSources } from "../archive/source.ts";
import { dataDirPaths } from "../store/paths.ts";
import { type Command, printOut, sourceRegistry, SOURCES_HELP } from "./_command.ts";
import { ExitCode, UsageError } from "../util/errors.ts";
import { collectChunks } from "../util/bytes.ts";

/** The report `inspect` prints (and `--json` emits as is). */
export interface InspectReport {
  source: string;
  container: "tar" | "directory";
  /** The files read, in order, when there are several (a multi-part or split archive). */
  parts?: string[];
  format: string;
  images: LoadedImage[];
  blobs: number;
  bytes: number;
  /** Blobs the images need that the source lacks (an incremental archive). */
  missing: { image: string; digest: string; what: string }[];
  /** For a data directory whose registry serves TLS: its CA (PEM), so the report serves as a node's --expect file. */
  ca?: string;
}

/** Reports a data directory isoload loaded, from its records (the list nodes are given with --expect). */
async function inspectDataDir(dir: string): Promise<InspectReport> {
  const records = await requireRecords(dir, `inspect ${dir}`);
  const ca = await readCa(dir);
  return {
    source: dir,
    container: "directory",
    format: "isoload-data-dir",
    images: records.images,
    blobs: records.blobs,
    bytes: records.bytes,
    missing: [],
    ...(ca ? { ca } : {}),
  };
}

// Manifests and configs are small JSON; layers are not kept.
const MAX_KEPT_TOTAL = 256 << 20;

/** Keeps small JSON-looking blobs in memory so manifests can be read after the pass. */
class MemorySink implements BlobSink {
  #kept = new Map<string, Uint8Array>();
  #sizes = new Map<string, number>();
  #total = 0;
  blobSize(digest: string) {
    return Promise.resolve(this.#sizes.get(digest));
  }
  async putBlob(digest: string, size: number, chunks: AsyncIterable<Uint8Array>) {
    this.#sizes.set(digest, size);
    if (size > MAX_MANIFEST_BYTES || this.#total + size > MAX_KEPT_TOTAL) return;
    const buf = await collectChunks(chunks, size);
    if (buf[0] !== 0x7b) return; // not "{": not a manifest
    this.#kept.set(digest, buf);
    this.#total += size;
  }
  readBlob(digest: string) {
    return Promise.resolve(this.#kept.get(digest));
  }
}

/** Reads a source (one or more paths or globs: see openSources) and reports its images. */
export async function inspect(paths: string[], naming: NamingOptions): Promise<InspectReport> {
  if (paths.length === 1 && await Deno.stat(dataDirPaths(paths[0]).records).then(() => true, () => false)) {
    return await inspectDataDir(paths[0]);
  }
  const source = await openSources(paths);
  try {
    const sink = new MemorySink();
    const files = source.parts.flatMap((p) => p.files.map((f) => f.path));
    const pass = await ingest(source, sink);
    const { plan, sizes } = await catalog(pass, sink, naming);
    const digests = new Set(plan.links.map(([, d]) => d));
    let bytes = 0;
    for (const d of digests) bytes += sizes.get(d) ?? 0;
    return {
      source: source.path,
      container: source.container,
      ...(files.length > 1 ? { parts: files } : {}),
      format: pass.format.name,
      images: plan.images,
      blobs: digests.size,
      bytes,
      missing: plan.missing,
    };
  } finally {
    source.close();
  }
}

/** The human form of the report. */
export function renderInspect(r: InspectReport): string {
  const lines = [
    `Source:  ${r.source} (${r.container})`,
    ...(r.parts ? [`Parts:   ${r.parts.join("\n         ")}`] : []),
    `Format:  ${r.format}`,
    `Images:  ${r.images.length}`,
    `Blobs:   ${r.blobs} (${formatBytes(r.bytes)})`,
    "",
  ];
  for (const img of r.images) {
    lines.push(`${img.source}@${img.digest}`);
    if (img.tags.length) lines.push(`  tags:      ${img.tags.join(", ")}`);
    lines.push(`  type:      ${img.mediaType}`);
    if (img.platforms) lines.push(`  platforms: ${img.platforms.join(", ") || "(none present)"}`);
    lines.push(`  size:      ${formatBytes(img.size ?? 0)}`);
  }
  if (r.ca) lines.push("", "TLS: the registry's CA is in the --json report (give it to the nodes with the image list)");
  if (r.missing.length) {
    lines.push("", `Missing: ${r.missing.length} blobs the images need are not in this source (an incremental archive?)`);
    for (const m of r.missing.slice(0, 10)) lines.push(`  ${m.image}: ${m.what} ${m.digest}`);
  }
  return lines.join("\n") + "\n";
}

/** What `isoload inspect` was asked. */
export interface InspectCliOptions {
  /** One or more paths or quoted globs. */
  sources: string[];
  json: boolean;
  naming: NamingOptions;
}

/** `isoload inspect SOURCE…`. */
export const inspectCommand: Command<InspectCliOptions> = {
  summary: "Show the images an archive, directory or loaded data directory holds",
  usage: "isoload inspect SOURCE… [--json] [--source-registry HOST]",
  description: "Reads SOURCE (an oc-mirror v2 archive, an OCI image layout archive, or a directory holding either) and prints its\n" +
    "format, each image (source reference, digest, media type, platforms of an index), the blob count and total bytes.\n" +
    "Nothing is written. SOURCE may also be a data directory isoload loaded: its --json report (with the registry's\n" +
    "CA when it serves TLS) is the list the other nodes are given (registries-conf and wait --expect FILE).\n" +
    SOURCES_HELP,
  options: {
    json: { type: "boolean", help: "Print one JSON document instead of text." },
    "source-registry": { type: "string", arg: "HOST", help: "Registry for image names that carry none." },
  },
  examples: [
    "isoload inspect /run/media/iso/images/mirror_000001.tar",
    "isoload inspect '/run/media/iso/images/mirror_*.tar'   # every part of a multi-part archive",
    "isoload inspect ./oci-layout-dir --json",
  ],
  positionals: -1,
  parse(v, pos) {
    if (pos.length === 0) throw new UsageError("expected SOURCE (one or more paths or quoted globs), got none");
    return { sources: pos, json: v.json === true, naming: { sourceRegistry: sourceRegistry(v) } };
  },
  async run(o) {
    const report = await inspect(o.sources, o.naming);
    await printOut(o.json ? JSON.stringify(report, null, 2) + "\n" : renderInspect(report));
    return report.missing.length ? ExitCode.badInput : ExitCode.ok;
  },
};
