/** `isoload mirror-config`: the cluster's mirror set for DIR's images. */
import { resolve } from "node:path";
import { InputError } from "../util/errors.ts";
import { type MirrorSetKind, renderMirrorSet, renderTrustedCa } from "../host/mirror_sets.ts";
import { requireRecords } from "../store/records.ts";
import { readCa } from "../server/tls.ts";

/** Renders the mirror-set YAML for a loaded data directory. */
export async function mirrorConfig(dataDir: string, mirror: string, kind: MirrorSetKind | "trusted-ca"): Promise<string> {
  const records = await requireRecords(resolve(dataDir), `write mirror config for ${dataDir}`);
  if (kind !== "trusted-ca") return renderMirrorSet(records.images, mirror, kind);
  const ca = await readCa(resolve(dataDir));
  if (!ca) throw new InputError(`Cannot write the trusted CA for ${dataDir}: its registry has no TLS (serve --tls makes the CA)`);
  return renderTrustedCa(mirror, ca);
}
