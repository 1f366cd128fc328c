/**
 * What a command file gives the CLI, skopeo style: its options (for parsing
 * and for help), its help text and examples, a pure `parse(values,
 * positionals)` that turns the parsed flags into the command's typed options
 * or throws UsageError before any work, and `run`. Also the small option
 * readers several commands share.
 */
import { tlsDirPaths } from "../server/tls.ts";
import type { ExpectFrom } from "../host/expect.ts";
import { DEFAULT_CERTS_DIR } from "../host/ca_install.ts";
import type { PeerTrust } from "../peer/peer.ts";
import { isRepositoryPath, looksLikeDomain } from "../image/reference.ts";
import { UsageError } from "../util/errors.ts";
import type { Logger } from "../util/log.ts";

/** One option of a command, for parsing and for help. */
export interface OptionSpec {
  type: "string" | "boolean";
  help: string;
  arg?: string;
  default?: string;
  multiple?: boolean;
  /** A one-letter alias. */
  short?: string;
}

/** Flags as node:util's parseArgs returns them. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** A command: its help, its usage rules (`parse`) and how to run it once parsed. */
export interface Command<O> {
  summary: string;
  usage: string;
  description: string;
  options: Record<string, OptionSpec>;
  examples: string[];
  /** How many positional arguments it takes (0 or 1); -1: any number, checked by `parse`. */
  positionals: number;
  /** Pure: the command's options from the flags, or a UsageError. Reads no file, does no work. */
  parse(values: Values, positionals: string[]): O;
  /** Does the work; resolves to the exit code. */
  run(options: O, log: Logger): Promise<number>;
}

/** A string flag, or undefined. */
export function str(v: Values, name: string): string | undefined {
  const x = v[name];
  return typeof x === "string" ? x : undefined;
}

/** A string flag that must be given. */
export function required(v: Values, name: string): string {
  const x = str(v, name);
  if (x === undefined || x === "") throw new UsageError(`--${name} is required`);
  return x;
}

/** A repeatable string flag, as a list. */
export function list(v: Values, name: string): string[] {
  const x = v[name];
  return Array.isArray(x) ? x : typeof x === "string" ? [x] : [];
}

/** Throws when any of `names` is given: they belong to another mode or option (`--NAME <why>`). */
export function refuse(v: Values, names: string[], why: string): void {
  const given = names.find((n) => v[n] !== undefined);
  if (given) throw new UsageError(`--${given} ${why}`);
}

/** Checks HOST:PORT (a name or IPv4 address, or [IPv6], and a port). */
export function parseHostPort(text: string, what: string): string {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new UsageError(`${what} must be HOST:PORT, got ${JSON.stringify(text)}`);
  return text;
}

