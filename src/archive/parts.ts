/**
 * Several files that are one source: which archives the given paths make and
 * in what order. Two kinds of splitting are recognised, and may be combined:
 *
 * - a numbered series of whole tar archives, each readable on its own, as
 *   oc-mirror v2 writes with `archiveSize` (`mirror_000001.tar`, `mirror_000002.tar`, …);
 * - chunks of one split file, to be concatenated (`images.tar.00`, `images.tar.01`, …),
 *   as ISO 9660 tooling cuts files larger than the medium allows.
 *
 * Pure: the caller lists directories (for parts that exist but were not given).
 */
import { basename, dirname, join } from "node:path";
import { InputError } from "../util/errors.ts";

/** One tar archive of a source: a whole file, or the chunks of a split file in order. */
export interface ArchivePart {
  /** For messages: the file, or the split file's name with its chunk range (`images.tar.00…02`). */
  name: string;
  /** The files whose concatenation is the archive, in order. */
  chunks: string[];
}

/** Lists the names in a directory, or undefined when it cannot be read. */
export type ListDir = (dir: string) => readonly string[] | undefined;

/** Compares names as people sort them: runs of digits by value (`part2` before `part10`). */
export function naturalCompare(a: string, b: string): number {
  const ra = a.match(/\d+|\D+/g) ?? [];
  const rb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i], y = rb[i];
    if (x === y) continue;
    if (/^\d/.test(x) && /^\d/.test(y)) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d;
      return x.length - y.length;
    }
    return x < y ? -1 : 1;
  }
  return ra.length - rb.length;
}

