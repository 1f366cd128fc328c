/**
 * registries.conf (containers-registries.conf(5), v2 format): the entries
 * isoload needs, rendering, merging into a file someone else owns, and the
 * validation rules of containers/image, all pure. Over 300 lines on purpose:
 * the merge and the validation rules must agree, and read best side by side.
 */
import { parse as parseToml } from "smol-toml";
import { ConfigError } from "../util/errors.ts";
import type { LoadedImage } from "../image/loaded_image.ts";

/** A mirror of a registry entry. */
export interface MirrorSpec {
  location: string;
  insecure?: boolean;
  pullFromMirror?: "all" | "digest-only" | "tag-only";
}

/** A `[[registry]]` entry, as isoload models it. */
export interface RegistryEntry {
  prefix: string;
  location: string;
  insecure?: boolean;
  blocked?: boolean;
  mirrorByDigestOnly?: boolean;
  mirrors: MirrorSpec[];
}

/** A parsed registries.conf (v2 only: v1 files are refused or converted by the caller). */
export interface ParsedConf {
  registries: RegistryEntry[];
  unqualifiedSearch?: string[];
  /** The v1 `[registries.*]` tables were used. */
  v1: boolean;
}

/** The first line of every file isoload owns; a file without it is someone else's. */
export const OWNED_MARKER = "# Written by isoload";
const BEGIN = "# BEGIN isoload mirrors: managed by isoload, edits here are replaced";
const END = "# END isoload mirrors";
const PULL_FROM_MIRROR = new Set(["all", "digest-only", "tag-only"]);

function fail(where: string, why: string, cause?: unknown): never {
  throw new ConfigError(`Cannot use ${where}: ${why}`, cause ? { cause } : undefined);
}

function trimLocation(where: string, v: unknown, what: string): string {
  if (typeof v !== "string") fail(where, `${what} is not a string`);
  const t = v.replace(/\/+$/, "");
  if (t === "") fail(where, `${what} is empty`);
  if (/^https?:\/\//.test(t)) fail(where, `${what} ${JSON.stringify(v)} has a URI scheme`);
  return t;
}

function bool(where: string, v: unknown, what: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") fail(where, `${what} is not a boolean`);
  return v;
}

/** Parses and checks one file's text, by containers/image's rules for a single file. */
export function parseRegistriesConf(text: string, where: string): ParsedConf {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    fail(where, `not valid TOML (${String((e as Error).message).split("\n")[0]})`, e);
  }
  const v1Table = doc.registries as Record<string, { registries?: unknown }> | undefined;
  const v1 = !!v1Table && ["search", "insecure", "block"].some((k) => {
    const l = v1Table[k]?.registries;
    return Array.isArray(l) && l.length > 0;
  });
  const regs = doc.registry;
  if (regs !== undefined && !Array.isArray(regs)) fail(where, "registry is not an array of tables ([[registry]])");
  const registries: RegistryEntry[] = [];
  for (const [i, r] of ((regs ?? []) as Record<string, unknown>[]).entries()) {
    const w = `${where} [[registry]] #${i + 1}`;
    const location = trimLocation(w, r.location ?? r.prefix, "location");
    const prefix = r.prefix === undefined ? location : trimLocation(w, r.prefix, "prefix");
    const mirrorByDigestOnly = bool(w, r["mirror-by-digest-only"], "mirror-by-digest-only");
    const mirrorsRaw = r.mirror ?? [];
    if (!Array.isArray(mirrorsRaw)) fail(w, "mirror is not an array of tables ([[registry.mirror]])");
    const mirrors: MirrorSpec[] = (mirrorsRaw as Record<string, unknown>[]).map((m, j) => {
      const mw = `${w} mirror #${j + 1}`;
      const pfm = m["pull-from-mirror"];
      if (pfm !== undefined && (typeof pfm !== "string" || !PULL_FROM_MIRROR.has(pfm))) {
        fail(mw, `unsupported pull-from-mirror value ${JSON.stringify(pfm)}`);
      }
      if (pfm !== undefined && pfm !== "all" && mirrorByDigestOnly) {
        fail(mw, "pull-from-mirror and mirror-by-digest-only cannot both be set");
      }
      return {
        location: trimLocation(mw, m.location, "location"),
        insecure: bool(mw, m.insecure, "insecure"),
        pullFromMirror: pfm as MirrorSpec["pullFromMirror"],
      };
    });
    registries.push({
      prefix,
      location,
      insecure: bool(w, r.insecure, "insecure"),
      blocked: bool(w, r.blocked, "blocked"),
      mirrorByDigestOnly,
      mirrors,
    });
  }
  const uq = doc["unqualified-search-registries"];
  if (uq !== undefined && (!Array.isArray(uq) || uq.some((s) => typeof s !== "string"))) {
    fail(where, "unqualified-search-registries is not a list of strings");
  }
  if (v1 && (registries.length > 0 || (Array.isArray(uq) && uq.length > 0))) {
    fail(where, "mixing the v1 ([registries.search]) and v2 ([[registry]]) formats is not supported");
  }
  return { registries, unqualifiedSearch: uq as string[] | undefined, v1 };
}

