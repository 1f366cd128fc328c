/**
 * The registry's CA where containers/image looks for it:
 * `<certs-dir>/<HOST:PORT>/ca.crt` (default certs dir /etc/containers/certs.d).
 */
import { join } from "node:path";
import { atomicWrite, readTextIfExists } from "../util/atomic_write.ts";
import { ConfigError } from "../util/errors.ts";
import { checkCaPem } from "../server/tls.ts";

/** Where containers/image reads per-registry CAs. */
export const DEFAULT_CERTS_DIR = "/etc/containers/certs.d";

/** First line of a CA file isoload installs (PEM readers skip text before the block). */
const CA_MARKER = "# Written by isoload: the CA of the isoload registry at";

/** Path of the CA file for a registry. */
export function caPathFor(certsDir: string, mirror: string): string {
  return join(certsDir, mirror, "ca.crt");
}

/** The CA installed for `mirror`, or undefined. */
export async function installedCa(certsDir: string, mirror: string): Promise<string | undefined> {
  const path = caPathFor(certsDir, mirror);
  const text = await readTextIfExists(path);
  return text === undefined ? undefined : await checkCaPem(text, path);
}

/** The text of the CA file isoload installs for `mirror` (the same bytes whether written at boot or shipped in Ignition). */
export function caFileText(mirror: string, pem: string): string {
  return `${CA_MARKER} ${mirror}\n${pem.endsWith("\n") ? pem : pem + "\n"}`;
}

/**
 * Installs `pem` as the CA for `mirror`, atomically. A file there that
 * isoload did not write is left alone unless it already holds the same
 * certificate. Returns whether anything was written.
 */
export async function installCa(certsDir: string, mirror: string, pem: string): Promise<boolean> {
  const path = caPathFor(certsDir, mirror);
  const text = caFileText(mirror, pem);
  const current = await readTextIfExists(path);
  if (current !== undefined && !current.startsWith(CA_MARKER)) {
    if (current.trim() === pem.trim()) return false;
    throw new ConfigError(`Cannot install the registry CA at ${path}: a different certificate isoload did not write is there`);
  }
  return await atomicWrite(path, text);
}
