/**
 * An archive format, seen as a transport: it says what each entry of the
 * stream is (a blob, metadata to keep, or nothing) and, once the stream is
 * over, which images the archive holds and under which source names.
 */
import type { LoadedImage } from "../image/loaded_image.ts";
import type { ParsedManifest } from "../image/manifest.ts";

/** Names of the formats isoload reads. */
export type FormatName = "oci-layout" | "oc-mirror-v2";

/** What one entry of the stream is to the format. */
export type EntryRole =
  | { role: "blob"; digest: string }
  | { role: "meta" }
  | { role: "ignore" };

/** Image naming inputs that come from the command line. */
export interface NamingOptions {
  /** Registry host for names that carry none (`--source-registry`). */
  sourceRegistry?: string;
}

/** An image as the archive names it, before the layout plan fills in the rest. */
export type ImageCandidate = Pick<LoadedImage, "source" | "repository" | "digest" | "tags" | "mediaType">;

/** One archive format. */
export interface ArchiveFormat {
  readonly name: FormatName;
  /**
   * Whether archives of this format come in incremental series (oc-mirror's
   * later archives carry only what the earlier ones lacked), so a blob absent
   * from one may be in an earlier one: messages then say to load those first.
   */
  readonly incremental: boolean;
  /** The role of a (normalised) entry path. */
  classify(path: string): EntryRole;
  /** The images, from the kept metadata and the manifests now in the store. */
  nameImages(
    meta: ReadonlyMap<string, Uint8Array>,
    readManifest: (digest: string) => Promise<ParsedManifest | undefined>,
    options: NamingOptions,
  ): Promise<ImageCandidate[]>;
}

/** Largest metadata file kept in memory (index.json, link files, mirror-set YAML). */
export const MAX_META_BYTES = 64 << 20;