/**
 * Combines the main file and drop-ins in the order containers/image reads
 * them (a drop-in entry replaces an earlier one with the same prefix) and
 * checks the cross-entry rules. Throws ConfigError naming the conflict.
 */
export function combineConfs(files: { where: string; conf: ParsedConf }[]): RegistryEntry[] {
  const byPrefix = new Map<string, RegistryEntry>();
  for (const { conf } of files) {
    for (const r of conf.registries) {
      byPrefix.delete(r.prefix);
      byPrefix.set(r.prefix, r);
    }
  }
  const combined = [...byPrefix.values()];
  const byLocation = new Map<string, RegistryEntry>();
  for (const r of combined) {
    const other = byLocation.get(r.location);
    if (other) {
      const where = files.map((f) => f.where).join(" + ");
      if (!!other.insecure !== !!r.insecure) {
        fail(where, `registry '${r.location}' is defined multiple times with conflicting 'insecure' setting`);
      }
      if (!!other.blocked !== !!r.blocked) {
        fail(where, `registry '${r.location}' is defined multiple times with conflicting 'blocked' setting`);
      }
    } else byLocation.set(r.location, r);
  }
  return combined;
}

/** The longest-prefix entry for a repository, as containers/image picks it. */
export function findEntry(entries: RegistryEntry[], repo: string): RegistryEntry | undefined {
  let best: RegistryEntry | undefined;
  for (const e of entries) {
    const p = e.prefix;
    const matches = repo === p || (repo.startsWith(p) && "/:@".includes(repo[p.length]));
    if (matches && (!best || p.length > best.prefix.length)) best = e;
  }
  return best;
}

/** How isoload's mirrors should serve a repository. */
export interface MirrorTarget {
  /** Source repository: the entry's prefix. */
  source: string;
  /** First mirror location: `HOST:PORT/<repository in isoload's tree>`. */
  mirror: string;
  /** Further mirror locations, tried in this order after the first (a node's own registry first, then host0). */
  also?: string[];
  /** True when the archive carries tags for this repository. */
  tagged: boolean;
}

/**
 * One target per source repository of the loaded images, sorted. Several
 * mirror hosts are listed in the order given: containers/image tries mirrors
 * in order, so a later one takes over when an earlier one does not answer.
 */
export function mirrorTargets(images: LoadedImage[], mirrorHosts: string | string[]): MirrorTarget[] {
  const [first, ...rest] = typeof mirrorHosts === "string" ? [mirrorHosts] : [...new Set(mirrorHosts)];
  const bySource = new Map<string, MirrorTarget>();
  for (const img of images) {
    const t = bySource.get(img.source) ?? {
      source: img.source,
      mirror: `${first}/${img.repository}`,
      ...(rest.length ? { also: rest.map((h) => `${h}/${img.repository}`) } : {}),
      tagged: false,
    };
    if (img.tags.length) t.tagged = true;
    bySource.set(img.source, t);
  }
  return [...bySource.values()].sort((a, b) => (a.source < b.source ? -1 : 1));
}

/** The HOST:PORT of a mirror location. */
export function mirrorHostOf(location: string): string {
  return location.split("/")[0];
}

/**
 * isoload's entry for one target. The host's existing entry for that
 * repository (exact or broader prefix) is carried over: its location and
 * flags, and its mirrors after isoload's, since this entry replaces it.
 * Repositories with tags in the archive get pull-from-mirror "all" so tag
 * pulls work offline; digest-only ones get "digest-only", as the MCO renders
 * an ImageDigestMirrorSet. `insecure` says, for all of isoload's mirrors or
 * per mirror host, which ones are plain HTTP.
 */
export function entryFor(
  target: MirrorTarget,
  existing: RegistryEntry | undefined,
  insecure: boolean | ((mirrorHost: string) => boolean),
): RegistryEntry {
  const plain = typeof insecure === "boolean" ? () => insecure : insecure;
  const ours: MirrorSpec[] = [target.mirror, ...(target.also ?? [])].map((location) => ({
    location,
    insecure: plain(mirrorHostOf(location)) || undefined,
    pullFromMirror: target.tagged ? "all" : "digest-only",
  }));
  if (!existing) return { prefix: target.source, location: target.source, mirrors: ours };
  const rest = target.source.slice(existing.prefix.length);
  const oursAt = new Set(ours.map((m) => m.location));
  const carried = existing.mirrors
    .map((m) => ({
      ...m,
      location: m.location + rest,
      // mirror-by-digest-only cannot sit beside pull-from-mirror: express it per mirror.
      pullFromMirror: m.pullFromMirror ?? (existing.mirrorByDigestOnly ? "digest-only" as const : undefined),
    }))
    .filter((m) => !oursAt.has(m.location));
  return {
    prefix: target.source,
    location: existing.location + rest,
    insecure: existing.insecure,
    blocked: existing.blocked,
    mirrors: [...ours, ...carried],
  };
}

