/** `isoload mirror-config`: the cluster's mirror set for the images of a data directory or an image list. */
import { resolve } from "node:path";
import { ExitCode, InputError, UsageError } from "../util/errors.ts";
import { type Command, expectFrom, list, parseHostPort, printOut, str } from "./_command.ts";
import { type MirrorSetKind, renderInsecureImageConfig, renderMirrorSet, renderTrustedCa } from "../host/mirror_sets.ts";
import { type ExpectFrom, readExpected } from "../host/expect.ts";
import type { LoadedImage } from "../image/loaded_image.ts";
import { readTlsCa } from "../server/tls.ts";

/** Where the images and the CA come from, and how the mirrors serve. */
export interface MirrorConfigOptions {
  /** The images (a data directory's records or an exported list), and where from, for messages. */
  images: LoadedImage[];
  from: string;
  /** HOST:PORT of each mirror, first tried first. */
  mirrors: string[];
  kind: MirrorSetKind | "trusted-ca";
  /** The registries' CA (PEM), for trusted-ca. */
  ca?: string;
  /** The mirrors serve plain HTTP: the cluster Image config listing them as insecure rides along. */
  insecureHttp: boolean;
}

/** Renders the YAML. */
export function mirrorConfig(o: MirrorConfigOptions): string {
  if (o.kind === "trusted-ca") {
    if (o.insecureHttp) throw new InputError("Cannot write the trusted CA: --insecure-http says the mirrors serve plain HTTP");
    if (!o.ca) {
      throw new InputError(
        `Cannot write the trusted CA for ${o.from}: no CA (give --tls-dir DIR from isoload tls, or serve --tls makes one in the data directory)`,
      );
    }
    if (o.mirrors.length !== 1) throw new InputError("Cannot write the trusted CA: give one --mirror (each needs its own ConfigMap key)");
    return renderTrustedCa(o.mirrors[0], o.ca);
  }
  const set = renderMirrorSet(o.images, o.mirrors, o.kind);
  return o.insecureHttp ? `${set}---\n${renderInsecureImageConfig(o.mirrors)}` : set;
}

/** What `isoload mirror-config` was asked. */
export interface MirrorConfigCliOptions {
  from: ExpectFrom;
  mirrors: string[];
  kind: MirrorSetKind | "trusted-ca";
  insecureHttp: boolean;
  /** The cluster's TLS directory, whose ca.crt is read at run. */
  tlsDir?: string;
}

/** `isoload mirror-config (--data-dir DIR | --expect FILE) --mirror HOST:PORT…`. */
export const mirrorConfigCommand: Command<MirrorConfigCliOptions> = {
  summary: "Print the mirror-set YAML the installed cluster needs",
  usage: "isoload mirror-config (--data-dir DIR | --expect FILE) --mirror HOST:PORT… [--kind idms|itms|icsp|trusted-ca]\n" +
    "                             [--insecure-http | --tls-dir DIR]",
  description: "Prints an ImageDigestMirrorSet (default), ImageTagMirrorSet or legacy ImageContentSourcePolicy mapping every\n" +
    "source repository of the images (a data directory's, or an image list's: isoload inspect --json ARCHIVE) to the\n" +
    "mirrors at HOST:PORT, in the order given, for the cluster's manifests: installed nodes get their registries.conf\n" +
    "from it. The Machine Config Operator renders mirrors as HTTPS: when they serve plain HTTP, --insecure-http adds\n" +
    "the cluster Image config listing them in spec.registrySources.insecureRegistries. When they serve TLS, --kind\n" +
    "trusted-ca prints the ConfigMap (key host..port) and the cluster Image config's additionalTrustedCA that make\n" +
    "installed nodes trust the CA (--tls-dir DIR's, or the data directory's).",
  options: {
    "data-dir": { type: "string", arg: "DIR", help: "A data directory isoload load completed." },
    expect: { type: "string", arg: "FILE", help: "An image list (isoload inspect --json ARCHIVE|DIR)." },
    mirror: {
      type: "string",
      arg: "HOST:PORT",
      multiple: true,
      help: "Address the installed nodes reach the registry at (repeatable: tried in order).",
    },
    kind: { type: "string", arg: "KIND", default: "idms", help: "idms, itms, icsp or trusted-ca." },
    "insecure-http": { type: "boolean", help: "The mirrors serve plain HTTP: also print the Image config listing them as insecure." },
    "tls-dir": { type: "string", arg: "DIR", help: "trusted-ca: the cluster's TLS directory (isoload tls), for its ca.crt." },
  },
  examples: [
    "isoload mirror-config --data-dir /var/lib/isoload --mirror host0.example.com:22625 > idms.yaml",
    "isoload mirror-config --expect images.json --mirror api-int.ocp.example.com:22625 --kind trusted-ca --tls-dir ./tls > trusted-ca.yaml",
    "isoload mirror-config --expect images.json --mirror 192.168.111.20:22625 --insecure-http > idms.yaml",
  ],
  positionals: 0,
  parse(v) {
    const kind = str(v, "kind") ?? "idms";
    if (kind !== "idms" && kind !== "itms" && kind !== "icsp" && kind !== "trusted-ca") {
      throw new UsageError(`--kind must be idms, itms, icsp or trusted-ca, got ${JSON.stringify(kind)}`);
    }
    const mirrors = list(v, "mirror").map((m) => parseHostPort(m, "--mirror"));
    if (!mirrors.length) throw new UsageError("--mirror is required");
    const tlsDir = str(v, "tls-dir");
    if (v["insecure-http"] && tlsDir !== undefined) throw new UsageError("--insecure-http and --tls-dir exclude each other");
    return { from: expectFrom(v), mirrors, kind, insecureHttp: v["insecure-http"] === true, tlsDir };
  },
  async run(o) {
    const from = "dataDir" in o.from ? { dataDir: resolve(o.from.dataDir) } : o.from;
    const got = await readExpected(from, `write mirror config for ${"dataDir" in o.from ? o.from.dataDir : o.from.file}`);
    await printOut(mirrorConfig({
      images: got.images,
      from: got.from,
      mirrors: o.mirrors,
      kind: o.kind,
      ca: o.tlsDir ? await readTlsCa(o.tlsDir) : got.ca,
      insecureHttp: o.insecureHttp,
    }));
    return ExitCode.ok;
  },
};