/** Parses "90s", "5m", "1h", "1h30m" or a number of seconds into milliseconds. */
export function parseDuration(text: string, what: string): number {
  const t = text.trim();
  let ms = 0;
  if (/^\d+(\.\d+)?$/.test(t)) ms = Number(t) * 1000;
  else {
    const parts = [...t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
    if (!parts.length || parts.map((p) => p[0]).join("") !== t) {
      throw new UsageError(`${what} must be a duration such as 90s, 5m or 1h, got ${JSON.stringify(text)}`);
    }
    const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    for (const p of parts) ms += Number(p[1]) * unit[p[2]];
  }
  if (!(ms > 0)) throw new UsageError(`${what} must be longer than zero, got ${JSON.stringify(text)}`);
  return ms;
}

/** `--source-registry HOST[/PATH]`, checked. */
export function sourceRegistry(v: Values): string | undefined {
  const h = str(v, "source-registry");
  if (h === undefined) return undefined;
  const first = h.split("/")[0];
  if (!looksLikeDomain(first) || (h.includes("/") && !isRepositoryPath(h.slice(first.length + 1)))) {
    throw new UsageError(`--source-registry must be a registry host such as quay.io, got ${JSON.stringify(h)}`);
  }
  return h;
}

/** What every way of serving shares: where it listens, TLS (names for DIR's certificate, or a TLS directory), how long readiness may take. */
export interface ServingOptions {
  listen: string;
  tls?: { hostnames: string[]; ips: string[] } | { dir: string };
  readyTimeoutMs: number;
}

/** --listen, --tls with --hostname/--ip or --tls-dir, and --ready-timeout. */
export function servingOptions(v: Values, defaultListen = "0.0.0.0:22625"): ServingOptions {
  const readyTimeoutMs = parseDuration(str(v, "ready-timeout") ?? "120s", "--ready-timeout");
  if (!v.tls && (list(v, "hostname").length || list(v, "ip").length)) throw new UsageError("--hostname and --ip go with --tls");
  const tlsDir = str(v, "tls-dir");
  if (tlsDir !== undefined) {
    if (v.tls) throw new UsageError("--tls makes the certificate in the data directory, --tls-dir uses one made before: give one");
    if (tlsDir === "") throw new UsageError("--tls-dir needs a directory (isoload tls --out DIR makes one)");
    return { listen: parseHostPort(str(v, "listen") ?? defaultListen, "--listen"), tls: { dir: tlsDir }, readyTimeoutMs };
  }
  for (const ip of list(v, "ip")) {
    if (!/^[0-9.]+$|:/.test(ip)) throw new UsageError(`--ip must be an IPv4 or IPv6 address, got ${JSON.stringify(ip)}`);
  }
  const listen = parseHostPort(str(v, "listen") ?? defaultListen, "--listen");
  return { listen, tls: v.tls ? { hostnames: list(v, "hostname"), ips: list(v, "ip") } : undefined, readyTimeoutMs };
}

/** Where a node's image list comes from: --data-dir DIR or --expect FILE, exactly one. */
export function expectFrom(v: Values): ExpectFrom {
  const dir = str(v, "data-dir");
  const file = str(v, "expect");
  if (!!dir === !!file) throw new UsageError("give exactly one of --data-dir DIR or --expect FILE");
  return dir ? { dataDir: dir } : { file: file! };
}

/** --jobs N: a whole number from 1 to 64. */
export function parseJobs(v: Values, fallback: number): number {
  const jobs = Number(str(v, "jobs") ?? fallback);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) {
    throw new UsageError(`--jobs must be a whole number from 1 to 64, got ${str(v, "jobs")}`);
  }
  return jobs;
}

/** Where peers' CA comes from: --ca FILE…, --tls-dir DIR (its ca.crt), --certs-dir DIR (DIR/HOST:PORT/ca.crt). */
export function peerTrust(v: Values): PeerTrust {
  const tlsDir = str(v, "tls-dir");
  return {
    caFiles: [...list(v, "ca"), ...(tlsDir ? [tlsDirPaths(tlsDir).caCert] : [])],
    certsDir: str(v, "certs-dir") ?? DEFAULT_CERTS_DIR,
  };
}

/** How several files make one source, for the help of every command that reads one. */
export const SOURCES_HELP = "SOURCE may be several files that are one archive, and a quoted glob ('DIR/mirror_*.tar') is expanded by\n" +
  "isoload in natural order: oc-mirror's parts (mirror_000001.tar, mirror_000002.tar, …, each a tar) are read in\n" +
  "order as one source; chunks of one split file (images.tar.00, images.tar.01, …: names that differ only in a\n" +
  "final .NUMBER) are joined in order into one tar. A missing part (a gap, or one lying beside the given ones), an\n" +
  "extra one (a second series, a file not in the series) or a glob matching nothing is an error naming it (exit 3).";

/** Writes text to stdout (the commands' reports). */
export async function printOut(text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  for (let done = 0; done < bytes.length;) done += await Deno.stdout.write(bytes.subarray(done));
}