function q(s: string): string {
  return JSON.stringify(s);
}

/** TOML text of entries, in a fixed order so the same input gives the same bytes. */
export function renderEntries(entries: RegistryEntry[]): string {
  const out: string[] = [];
  for (const e of entries) {
    out.push("[[registry]]", `prefix = ${q(e.prefix)}`, `location = ${q(e.location)}`);
    if (e.insecure !== undefined) out.push(`insecure = ${e.insecure}`);
    if (e.blocked !== undefined) out.push(`blocked = ${e.blocked}`);
    for (const m of e.mirrors) {
      out.push("", "[[registry.mirror]]", `location = ${q(m.location)}`);
      if (m.insecure !== undefined) out.push(`insecure = ${m.insecure}`);
      if (m.pullFromMirror !== undefined) out.push(`pull-from-mirror = ${q(m.pullFromMirror)}`);
    }
    out.push("");
  }
  return out.join("\n");
}

/** The whole text of a file isoload owns. */
export function renderOwnedFile(entries: RegistryEntry[], note: string): string {
  return [
    `${OWNED_MARKER}. Do not edit: isoload rewrites this file; remove it to stop using the mirror.`,
    `# ${note}`,
    "",
    renderEntries(entries),
  ].join("\n");
}

/** Splits TOML text into lines with the table header each line belongs to. */
function tableBlocks(text: string): { header: string; start: number; end: number }[] {
  const lines = text.split("\n");
  const blocks: { header: string; start: number; end: number }[] = [];
  let cur = { header: "", start: 0, end: 0 };
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*(\[\[?)\s*([^\]\s]+)\s*\]\]?\s*(#.*)?$/.exec(lines[i]);
    if (m) {
      cur.end = i;
      blocks.push(cur);
      cur = { header: `${m[1]}${m[2]}`, start: i, end: 0 };
    }
  }
  cur.end = lines.length;
  blocks.push(cur);
  return blocks;
}

/**
 * Merges isoload's entries into the text of a file someone else owns,
 * keeping every other line as it is: the previous isoload block and entries
 * whose prefix isoload now sets are removed, the new block is appended.
 * The result is parsed and compared with the intended model; a file whose
 * shape defeats the text edit is refused rather than guessed at.
 */
export function mergeIntoForeign(text: string, entries: RegistryEntry[], where: string): string {
  const before = parseRegistriesConf(text, where);
  if (before.v1) fail(where, "it uses the v1 format ([registries.search]); isoload will not mix v2 entries into it");
  const ours = new Set(entries.map((e) => e.prefix));
  // Drop the previous managed block, whole.
  let body = text;
  const b = body.indexOf(BEGIN);
  if (b !== -1) {
    const e = body.indexOf(END, b);
    if (e === -1) fail(where, "isoload's managed block has no end marker");
    body = body.slice(0, b) + body.slice(e + END.length).replace(/^\n/, "");
  }
  const lines = body.split("\n");
  const keep = new Array(lines.length).fill(true);
  const blocks = tableBlocks(body);
  for (let i = 0; i < blocks.length; i++) {
    if (blocks[i].header !== "[[registry") continue;
    let end = blocks[i].end;
    let j = i + 1;
    while (j < blocks.length && blocks[j].header.startsWith("[[registry.")) end = blocks[j++].end;
    const chunk = lines.slice(blocks[i].start, end).join("\n");
    let parsed: ParsedConf;
    try {
      parsed = parseRegistriesConf(chunk, where);
    } catch {
      continue; // the final comparison refuses the file if this block mattered
    }
    if (parsed.registries.length === 1 && ours.has(parsed.registries[0].prefix)) {
      for (let k = blocks[i].start; k < end; k++) keep[k] = false;
    }
  }
  const kept = lines.filter((_, i) => keep[i]).join("\n").replace(/\n*$/, "\n");
  const merged = `${kept}\n${BEGIN}\n${renderEntries(entries)}${END}\n`;
  const after = parseRegistriesConf(merged, where);
  const expected = [...before.registries.filter((r) => !ours.has(r.prefix)), ...entries];
  if (JSON.stringify(normalise(after.registries)) !== JSON.stringify(normalise(expected))) {
    fail(where, "its layout is too unusual to edit safely (a [[registry]] table isoload cannot isolate); use a drop-in instead");
  }
  return merged;
}

function normalise(entries: RegistryEntry[]): unknown[] {
  return entries
    .map((e) => JSON.parse(JSON.stringify(e)))
    .sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
}

/** True when the text is a file isoload wrote. */
export function isOwned(text: string): boolean {
  return text.startsWith(OWNED_MARKER);
}
