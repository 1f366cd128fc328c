/**
 * `isoload verify`: re-hash every blob of a data directory, check every link
 * file, and check that every recorded image is laid out in full. Each problem
 * is reported; the result is kept in `DIR/isoload/verify.json` for `status`.
 */
import { join, relative, resolve } from "node:path";
import { atomicWrite } from "../util/atomic_write.ts";
import { readManifests } from "../image/catalog.ts";
import { digestHex, isDigest } from "../image/digest.ts";
import { hashFiles } from "../image/digest_worker.ts";
import { ExitCode, InputError } from "../util/errors.ts";
import { type Command, printOut, required } from "./_command.ts";
import { filesUnder } from "../util/disk_space.ts";
import { checkInterrupt, watchInterrupts } from "../util/interrupt.ts";
import { planLayout } from "../store/layout_plan.ts";
import { lockDataDir } from "../store/lock.ts";
import { byteProgress, formatBytes, formatDuration, type Logger } from "../util/log.ts";
import { readRecords } from "../store/records.ts";
import { RegistryStore } from "../store/storage_tree.ts";
import { dataDirPaths } from "../store/paths.ts";

/** One thing wrong, at a path under DIR. */
export interface Problem {
  path: string;
  what: string;
}

/** What verify found. */
export interface VerifyReport {
  dataDir: string;
  at: string;
  ok: boolean;
  blobs: number;
  bytes: number;
  links: number;
  problems: Problem[];
}

/** Path of the last verify's report. */
export function verifyReportPath(dataDir: string): string {
  return dataDirPaths(dataDir).verifyReport;
}

