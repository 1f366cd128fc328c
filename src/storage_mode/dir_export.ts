/**
 * Exports one image held in a registry storage tree in the layout of
 * containers/image's `dir:` transport, which skopeo reads whatever the
 * manifest's format (OCI or Docker, image or index; `oci:` skips Docker
 * manifests). Blobs are hard-linked, not copied, where the filesystem allows.
 *
 * The layout: `version`, `manifest.json` (the top manifest), `<hex>.manifest.json`
 * for each manifest an index lists, and `<hex>` for each config and layer.
 */
import { join } from "node:path";
import { readManifests } from "../image/catalog.ts";
import { digestHex } from "../image/digest.ts";
import { InputError, wrapFsError } from "../util/errors.ts";
import type { RegistryStore } from "../store/storage_tree.ts";

const DIR_VERSION = "Directory Transport Version: 1.1\n";

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await Deno.link(from, to);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return;
    await Deno.copyFile(from, to);
  }
}

/** Writes `outDir` (created, must not hold another image) as a `dir:` image of `digest` and whatever of it `store` holds. */
export async function exportDirImage(store: RegistryStore, digest: string, outDir: string): Promise<void> {
  const manifests = await readManifests(store, [digest]);
  if (!manifests.has(digest)) throw new InputError(`Cannot export ${digest}: its manifest is not in ${store.root}`);
  const files = new Map<string, string>([[digest, "manifest.json"]]);
  for (const [d, m] of manifests) {
    if (d !== digest) files.set(d, `${digestHex(d)}.manifest.json`);
    if (m.kind === "image") [m.config, ...m.layers].forEach((b) => files.set(b.digest, digestHex(b.digest)));
  }
  try {
    await Deno.mkdir(outDir, { recursive: true });
    for (const [d, name] of files) {
      if ((await store.blobSize(d)) === undefined) continue;
      await linkOrCopy(store.blobPath(d), join(outDir, name));
    }
    await Deno.writeTextFile(join(outDir, "version"), DIR_VERSION);
  } catch (e) {
    throw wrapFsError(`export ${digest} to ${outDir}`, e);
  }
}
