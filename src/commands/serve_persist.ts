/**
 * `isoload serve --data-dir DIR --source ARCHIVE… --peer URL…` (or `--persist`
 * without peers): a control-plane node that still has its ISO serves the
 * archive in place at once and copies it into DIR in the background, each blob
 * then served from its verified copy, so the node keeps the images once the ISO
 * is gone. A complete DIR is served alone (neither the ISO nor the peers are
 * read); an archive that cannot be read (the ISO was ejected, a part is
 * missing) hands over to the peers, as `serve --peer` does. If the background
 * copy fails (the ISO went away mid-copy), the process stops with its error so
 * that systemd's restart serves from DIR and the peers instead of a medium that
 * no longer answers; if it fails for any other reason (no room in DIR, a
 * corrupt blob, DIR held by another isoload), it goes on serving the archive
 * in place (a restart would only fail the same way).
 */
import { resolve } from "node:path";
import type { NamingOptions } from "../archive/format.ts";
import type { TlsPaths } from "../server/tls.ts";
import { readRecords } from "../store/records.ts";
import { causedBy, describeError, EnvironmentError, NoRoomError } from "../util/errors.ts";
import { InterruptedError } from "../util/interrupt.ts";
import type { Logger } from "../util/log.ts";
import { load } from "./load_registry.ts";
import { type BuiltinContent, type BuiltinRunOptions, contentFromRecords, contentInPlace, runBuiltin } from "./serve_builtin.ts";
import { type ServePeersOptions, servingWithPeers } from "./serve_peers.ts";
import { Landings } from "../store/landings.ts";

/** What a persisting serve is given. */
export interface PersistOptions {
  sources: string[];
  dataDir: string;
  naming: NamingOptions;
  /** The peers behind DIR when the archive cannot be read (none: the archive must be readable). */
  peers?: Omit<ServePeersOptions, "listTimeoutMs" | "listen">;
  /** Copy the archive into DIR in the background (false: --no-fill, DIR only serves what it already has first). */
  fill: boolean;
  run: Omit<BuiltinRunOptions, "during" | "duringFallback" | "dataDir" | "stopIfDuringFails">;
}

/** Serves until SIGTERM or SIGINT (or the background copy fails); resolves to the exit code. */
export async function servePersisting(o: PersistOptions, tls: TlsPaths | undefined, log: Logger): Promise<number> {
  const dataDir = resolve(o.dataDir);
  const run = { ...o.run, tls, dataDir };
  const records = await readRecords(dataDir);
  if (records?.complete) {
    log.info(`${dataDir} is complete: serving it; neither ${o.sources.join(" ")} nor the peers are read`);
    return await runBuiltin(await contentFromRecords(dataDir, records), run, log);
  }
  let built: BuiltinContent;
  // With the copy, clients are served from the bytes it reads (the ISO is read once), followed through these landings.
  const landings = o.fill ? new Landings() : undefined;
  try {
    built = await contentInPlace(o.sources, o.naming, log, { dataDir, landings });
  } catch (e) {
    if (!o.peers || e instanceof InterruptedError) throw e;
    log.warn(`cannot serve ${o.sources.join(" ")} in place (${describeError(e)}): serving ${dataDir} with the peers behind it instead`);
    const peering = await servingWithPeers(dataDir, { ...o.peers, listTimeoutMs: o.run.readyTimeoutMs, listen: o.run.listen }, log);
    try {
      return await runBuiltin(peering.built, {
        ...run,
        during: peering.during,
        duringFallback: "with the peers behind the data directory",
      }, log);
    } finally {
      peering.close();
    }
  }
  if (!o.fill) return await runBuiltin({ ...built, origin: { ...built.origin, filling: false } }, run, log);
  const copy = () =>
    load({ sources: o.sources, dataDir, mirror: o.run.listen, naming: o.naming, insecure: !tls, registriesConf: undefined, landings }, log)
      .finally(() => landings?.close());
  // Only a medium that stopped answering (I/O errors: the ISO went away) is worth a restart. A full disk, a corrupt blob (withheld
  // by the in-place server anyway) or another isoload holding DIR fail the same way again: serving on in place beats a registry
  // that restarts every few seconds and re-reads the ISO's index over virtual media each time.
  const stop = (e: unknown) => causedBy(e, EnvironmentError) && !causedBy(e, NoRoomError);
  return await runBuiltin(built, { ...run, during: copy, stopIfDuringFails: stop }, log);
}
