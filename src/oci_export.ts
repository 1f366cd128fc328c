/**
 * Exports one image of a data directory as an OCI layout that skopeo can
 * read, hard-linking blobs (no copy) where the filesystem allows.
 */
import { join } from "node:path";
import { readManifests } from "./catalog.ts";
import { digestHex } from "./digest.ts";
import { InputError, wrapFsError } from "./errors.ts";
import { RegistryStore } from "./registry_store.ts";

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await Deno.link(from, to);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return;
    await Deno.copyFile(from, to);
  }
}

/** Writes `outDir` as an OCI layout holding `digest` (and its children and blobs). */
export async function exportOciLayout(dataDir: string, repository: string, digest: string, outDir: string): Promise<void> {
  const store = new RegistryStore(dataDir);
  const manifests = await readManifests(store, [digest]);
  const top = manifests.get(digest);
  if (!top) throw new InputError(`Cannot export ${repository}@${digest}: its manifest is not in ${dataDir}`);
  const blobs = new Set<string>(manifests.keys());
  for (const m of manifests.values()) {
    if (m.kind === "image") [m.config, ...m.layers].forEach((d) => blobs.add(d.digest));
  }
  try {
    await Deno.mkdir(join(outDir, "blobs", "sha256"), { recursive: true });
    for (const d of blobs) {
      if ((await store.blobSize(d)) === undefined) continue;
      await linkOrCopy(store.blobPath(d), join(outDir, "blobs", "sha256", digestHex(d)));
    }
    const size = (await store.blobSize(digest)) ?? 0;
    await Deno.writeTextFile(join(outDir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    await Deno.writeTextFile(
      join(outDir, "index.json"),
      JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: top.mediaType, digest, size }] }),
    );
  } catch (e) {
    throw wrapFsError(`export ${repository}@${digest} to ${outDir}`, e);
  }
}
