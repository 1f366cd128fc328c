/**
 * `isoload registries-conf`: the registries.conf of a node, pointing the
 * images' source names at its mirrors in order (its own registry first, then
 * host0's), with each TLS registry's CA installed where containers/image
 * looks for it.
 */
import { caPathFor, installCa, installedCa } from "../host/ca_install.ts";
import { type Expected, type ExpectFrom, readExpected } from "../host/expect.ts";
import { DEFAULT_CERTS_DIR } from "../host/ca_install.ts";
import { DEFAULT_REGISTRIES_CONF } from "../host/registries_conf_file.ts";
import { ExitCode, UsageError } from "../util/errors.ts";
import { type Command, expectFrom, list, parseHostPort, str } from "./_command.ts";
import { readTlsCa } from "../server/tls.ts";
import type { Logger } from "../util/log.ts";
import { mirrorTargets } from "../host/registries_conf.ts";
import { planRegistriesConf, readHostConf, writeRegistriesConf } from "../host/registries_conf_file.ts";

/** Options of `isoload registries-conf`. */
export interface RegistriesConfOptions {
  /** HOST:PORT of each mirror, first tried first. */
  mirrors: string[];
  /** Where the CA goes: `<certsDir>/<mirror>/ca.crt`. */
  certsDir: string;
  /** registries.conf (or drop-in) to write. */
  out: string;
  /** The cluster's CA (`--tls-dir`): every mirror serves TLS with a certificate it issued. */
  ca?: string;
}

/** Writes the node's registries.conf (and CAs); returns whether every mirror uses TLS. */
export async function writeNodeRegistriesConf(expected: Expected, opts: RegistriesConfOptions, log: Logger): Promise<boolean> {
  // Every file of the host's configuration is checked before anything is written.
  const host = await readHostConf(opts.out);
  const cas = new Map<string, string | undefined>();
  for (const m of opts.mirrors) cas.set(m, opts.ca ?? expected.ca ?? await installedCa(opts.certsDir, m));
  const plain = opts.mirrors.filter((m) => !cas.get(m));
  const plan = planRegistriesConf(
    host,
    mirrorTargets(expected.images, opts.mirrors),
    (m) => !cas.get(m),
    `Mirrors of the images isoload registries serve at ${opts.mirrors.join(", then ")}${plain.length ? "" : " over TLS"}.`,
  );
  plan.warnings.forEach((w) => log.warn(w));
  for (const [m, ca] of cas) {
    if (ca && await installCa(opts.certsDir, m, ca)) log.info(`Installed the registry CA at ${caPathFor(opts.certsDir, m)}`);
  }
  const res = await writeRegistriesConf(host, plan);
  const how = plain.length ? ` (plain HTTP, insecure = true: ${plain.join(", ")})` : " (TLS)";
  log.info(
    res.changed
      ? `Wrote ${host.target}: ${expected.images.length} images from ${expected.from} mirrored at ${opts.mirrors.join(", then ")}` +
        `${how}${res.backup ? `; previous content kept in ${res.backup}` : ""}`
      : `${host.target} already says so: nothing to do`,
  );
  return plain.length === 0;
}

/** What `isoload registries-conf` was asked. */
export interface RegistriesConfCliOptions extends RegistriesConfOptions {
  from: ExpectFrom;
  /** The cluster's TLS directory, whose ca.crt is read at run. */
  tlsDir?: string;
}

/** `isoload registries-conf --mirror HOST:PORT… (--data-dir DIR | --expect FILE)`. */
export const registriesConfCommand: Command<RegistriesConfCliOptions> = {
  summary: "Point a host at its mirrors in order (its own registry, then host0's): registries.conf and the CA",
  usage: "isoload registries-conf --mirror HOST:PORT… (--data-dir DIR | --expect FILE) [--tls-dir DIR] [--certs-dir DIR] [--out FILE]",
  description: "Writes the registries.conf of a host: one [[registry]] per source repository of the images, with every --mirror\n" +
    "as a mirror in the order given (containers/image tries mirrors in order, so a pull fails over from the host's own\n" +
    "registry, localhost:22625, to host0's), with the same rules as load's (validated, atomic, a drop-in by default,\n" +
    "same bytes for the same input). The image list comes from a data directory or from a file (isoload inspect --json\n" +
    "ARCHIVE or DIR). With TLS, the CA (--tls-dir DIR's ca.crt, the one in the list, or one already in --certs-dir) is\n" +
    "installed at CERTS/HOST:PORT/ca.crt for every mirror and no insecure = true is written; a mirror with no CA is\n" +
    "plain HTTP (insecure = true).",
  options: {
    mirror: {
      type: "string",
      arg: "HOST:PORT",
      multiple: true,
      help: "A mirror, repeatable: first listed, first tried (localhost:22625, then host0's address).",
    },
    "data-dir": { type: "string", arg: "DIR", help: "A data directory isoload loaded (on that host)." },
    expect: { type: "string", arg: "FILE", help: "The image list (isoload inspect --json ARCHIVE|DIR)." },
    "tls-dir": { type: "string", arg: "DIR", help: "The cluster's TLS directory (isoload tls): its ca.crt is every mirror's CA." },
    "certs-dir": { type: "string", arg: "DIR", default: DEFAULT_CERTS_DIR, help: "Where containers/image looks for registry CAs." },
    out: { type: "string", arg: "FILE", default: DEFAULT_REGISTRIES_CONF, help: "registries.conf or drop-in to write." },
  },
  examples: [
    "isoload registries-conf --mirror localhost:22625 --mirror 192.168.111.20:22625 --expect /etc/isoload/images.json --tls-dir /etc/isoload/tls",
    "isoload inspect --json /var/lib/isoload > images.json   # the list (and CA) to give the nodes",
  ],
  positionals: 0,
  parse(v) {
    const from = expectFrom(v);
    const mirrors = list(v, "mirror").map((m) => parseHostPort(m, "--mirror"));
    if (!mirrors.length) throw new UsageError("--mirror is required");
    const tlsDir = str(v, "tls-dir");
    if (tlsDir === "") throw new UsageError("--tls-dir needs a directory (isoload tls --out DIR makes one)");
    return {
      from,
      mirrors,
      tlsDir,
      certsDir: str(v, "certs-dir") ?? DEFAULT_CERTS_DIR,
      out: str(v, "out") ?? DEFAULT_REGISTRIES_CONF,
    };
  },
  async run(o, log) {
    const ca = o.tlsDir ? await readTlsCa(o.tlsDir) : undefined;
    await writeNodeRegistriesConf(await readExpected(o.from, "write registries.conf"), { ...o, ca }, log);
    return ExitCode.ok;
  },
};
