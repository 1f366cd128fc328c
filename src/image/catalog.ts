/**
 * From a finished pass to the images and their layout plan: shared by
 * `load` (reading manifests back from the store) and `inspect` (from memory).
 */
import { InputError } from "../util/errors.ts";
import type { NamingOptions } from "../archive/format.ts";
import type { IngestResult } from "../archive/ingest.ts";
import { type LayoutPlan, planLayout } from "../store/layout_plan.ts";
import { MAX_MANIFEST_BYTES, type ParsedManifest, parseManifest } from "./manifest.ts";

/** Where blobs can be read back from. */
export interface BlobReader {
  readBlob(digest: string, max: number): Promise<Uint8Array | undefined>;
  blobSize(digest: string): Promise<number | undefined>;
}

/**
 * Reads every manifest the digests name, children of indexes included.
 * Manifests already in `out` are not read again, so one map can serve as a cache.
 */
export async function readManifests(
  blobs: BlobReader,
  digests: string[],
  out = new Map<string, ParsedManifest>(),
): Promise<Map<string, ParsedManifest>> {
  const visit = async (d: string) => {
    if (out.has(d)) return;
    const bytes = await blobs.readBlob(d, MAX_MANIFEST_BYTES);
    if (!bytes) return;
    let m: ParsedManifest;
    try {
      m = parseManifest(bytes);
    } catch (e) {
      throw new InputError(`Cannot read manifest ${d}: ${(e as Error).message}`, { cause: e });
    }
    out.set(d, m);
    if (m.kind === "index") { for (const c of m.children) await visit(c.digest); }
  };
  for (const d of digests) await visit(d);
  return out;
}

/** The images a pass found, planned, with the size of every blob they name. */
export interface Catalog {
  plan: LayoutPlan;
  sizes: Map<string, number>;
  /** Every manifest the images name that is present, parsed. */
  manifests: Map<string, ParsedManifest>;
}

/** Names the images of a pass and plans their layout. */
export async function catalog(pass: IngestResult, blobs: BlobReader, naming: NamingOptions): Promise<Catalog> {
  // One cache for naming and planning: each manifest is read and parsed once.
  const cache = new Map<string, ParsedManifest>();
  const readManifest = async (d: string) => (await readManifests(blobs, [d], cache)).get(d);
  const candidates = await pass.format.nameImages(pass.meta, readManifest, naming);
  if (candidates.length === 0) throw new InputError("Cannot load source: it names no images");
  const manifests = await readManifests(blobs, candidates.map((c) => c.digest), cache);
  const sizes = new Map(pass.blobs);
  const referenced = new Set<string>(manifests.keys());
  for (const m of manifests.values()) {
    if (m.kind === "image") [m.config, ...m.layers].forEach((d) => referenced.add(d.digest));
  }
  for (const d of referenced) {
    if (!sizes.has(d)) {
      const s = await blobs.blobSize(d);
      if (s !== undefined) sizes.set(d, s);
    }
  }
  const plan = planLayout(candidates, manifests, (d) => sizes.has(d), (d) => sizes.get(d) ?? 0);
  return { plan, sizes, manifests };
}
