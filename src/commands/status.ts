/**
 * `isoload status`: what a data directory holds and what isoload did with it:
 * images and bytes, verification, whether a load runs now, whether the
 * registry answers and where, and which files outside DIR isoload wrote.
 */
import { resolve } from "node:path";
import { ExitCode, InputError } from "../util/errors.ts";
import { type Command, printOut, required } from "./_command.ts";
import { formatBytes } from "../util/log.ts";
import { lockHolder } from "../store/lock.ts";
import { type CopyProgress, readServing, type ServingOrigin, type ServingState } from "../server/serving_state.ts";
import { blobFile, dataDirPaths } from "../store/paths.ts";
import type { ImageBlobs } from "../image/image_blobs.ts";
import { readRecords, type Records } from "../store/records.ts";
import { readStorageRecords, type StorageRecords } from "../storage_mode/storage_records.ts";
import { readCa } from "../server/tls.ts";
import type { VerifyReport } from "./verify.ts";
import { verifyReportPath } from "./verify.ts";

/** The report (`--json` prints it as is). */
export interface StatusReport {
  dataDir: string;
  /** Registry mode: the tree and its records. */
  registry?: {
    complete: boolean;
    images: number;
    blobs: number;
    bytes: number;
    sources: string[];
    files: Records["files"];
    /** Blobs are verified against their digests as they are written; `lastVerify` is the last full re-check. */
    lastVerify?: { at: string; ok: boolean; problems: number };
    /** From DIR's serving state file: what a running serve serves (`running`), or what the last one served. */
    serving?: {
      listen: string;
      url: string;
      tls: boolean;
      server: ServingState["server"];
      pid: number;
      started: string;
      running: boolean;
      answering: boolean;
      /** Where the images come from: DIR, the ISO's archive in place, peers (absent for an external registry). */
      origin?: ServingOrigin;
      /** How the serve's background copy into DIR went (when it makes one): `interrupted` when the serve stopped mid-copy. */
      copy?: CopyStatus;
    };
    /** How much of what the serve serves (or last served) is in DIR's tree now: blobs, bytes, whole images. */
    local?: LocalShare;
  };
  /** Storage mode: what was copied into containers-storage. */
  storage?: {
    storageConf?: string;
    pinFile?: string;
    loads: { source: string; complete: boolean; images: number; failures: number }[];
  };
  /** A load (or verify) holding DIR right now, as its lock file says. */
  busy?: string;
}

/** The background copy as status reports it: as recorded, or `interrupted` when its serve is gone mid-copy. */
export type CopyStatus = Omit<CopyProgress, "state"> & { state: CopyProgress["state"] | "interrupted" };

/**
 * The copy's state as it stands: a serve that is gone copies nothing, and serves nothing meanwhile. Records that
 * say the tree is complete win over a recorded "copying" (the records are written a moment before the serve
 * records the copy complete: a serve killed between the two finished its copy).
 */
export function copyNow(copy: CopyProgress, running: boolean, treeComplete: boolean): CopyStatus {
  if (copy.state === "copying" && treeComplete) return { at: copy.at, state: "complete" };
  if (running) return copy;
  const { stillServing: _, ...rest } = copy;
  return copy.state === "copying" ? { ...rest, state: "interrupted" } : rest;
}

/** What of the served images DIR holds. */
export interface LocalShare {
  blobs: number;
  blobsTotal: number;
  bytes: number;
  bytesTotal: number;
  /** Images every blob of which is in DIR. */
  imagesComplete: number;
  imagesTotal: number;
}

/** Counts, by the size of each blob's file in DIR's tree, how much of `wants` is local. */
async function localShare(dataDir: string, wants: ImageBlobs): Promise<LocalShare> {
  const here = new Set<string>();
  const share: LocalShare = { blobs: 0, blobsTotal: 0, bytes: 0, bytesTotal: 0, imagesComplete: 0, imagesTotal: wants.images.length };
  for (const [digest, size] of Object.entries(wants.sizes)) {
    share.blobsTotal++;
    share.bytesTotal += size;
    const st = await Deno.stat(blobFile(dataDir, digest)).catch(() => undefined);
    if (st?.isFile && st.size === size) {
      here.add(digest);
      share.blobs++;
      share.bytes += size;
    }
  }
  for (const img of wants.images) if (img.blobs.every((d) => here.has(d))) share.imagesComplete++;
  return share;
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch {
    return undefined;
  }
}

