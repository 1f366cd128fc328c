/**
 * Running a unit's commands the way systemd would, for tests that boot hosts
 * in namespaces: the unit file parsed, Exec lines split by systemd's quoting
 * rules (systemd.service(5) "Command lines"), Environment= applied.
 */

/** A unit file: each section's keys with their values in order (a key may repeat). */
export type UnitFile = Map<string, Map<string, string[]>>;

/** Parses a unit file's text. */
export function parseUnit(text: string): UnitFile {
  const unit: UnitFile = new Map();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = unit.get(s[1]) ?? new Map();
      unit.set(s[1], section);
      continue;
    }
    const eq = line.indexOf("=");
    if (!section || eq === -1) throw new Error(`not a unit file line: ${raw}`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return unit;
}

/** The values of one key in one section. */
export function unitValues(unit: UnitFile, section: string, key: string): string[] {
  return unit.get(section)?.get(key) ?? [];
}

/** Splits words by systemd's rules: quotes, backslash escapes, %% and $$ unescaped, $VAR and ${VAR} from env. */
export function splitExec(line: string, env: Record<string, string> = {}): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i])) i++;
    if (i >= line.length) break;
    let word = "";
    let quote: string | undefined;
    for (; i < line.length; i++) {
      const c = line[i];
      if (quote) {
        if (c === quote) quote = undefined;
        else if (c === "\\" && i + 1 < line.length) word += line[++i];
        else word += c;
      } else if (c === '"' || c === "'") quote = c;
      else if (/\s/.test(c)) break;
      else if (c === "\\" && i + 1 < line.length) word += line[++i];
      else word += c;
    }
    words.push(
      word.replaceAll("%%", "\0p").replaceAll("$$", "\0d")
        .replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => env[a ?? b] ?? "")
        .replaceAll("\0p", "%").replaceAll("\0d", "$"),
    );
  }
  return words;
}

/** Environment= assignments of a unit's [Service] (space-separated, quoted as systemd quotes them). */
export function unitEnvironment(unit: UnitFile): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of unitValues(unit, "Service", "Environment")) {
    for (const w of splitExec(v.replaceAll("$", "$$"))) {
      const eq = w.indexOf("=");
      if (eq > 0) env[w.slice(0, eq)] = w.slice(eq + 1);
    }
  }
  return env;
}
