/** `isoload mirror-config`: the cluster's mirror set for DIR's images. */
import { resolve } from "node:path";
import { ExitCode, InputError, UsageError } from "../util/errors.ts";
import { type Command, parseHostPort, printOut, required, str } from "./_command.ts";
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

/** What `isoload mirror-config` was asked. */
export interface MirrorConfigCliOptions {
  dataDir: string;
  mirror: string;
  kind: MirrorSetKind | "trusted-ca";
}

/** `isoload mirror-config --data-dir DIR --mirror HOST:PORT`. */
export const mirrorConfigCommand: Command<MirrorConfigCliOptions> = {
  summary: "Print the mirror-set YAML the installed cluster needs",
  usage: "isoload mirror-config --data-dir DIR --mirror HOST:PORT [--kind idms|itms|icsp|trusted-ca]",
  description: "Prints an ImageDigestMirrorSet (default), ImageTagMirrorSet or legacy ImageContentSourcePolicy mapping every\n" +
    "source repository of DIR's images to the mirror at HOST:PORT, for the cluster's manifests: installed nodes get\n" +
    "their registries.conf from it. When the registry serves TLS, --kind trusted-ca prints the ConfigMap (key\n" +
    "host..port) and the cluster Image config's additionalTrustedCA that make installed nodes trust its CA.",
  options: {
    "data-dir": { type: "string", arg: "DIR", help: "A data directory isoload load completed." },
    mirror: { type: "string", arg: "HOST:PORT", help: "Address the nodes reach host0's registry at." },
    kind: { type: "string", arg: "KIND", default: "idms", help: "idms, itms, icsp or trusted-ca." },
  },
  examples: [
    "isoload mirror-config --data-dir /var/lib/isoload --mirror host0.example.com:22625 > idms.yaml",
    "isoload mirror-config --data-dir /var/lib/isoload --mirror host0.example.com:22625 --kind trusted-ca > trusted-ca.yaml",
  ],
  positionals: 0,
  parse(v) {
    const kind = str(v, "kind") ?? "idms";
    if (kind !== "idms" && kind !== "itms" && kind !== "icsp" && kind !== "trusted-ca") {
      throw new UsageError(`--kind must be idms, itms, icsp or trusted-ca, got ${JSON.stringify(kind)}`);
    }
    return { dataDir: required(v, "data-dir"), mirror: parseHostPort(required(v, "mirror"), "--mirror"), kind };
  },
  async run(o) {
    await printOut(await mirrorConfig(o.dataDir, o.mirror, o.kind));
    return ExitCode.ok;
  },
};
