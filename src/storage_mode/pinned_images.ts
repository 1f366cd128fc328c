/**
 * The CRI-O drop-in that pins isoload's images against kubelet image garbage
 * collection (`[crio.image] pinned_images`, CRI-O 1.28 and later).
 */
import { parse as parseToml } from "smol-toml";
import { atomicWrite, readTextIfExists } from "../util/atomic_write.ts";
import { ConfigError } from "../util/errors.ts";

/** First line of every pin file isoload writes; a file without it is not isoload's to replace. */
export const PIN_MARKER = "# Written by isoload";

/** The drop-in's text: the references sorted and deduplicated, one per line. Same input, same bytes. */
export function renderPinnedImages(refs: string[], about: string): string {
  const sorted = [...new Set(refs)].sort();
  return [
    `${PIN_MARKER}. Do not edit: isoload rewrites this file; remove it to let kubelet collect these images.`,
    `# ${about}`,
    "[crio.image]",
    "pinned_images = [",
    ...sorted.map((r) => `  ${JSON.stringify(r)},`),
    "]",
    "",
  ].join("\n");
}

/** Parses a pin file back and checks it lists exactly `refs`; throws ConfigError otherwise. */
export function checkPinnedImages(text: string, refs: string[], path: string): void {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`Cannot write ${path}: the rendered file is not valid TOML`, { cause: e });
  }
  const image = (doc.crio as Record<string, unknown> | undefined)?.image as Record<string, unknown> | undefined;
  const got = image?.pinned_images;
  const want = [...new Set(refs)].sort();
  if (!Array.isArray(got) || got.length !== want.length || got.some((r, i) => r !== want[i])) {
    throw new ConfigError(`Cannot write ${path}: the rendered [crio.image] pinned_images does not list the loaded images`);
  }
}

/** Throws ConfigError when `path` exists and isoload did not write it: such a file is never replaced. */
export async function assertPinFileOwned(path: string): Promise<void> {
  const current = await readTextIfExists(path);
  if (current !== undefined && !current.startsWith(PIN_MARKER)) {
    throw new ConfigError(
      `Cannot write ${path}: it exists and isoload did not write it (its first line is not "${PIN_MARKER}"); ` +
        "move it away or give another --pin FILE",
    );
  }
}

/**
 * Writes the pin file atomically; refuses to replace a file isoload did not
 * write. Returns whether the bytes changed.
 */
export async function writePinnedImages(path: string, refs: string[], about: string): Promise<boolean> {
  await assertPinFileOwned(path);
  const text = renderPinnedImages(refs, about);
  checkPinnedImages(text, refs, path);
  return await atomicWrite(path, text);
}
