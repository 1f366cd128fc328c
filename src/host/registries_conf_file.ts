/**
 * Reading the host's registries configuration and writing isoload's part of
 * it: validated as a whole before anything is replaced, written atomically,
 * with a backup of any file isoload did not write itself.
 */
import { basename, dirname, join } from "node:path";
import { atomicWrite, readTextIfExists } from "../util/atomic_write.ts";
import { ConfigError, wrapFsError } from "../util/errors.ts";
import {
  combineConfs,
  entryFor,
  findEntry,
  isOwned,
  mergeIntoForeign,
  type MirrorTarget,
  type ParsedConf,
  parseRegistriesConf,
  renderOwnedFile,
} from "./registries_conf.ts";

/** The default drop-in isoload writes. */
export const DEFAULT_REGISTRIES_CONF = "/etc/containers/registries.conf.d/99-isoload.conf";

/** The host's configuration as it stands, read before any work is done. */
export interface HostConf {
  target: string;
  /** The target's current text, when it exists. */
  targetText?: string;
  /** Files read before the target, in containers/image's order (main file, earlier drop-ins). */
  before: { where: string; conf: ParsedConf }[];
  /** Drop-ins read after the target: they override it. */
  after: { where: string; conf: ParsedConf }[];
}

/**
 * Reads the target and, when it is a drop-in, the main file and the other
 * drop-ins beside it. Any malformed file is refused here, before the load.
 */
export async function readHostConf(target: string): Promise<HostConf> {
  const host: HostConf = { target, before: [], after: [] };
  host.targetText = await readTextIfExists(target);
  if (host.targetText !== undefined) {
    const own = parseRegistriesConf(host.targetText, target);
    if (own.v1 && !isOwned(host.targetText)) {
      throw new ConfigError(`Cannot use ${target}: it uses the v1 format ([registries.search]); isoload will not mix v2 entries into it`);
    }
  }
  const dir = dirname(target);
  if (basename(dir) !== "registries.conf.d") return host;
  const main = join(dirname(dir), "registries.conf");
  const mainText = await readTextIfExists(main);
  if (mainText !== undefined) host.before.push({ where: main, conf: parseRegistriesConf(mainText, main) });
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(".conf") && join(dir, e.name) !== target) names.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw wrapFsError(`read ${dir}`, e);
  }
  for (const name of names.sort()) {
    const path = join(dir, name);
    const text = await readTextIfExists(path);
    if (text === undefined) continue;
    const entry = { where: path, conf: parseRegistriesConf(text, path) };
    (name < basename(target) ? host.before : host.after).push(entry);
  }
  return host;
}

/** The planned new text of the target, and what the user should know. */
export interface ConfPlan {
  text: string;
  /** The target is someone else's file: back it up before replacing. */
  foreign: boolean;
  warnings: string[];
}

/** Plans the target's new text (pure given the host's files) and checks the combined result. */
export function planRegistriesConf(
  host: HostConf,
  targets: MirrorTarget[],
  insecure: boolean | ((mirrorHost: string) => boolean),
  note: string,
): ConfPlan {
  const warnings: string[] = [];
  const foreign = host.targetText !== undefined && !isOwned(host.targetText);
  const own = foreign ? parseRegistriesConf(host.targetText!, host.target) : undefined;
  const context = combineConfs([...host.before, ...(own ? [{ where: host.target, conf: own }] : [])]);
  const entries = targets.map((t) => entryFor(t, findEntry(context, t.source), insecure));
  // No warning for `blocked = true`: containers/image checks blocked per endpoint, so pulls through the mirror still work.
  const text = foreign ? mergeIntoForeign(host.targetText!, entries, host.target) : renderOwnedFile(entries, note);
  const mine = parseRegistriesConf(text, host.target);
  combineConfs([...host.before, { where: host.target, conf: mine }, ...host.after]);
  const prefixes = new Set(entries.map((e) => e.prefix));
  for (const later of host.after) {
    for (const r of later.conf.registries) {
      if (prefixes.has(r.prefix)) warnings.push(`${later.where} sets ${r.prefix} too and is read after ${host.target}: it wins`);
    }
  }
  return { text, foreign, warnings };
}

/** Writes the planned text: a backup of a foreign file first, then an atomic replace. */
export async function writeRegistriesConf(host: HostConf, plan: ConfPlan): Promise<{ changed: boolean; backup?: string }> {
  if (host.targetText === plan.text) return { changed: false };
  let backup: string | undefined;
  if (plan.foreign && host.targetText !== undefined) {
    backup = `${host.target}.isoload-backup`;
    await atomicWrite(backup, host.targetText);
  }
  try {
    await atomicWrite(host.target, plan.text);
  } catch (e) {
    throw e instanceof ConfigError ? e : wrapFsError(`write ${host.target}`, e);
  }
  return { changed: true, backup };
}