/** True when a path holds glob characters (`*`, `?`, `[`). */
export function hasGlob(path: string): boolean {
  return /[*?[]/.test(path);
}

/** A RegExp for one path component of a glob: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`; never matching a leading dot unless given. */
export function globComponentRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end === -1) {
        re += "\\[";
        continue;
      }
      let set = pattern.slice(i + 1, end);
      if (set.startsWith("!")) set = "^" + set.slice(1);
      re += `[${set.replace(/\\/g, "\\\\")}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  const dot = pattern.startsWith(".") ? "" : "(?!\\.)";
  return new RegExp(`^${dot}${re}$`);
}

/**
 * Expands a glob pattern: each component with glob characters is matched
 * against the names `list` gives; matches come back in natural order.
 * A component without glob characters is kept as is (existence is checked later).
 */
export function expandGlob(pattern: string, list: ListDir): string[] {
  const absolute = pattern.startsWith("/");
  const comps = pattern.split("/").filter((c, i) => c !== "" || i === 0);
  let found = [absolute ? "/" : ""];
  for (const comp of comps.slice(absolute ? 1 : 0)) {
    if (!hasGlob(comp)) {
      found = found.map((p) => (p === "" ? comp : join(p, comp)));
      continue;
    }
    const re = globComponentRegExp(comp);
    const next: string[] = [];
    for (const dir of found) {
      const names = (list(dir === "" ? "." : dir) ?? []).filter((n) => re.test(n)).sort(naturalCompare);
      for (const n of names) next.push(dir === "" ? n : join(dir, n));
    }
    found = next;
  }
  return found;
}

/** A name split around its last number: `mirror_000002.tar` → `mirror_`, 2, `.tar`. */
interface Numbered {
  path: string;
  head: string;
  n: number;
  digits: string;
  tail: string;
}

function numbered(path: string, name: string, re: RegExp): Numbered | undefined {
  const m = re.exec(name);
  return m ? { path, head: m[1], n: Number(m[2]), digits: m[2], tail: m[3] ?? "" } : undefined;
}

// A chunk's name ends in a dot and a number: images.tar.00, data.001.
const CHUNK = /^(.+\.)(\d+)()$/;
// A whole archive's number is its last run of digits: mirror_000001.tar.
const SERIES = /^(.*?)(\d+)(\D*)$/;
// oc-mirror's own naming (internal/pkg/archive const.go: "%s_%06d.tar" with prefix "mirror").
const OC_MIRROR = /^(mirror_)(\d{6})(\.tar)$/;

function nameWith(x: Numbered, n: number): string {
  return `${x.head}${String(n).padStart(x.digits.length, "0")}${x.tail}`;
}

/**
 * Checks that numbered names form one run with no gap and no repeat, and
 * returns them in order. `first` says which numbers may start the run.
 * `what` is the noun for messages ("chunk", "part").
 */
function orderRun(items: Numbered[], what: string, starts: number[]): Numbered[] {
  // Stable: of two with one number, the one given later is the extra one.
  const sorted = [...items].sort((a, b) => a.n - b.n);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].n === sorted[i - 1].n) {
      throw new InputError(
        `Cannot use ${sorted[i].path} as a ${what}: it is an extra ${what} (${sorted[i - 1].path} already has number ${sorted[i].n})`,
      );
    }
    if (sorted[i].n !== sorted[i - 1].n + 1) {
      const gap = join(dirname(sorted[i - 1].path), nameWith(sorted[i - 1], sorted[i - 1].n + 1));
      throw new InputError(`Cannot read the source: ${what} ${gap} is missing (between ${sorted[i - 1].path} and ${sorted[i].path})`);
    }
  }
  if (!starts.includes(sorted[0].n)) {
    const gap = join(dirname(sorted[0].path), nameWith(sorted[0], sorted[0].n - 1));
    throw new InputError(`Cannot read the source: ${what} ${gap} is missing (the ${what}s given start at ${sorted[0].path})`);
  }
  return sorted;
}

/** Refuses when a file of the same numbered run exists beside the given ones but was not given. */
function checkNeighbours(run: Numbered[], re: RegExp, what: string, list: ListDir, hint: string): void {
  const given = new Set(run.map((x) => basename(x.path)));
  const last = run[run.length - 1];
  const first = run[0];
  const dirs = [...new Set(run.map((x) => dirname(x.path)))];
  for (const dir of dirs) {
    for (const name of list(dir) ?? []) {
      if (given.has(name)) continue;
      const x = numbered(join(dir, name), name, re);
      if (!x || x.head !== last.head || x.tail !== last.tail) continue;
      if (x.n === last.n + 1 || x.n === first.n - 1) {
        throw new InputError(`Cannot read the source: ${what} ${x.path} belongs with the ${what}s given but was not given${hint}`);
      }
    }
  }
}

/**
 * Groups and orders the files of one source into archives.
 *
 * - Files whose names differ only in a final `.<number>` are chunks of one
 *   split file, concatenated in numeric order; numbering starts at 0 or 1.
 *   A file with such a name and no other chunk given or beside it is a whole file.
 * - Several archives must form one numbered series (names differing only in
 *   their last number, like oc-mirror's `mirror_000001.tar`), in numeric order
 *   from 0 or 1.
 * - A gap, a repeated number, a file that is not in the series, or a chunk or
 *   oc-mirror part lying beside the given ones but not given, is an error naming it.
 *
 * @example
 * ```ts
 * planParts(["/d/mirror_000002.tar", "/d/mirror_000001.tar"], () => []);
 * // [{ name: "/d/mirror_000001.tar", chunks: [...] }, { name: "/d/mirror_000002.tar", chunks: [...] }]
 * ```
 */
export function planParts(files: readonly string[], list: ListDir): ArchivePart[] {
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f)) throw new InputError(`Cannot use ${f} twice: it was given more than once`);
    seen.add(f);
  }
  // Chunks first: group by the split file's name.
  const groups = new Map<string, Numbered[]>();
  const wholes: string[] = [];
  for (const f of files) {
    const c = numbered(f, basename(f), CHUNK);
    if (!c) {
      wholes.push(f);
      continue;
    }
    const key = c.head;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  const archives: ArchivePart[] = [];
  for (const [stem, chunks] of groups) {
    const split = stem.slice(0, -1);
    const alone = chunks.length === 1 &&
      !(list(dirname(chunks[0].path)) ?? []).some((n) => n !== basename(chunks[0].path) && numbered(n, n, CHUNK)?.head === stem);
    if (alone && chunks[0].n > 1) {
      // A lone name like release.4.16: a whole file that happens to end in a number.
      wholes.push(chunks[0].path);
      continue;
    }
    const run = orderRun(chunks, "chunk", [0, 1]);
    checkNeighbours(run, CHUNK, "chunk", list, ` (give every chunk of ${split}, e.g. '${join(dirname(run[0].path), split)}.*')`);
    const paths = run.map((x) => x.path);
    archives.push({
      name: paths.length === 1 ? paths[0] : `${paths[0]}…${run[run.length - 1].digits}`,
      chunks: paths,
    });
  }
  for (const f of wholes) archives.push({ name: f, chunks: [f] });
  // The split files' names (or the whole files') then form the series of archives.
  const keyOf = (a: ArchivePart) => basename(a.chunks[0]).replace(CHUNK, "$1").replace(/\.$/, "");
  const inSeries = archives.map((a) => ({ a, x: numbered(a.name, keyOf(a), SERIES) }));
  if (archives.length === 1) {
    const { a, x } = inSeries[0];
    const oc = numbered(a.chunks[0], keyOf(a), OC_MIRROR);
    if (oc && x) checkOcMirrorNeighbours([{ ...oc, path: join(dirname(a.chunks[0]), keyOf(a)) }], list);
    return archives;
  }
  const first = inSeries[0].x;
  for (const { a, x } of inSeries) {
    if (!x || !first || x.head !== first.head || x.tail !== first.tail) {
      throw new InputError(
        `Cannot use ${a.name} as a part of the same source as ${inSeries[0].a.name}: it is an extra part ` +
          "(the parts of one source are one numbered series, such as mirror_000001.tar, mirror_000002.tar, …)",
      );
    }
  }
  const run = orderRun(
    inSeries.map(({ a, x }) => ({ ...x!, path: join(dirname(a.chunks[0]), keyOf(a)) })),
    "part",
    [0, 1],
  );
  if (OC_MIRROR.test(basename(run[0].path))) checkOcMirrorNeighbours(run, list);
  const byPath = new Map(archives.map((a) => [join(dirname(a.chunks[0]), keyOf(a)), a]));
  return run.map((x) => byPath.get(x.path)!);
}

function checkOcMirrorNeighbours(run: Numbered[], list: ListDir): void {
  if (run[0].n !== 1) {
    throw new InputError(
      `Cannot read the source: part ${join(dirname(run[0].path), nameWith(run[0], 1))} is missing (oc-mirror parts start at 1)`,
    );
  }
  const dir = dirname(run[0].path);
  checkNeighbours(run, OC_MIRROR, "part", list, ` (give every part, e.g. '${dir}/mirror_*.tar')`);
}
