/**
 * `isoload registries-conf`: the registries.conf of a node that is not host0,
 * pointing the images' source names at host0's registry, with the registry's
 * CA installed where containers/image looks for it when it serves TLS.
 */
import { caPathFor, installCa, installedCa } from "../host/ca_install.ts";
import type { Expected } from "../host/expect.ts";
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
