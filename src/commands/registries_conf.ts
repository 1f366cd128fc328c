/**
 * `isoload registries-conf`: the registries.conf of a node that is not host0,
 * pointing the images' source names at host0's registry, with the registry's
 * CA installed where containers/image looks for it when it serves TLS.
 */
import { caPathFor, installCa, installedCa } from "../host/ca_install.ts";
import { type Expected, type ExpectFrom, readExpected } from "../host/expect.ts";
import { DEFAULT_CERTS_DIR } from "../host/ca_install.ts";
import { DEFAULT_REGISTRIES_CONF } from "../host/registries_conf_file.ts";
import { ExitCode } from "../util/errors.ts";
import { type Command, expectFrom, parseHostPort, required, str } from "./_command.ts";
import type { Logger } from "../util/log.ts";
import { mirrorTargets } from "../host/registries_conf.ts";
import { planRegistriesConf, readHostConf, writeRegistriesConf } from "../host/registries_conf_file.ts";

/** Options of `isoload registries-conf`. */
export interface RegistriesConfOptions {
  /** HOST:PORT of host0's registry. */
  mirror: string;
  /** Where the CA goes: `<certsDir>/<mirror>/ca.crt`. */
  certsDir: string;
  /** registries.conf (or drop-in) to write. */
  out: string;
}

/** Writes the node's registries.conf (and CA); returns whether TLS is used. */
export async function writeNodeRegistriesConf(expected: Expected, opts: RegistriesConfOptions, log: Logger): Promise<boolean> {
  // Every file of the host's configuration is checked before anything is written.
  const host = await readHostConf(opts.out);
  const ca = expected.ca ?? await installedCa(opts.certsDir, opts.mirror);
  const plan = planRegistriesConf(
    host,
    mirrorTargets(expected.images, opts.mirror),
    !ca,
    `Mirrors of the images host0's isoload registry serves at ${opts.mirror}${ca ? " over TLS" : ""}.`,
  );
  plan.warnings.forEach((w) => log.warn(w));
  if (ca && await installCa(opts.certsDir, opts.mirror, ca)) {
    log.info(`Installed the registry CA at ${caPathFor(opts.certsDir, opts.mirror)}`);
  }
  const res = await writeRegistriesConf(host, plan);
  log.info(
    res.changed
      ? `Wrote ${host.target}: ${expected.images.length} images from ${expected.from} mirrored at ${opts.mirror}` +
        `${ca ? " (TLS)" : " (plain HTTP: insecure = true)"}${res.backup ? `; previous content kept in ${res.backup}` : ""}`
      : `${host.target} already says so: nothing to do`,
  );
  return !!ca;
}

/** What `isoload registries-conf` was asked. */
export interface RegistriesConfCliOptions extends RegistriesConfOptions {
  from: ExpectFrom;
}

/** `isoload registries-conf --mirror HOST:PORT (--data-dir DIR | --expect FILE)`. */
export const registriesConfCommand: Command<RegistriesConfCliOptions> = {
  summary: "Point a node (not host0) at host0's registry: registries.conf and the registry's CA",
  usage: "isoload registries-conf --mirror HOST:PORT (--data-dir DIR | --expect FILE) [--certs-dir DIR] [--out FILE]",
  description: "Writes the registries.conf of a node that pulls from host0, during install and after it boots the final\n" +
    "image: one [[registry]] per source repository of the images, host0's registry first, with the same rules as\n" +
    "host0's own (validated, atomic, a drop-in by default, same bytes for the same input). The image list comes from\n" +
    "host0's data directory or from a file exported from it (isoload inspect --json DIR). When the registry serves\n" +
    "TLS, its CA (carried in that list, or already in --certs-dir) is installed at DIR/HOST:PORT/ca.crt and no\n" +
    "insecure = true is written.",
  options: {
    mirror: { type: "string", arg: "HOST:PORT", help: "Address the node reaches host0's registry at." },
    "data-dir": { type: "string", arg: "DIR", help: "host0's data directory (on host0 itself)." },
    expect: { type: "string", arg: "FILE", help: "The image list exported from host0 (isoload inspect --json DIR)." },
    "certs-dir": { type: "string", arg: "DIR", default: DEFAULT_CERTS_DIR, help: "Where containers/image looks for registry CAs." },
    out: { type: "string", arg: "FILE", default: DEFAULT_REGISTRIES_CONF, help: "registries.conf or drop-in to write." },
  },
  examples: [
    "isoload registries-conf --mirror 192.168.111.20:22625 --expect /etc/isoload/images.json",
    "isoload inspect --json /var/lib/isoload > images.json   # on host0: the list (and CA) to give the nodes",
  ],
  positionals: 0,
  parse(v) {
    const from = expectFrom(v);
    return {
      from,
      mirror: parseHostPort(required(v, "mirror"), "--mirror"),
      certsDir: str(v, "certs-dir") ?? DEFAULT_CERTS_DIR,
      out: str(v, "out") ?? DEFAULT_REGISTRIES_CONF,
    };
  },
  async run(o, log) {
    await writeNodeRegistriesConf(await readExpected(o.from, "write registries.conf"), o, log);
    return ExitCode.ok;
  },
};