/** Verifies DIR; resolves to the report (problems included), having written it to verify.json. */
export async function verifyDataDir(dir: string, log: Logger): Promise<VerifyReport> {
  const started = performance.now();
  const dataDir = resolve(dir);
  const records = await readRecords(dataDir);
  if (!records) throw new InputError(`Cannot verify ${dataDir}: it holds no isoload load`);
  const store = new RegistryStore(dataDir);
  const lock = await lockDataDir(store.paths, `verify ${dataDir}`);
  const interrupts = watchInterrupts();
  const problems: Problem[] = [];
  const at = (p: string) => relative(dataDir, p);
  try {
    // 1. Every blob hashes to its name.
    const blobFiles = await filesUnder(store.blobsDir);
    const total = blobFiles.reduce((n, f) => n + Math.max(0, f.size), 0);
    const progress = byteProgress(log, "verify", total);
    let done = 0;
    let blobs = 0;
    const toHash: { path: string; size: number; hex: string }[] = [];
    for (const f of blobFiles) {
      const m = /\/blobs\/sha256\/([0-9a-f]{2})\/([0-9a-f]{64})\/data$/.exec(f.path);
      if (!m || m[2].slice(0, 2) !== m[1]) {
        problems.push({ path: at(f.path), what: "a file that is not a blob's data where blobs live" });
        continue;
      }
      blobs++;
      toHash.push({ path: f.path, size: f.size, hex: m[2] });
    }
    // Every core hashes, each worker reading its own files with large reads; this thread only keeps count.
    const hashProblems: Problem[] = [];
    await hashFiles(toHash, (f, r) => {
      const hex = (f as typeof toHash[number]).hex;
      if (r.error !== undefined) hashProblems.push({ path: at(f.path), what: `cannot be read: ${r.error}` });
      else if (r.digest !== `sha256:${hex}`) {
        hashProblems.push({ path: at(f.path), what: `its bytes hash to ${r.digest}, not to its name` });
      }
      progress(done += Math.max(0, f.size), at(f.path));
    }, { stop: () => interrupts.signal.aborted });
    checkInterrupt(interrupts.signal, `verify ${dataDir}`);
    problems.push(...hashProblems.sort((a, b) => (a.path < b.path ? -1 : 1)));
    log.endProgress();

    // 2. Every link file names a blob that is there (and, for revisions and layers, the one its path says).
    const linkFiles = (await filesUnder(store.repositoriesDir)).filter((f) => f.path.endsWith("/link"));
    for (const f of linkFiles) {
      const text = await Deno.readTextFile(f.path).catch(() => "");
      const own = /\/(?:_layers|_manifests\/revisions)\/sha256\/([0-9a-f]{64})\/link$/.exec(f.path);
      if (!isDigest(text)) problems.push({ path: at(f.path), what: `holds ${JSON.stringify(text.slice(0, 80))}, not a digest` });
      else if (own && text !== `sha256:${own[1]}`) problems.push({ path: at(f.path), what: `names ${text}, not the digest of its path` });
      else if ((await store.blobSize(text)) === undefined) {
        problems.push({ path: at(f.path), what: `names ${text}, which is not in blobs/` });
      }
    }

    // 3. Every recorded image is laid out in full: the links its manifests call for exist and agree.
    const manifests = await readManifests(store, records.images.map((i) => i.digest)).catch((e) => {
      problems.push({ path: "docker/registry/v2/blobs", what: `a recorded manifest cannot be read: ${(e as Error).message}` });
      return new Map();
    });
    const plan = planLayout(records.images, manifests, () => true, () => 0);
    for (const m of plan.missing) {
      problems.push({ path: "docker/registry/v2/blobs", what: `${m.image} needs ${m.what} ${m.digest}, which is missing` });
    }
    for (const [rel, digest] of plan.links) {
      const p = join(store.v2, rel);
      const text = await Deno.readTextFile(p).catch(() => undefined);
      if (text === undefined) problems.push({ path: at(p), what: `missing: the link to ${digest}` });
      else if (text !== digest) problems.push({ path: at(p), what: `names ${text}, expected ${digest}` });
    }
    for (const img of records.images) {
      if ((await store.blobSize(img.digest)) === undefined) {
        problems.push({
          path: `docker/registry/v2/blobs/sha256/${digestHex(img.digest).slice(0, 2)}`,
          what: `${img.source}@${img.digest}: its manifest is missing`,
        });
      }
    }

    const report: VerifyReport = {
      dataDir,
      at: new Date().toISOString(),
      ok: problems.length === 0,
      blobs,
      bytes: total,
      links: linkFiles.length,
      problems,
    };
    await atomicWrite(verifyReportPath(dataDir), JSON.stringify(report, null, 2) + "\n");
    const summary = `${blobs} blobs (${formatBytes(total)}) and ${linkFiles.length} links in ${
      formatDuration(performance.now() - started)
    }`;
    if (report.ok) log.info(`Verified ${dataDir}: ${summary}: all good`);
    else {
      for (const p of problems) log.warn(`${p.path}: ${p.what}`);
      log.info(`Verified ${dataDir}: ${summary}: ${problems.length} problems`);
    }
    return report;
  } finally {
    interrupts.dispose();
    lock.release();
  }
}

/** What `isoload verify` was asked. */
export interface VerifyCliOptions {
  dataDir: string;
  json: boolean;
}

/** `isoload verify --data-dir DIR`. */
export const verifyCommand: Command<VerifyCliOptions> = {
  summary: "Re-hash every blob and check every link of a data directory",
  usage: "isoload verify --data-dir DIR [--json]",
  description: "Reads every blob under DIR/docker/registry/v2 and checks it hashes to its name, checks that every link file\n" +
    "names a blob that is there, and that every recorded image has all the links and blobs it needs. Each problem is\n" +
    "reported with its path. Exits 0 when all is well, 3 when anything is wrong. The result is kept for isoload status.",
  options: {
    "data-dir": { type: "string", arg: "DIR", help: "A data directory isoload loaded." },
    json: { type: "boolean", help: "Print the report as one JSON document on stdout." },
  },
  examples: ["isoload verify --data-dir /var/lib/isoload"],
  positionals: 0,
  parse: (v) => ({ dataDir: required(v, "data-dir"), json: v.json === true }),
  async run(o, log) {
    const report = await verifyDataDir(o.dataDir, log);
    if (o.json) await printOut(JSON.stringify(report, null, 2) + "\n");
    if (!report.ok) {
      const first = report.problems[0];
      throw new InputError(`Cannot vouch for ${report.dataDir}: ${report.problems.length} problems (first: ${first.path}: ${first.what})`);
    }
    return ExitCode.ok;
  },
};