/** What DIR's state file says is served (or was last), and whether it answers /v2/ now. */
async function serving(dataDir: string, treeComplete: boolean): Promise<NonNullable<StatusReport["registry"]>["serving"]> {
  const s = await readServing(dataDirPaths(dataDir));
  if (!s) return undefined;
  const about = {
    listen: s.listen,
    url: s.url,
    tls: s.tls,
    server: s.server,
    pid: s.pid,
    started: s.started,
    running: s.running,
    ...(s.origin ? { origin: s.origin } : {}),
    ...(s.copy ? { copy: copyNow(s.copy, s.running, treeComplete) } : {}),
  };
  // A stopped serve's port may be someone else's now: only a running one is asked.
  if (!s.running) return { ...about, answering: false };
  const ca = s.tls ? await readCa(dataDir) : undefined;
  const client = ca ? Deno.createHttpClient({ caCerts: [ca] }) : undefined;
  try {
    const r = await fetch(s.url, { signal: AbortSignal.timeout(2000), client });
    await r.body?.cancel();
    return { ...about, answering: r.status === 200 || r.status === 401 };
  } catch {
    return { ...about, answering: false };
  } finally {
    client?.close();
  }
}

/** Gathers the report. */
export async function status(dir: string): Promise<StatusReport> {
  const dataDir = resolve(dir);
  // A serve that fills DIR (from the ISO or peers) may not have written records yet: its state file is enough.
  const served = await readServing(dataDirPaths(dataDir));
  const records = await readRecords(dataDir) ??
    (served ? { version: 1, complete: false, images: [], blobs: 0, bytes: 0, loads: [] } satisfies Records : undefined);
  const storage: StorageRecords | undefined = await readStorageRecords(dataDir);
  if (!records && !storage) throw new InputError(`Cannot show the status of ${dataDir}: it holds no isoload load`);
  const report: StatusReport = { dataDir };
  if (records) {
    const v = await readJson<VerifyReport>(verifyReportPath(dataDir));
    report.registry = {
      complete: records.complete,
      images: records.images.length,
      blobs: records.blobs,
      bytes: records.bytes,
      sources: records.loads.map((l) => l.source),
      files: records.files ?? {},
      ...(v ? { lastVerify: { at: v.at, ok: v.ok, problems: v.problems.length } } : {}),
      serving: await serving(dataDir, records.complete),
      ...(served?.wants ? { local: await localShare(dataDir, served.wants) } : {}),
    };
  }
  if (storage) {
    report.storage = {
      storageConf: storage.storageConf,
      pinFile: storage.pinFile,
      loads: storage.loads.map((l) => ({
        source: l.source.path,
        complete: l.complete,
        images: l.images.length,
        failures: l.failures.length,
      })),
    };
  }
  const busy = await lockHolder(dataDirPaths(dataDir));
  if (busy) report.busy = busy;
  return report;
}

type Serving = NonNullable<StatusReport["registry"]>["serving"];

/** Whether the running serve copies into DIR now (a file without `copy`, from an older serve, says only that it would). */
function copyingNow(s: Serving): boolean {
  return !!s?.running && !!s.origin?.filling && (s.copy === undefined || s.copy.state === "copying");
}

/** The background copy's line: still copying, stopped and why (and what is served meanwhile), or complete. */
function describeCopy(c: CopyStatus, running: boolean): string {
  switch (c.state === "copying" && !running ? "interrupted" : c.state) {
    case "copying":
      return `copying in the background (since ${c.at})`;
    case "complete":
      return `complete (${c.at}): every blob is served from this node's disk`;
    case "interrupted":
      return `interrupted: the serve stopped before the copy finished (copying since ${c.at})`;
    case "stopped":
      if (!running) return `stopped (${c.at}): ${c.error}`;
      return `STOPPED (${c.at}): ${c.error}; ${c.stillServing ? `still serving ${c.stillServing} meanwhile` : "the serve is stopping"}`;
  }
}

function describeServing(s: Serving): string {
  if (!s) return "never served";
  const how = `${s.server === "builtin" ? "built-in" : s.server}, listening on ${s.listen}${s.tls ? ", TLS" : ""}`;
  if (!s.running) return `not serving (last served at ${s.url}, ${how}, since ${s.started})`;
  return `${s.answering ? "serving" : "not answering"} at ${s.url} (${how}, pid ${s.pid}, since ${s.started})`;
}

/** Where the images come from, in the order the serve looks, and whether they are being (or have been) copied to the disk. */
function describeOrigin(s: NonNullable<Serving>): string {
  const o = s.origin!;
  const copy = copyingNow(s) ? "copying" : s.copy?.state === "complete" ? "complete" : undefined;
  const from: string[] = [];
  if (o.dataDir) from.push(`this node's disk (${o.dataDir})`);
  if (o.inPlace?.length) {
    const note = copy === "copying" ? ", being copied to the disk" : copy === "complete" ? ", copied to the disk" : "";
    from.push(`the archive in place (${o.inPlace.join(" ")}${note})`);
  }
  if (o.peers?.length) {
    const note = copy === "copying"
      ? "copied to the disk as asked and in the background"
      : copy === "complete"
      ? "copied to the disk"
      : "as asked";
    from.push(`peers ${o.peers.join(", ")} (${note})`);
  }
  return from.join(", then ") || "-";
}

