/** `isoload mirror-config`: the cluster's mirror set for DIR's images. */
import { resolve } from "node:path";
import { type MirrorSetKind, renderMirrorSet } from "../mirror_sets.ts";
import { requireRecords } from "../records.ts";

/** Renders the mirror-set YAML for a loaded data directory. */
export async function mirrorConfig(dataDir: string, mirror: string, kind: MirrorSetKind): Promise<string> {
  const records = await requireRecords(resolve(dataDir), `write mirror config for ${dataDir}`);
  return renderMirrorSet(records.images, mirror, kind);
}