/** "12 of 40 blobs (1.2 MB of 3.4 MB), 3 of 8 images complete". */
function describeLocal(l: LocalShare): string {
  return `${l.blobs} of ${l.blobsTotal} blobs (${formatBytes(l.bytes)} of ${formatBytes(l.bytesTotal)}), ` +
    `${l.imagesComplete} of ${l.imagesTotal} images complete`;
}

/** The report for people. */
export function renderStatus(r: StatusReport): string {
  const lines = [`Data directory: ${r.dataDir}`];
  if (r.busy) lines.push(`Busy:           ${r.busy}`);
  if (r.registry) {
    const g = r.registry;
    lines.push(
      `Registry tree:  ${
        g.complete
          ? "complete"
          : copyingNow(g.serving)
          ? "being filled by the running serve"
          : g.serving?.running && g.serving.copy?.state === "stopped"
          ? "UNFINISHED (the running serve's copy into it stopped: see Disk copy)"
          : "UNFINISHED (run isoload load again)"
      }: ${g.images} images, ${g.blobs} blobs, ${formatBytes(g.bytes)}`,
      `Loaded from:    ${g.sources.join(", ") || "-"}`,
      `Verified:       each blob against its digest while loading; ${
        g.lastVerify
          ? `last full verify ${g.lastVerify.at}: ${g.lastVerify.ok ? "all good" : `${g.lastVerify.problems} problems`}`
          : "no full verify yet (isoload verify)"
      }`,
      `Registry:       ${describeServing(g.serving)}`,
    );
    if (g.serving?.origin) lines.push(`Images from:    ${describeOrigin(g.serving)}`);
    if (g.serving?.copy) lines.push(`Disk copy:      ${describeCopy(g.serving.copy, g.serving.running)}`);
    if (g.local) lines.push(`On this disk:   ${describeLocal(g.local)}`);
    if (g.files?.mirror) lines.push(`Mirror address: ${g.files.mirror}`);
    if (g.files?.registriesConf) lines.push(`Wrote:          ${g.files.registriesConf}`);
    if (g.files?.ca) lines.push(`Wrote:          ${g.files.ca}`);
  }
  if (r.storage) {
    for (const l of r.storage.loads) {
      lines.push(
        `containers-storage: ${l.images} images from ${l.source}${
          l.complete ? "" : ` (UNFINISHED${l.failures ? `, ${l.failures} failed` : ""})`
        }`,
      );
    }
    lines.push(`Storage config: ${r.storage.storageConf ?? "the host's (/etc/containers/storage.conf)"}`);
    if (r.storage.pinFile) lines.push(`Wrote:          ${r.storage.pinFile}`);
  }
  return lines.join("\n") + "\n";
}

/** What `isoload status` was asked. */
export interface StatusCliOptions {
  dataDir: string;
  json: boolean;
}

/** `isoload status --data-dir DIR`. */
export const statusCommand: Command<StatusCliOptions> = {
  summary: "Show what a data directory holds, whether it is verified and served, and what isoload wrote",
  usage: "isoload status --data-dir DIR [--json]",
  description: "Prints the images and bytes loaded (registry mode) or copied into containers-storage (storage mode), whether\n" +
    "the load finished, the last full verify, whether a load runs now, whether the registry answers and at which\n" +
    "address, and the registries.conf, CA and pinned-images files isoload wrote. Changes nothing.\n" +
    "What is served comes from DIR/isoload/serving.json, which every serve of DIR (built-in, external, load --serve)\n" +
    "writes while it runs; serve --source without --data-dir writes none and is not seen here. For the built-in\n" +
    "server it also says where the images come from (this node's disk, the ISO's archive in place, which peers),\n" +
    "how its background copy into DIR goes (copying, stopped and why while serving goes on, or complete), and\n" +
    "how much of what is served is on the disk now: blobs and bytes in DIR against the total, and whole images.",
  options: {
    "data-dir": { type: "string", arg: "DIR", help: "A data directory isoload loaded." },
    json: { type: "boolean", help: "Print one JSON document instead of text." },
  },
  examples: ["isoload status --data-dir /var/lib/isoload", "isoload status --data-dir /var/lib/isoload --json | jq .registry.serving"],
  positionals: 0,
  parse: (v) => ({ dataDir: required(v, "data-dir"), json: v.json === true }),
  async run(o) {
    const report = await status(o.dataDir);
    await printOut(o.json ? JSON.stringify(report, null, 2) + "\n" : renderStatus(report));
    return ExitCode.ok;
  },
};
