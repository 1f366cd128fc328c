/**
 * What isoload loaded into a data directory, kept in `DIR/isoload/images.json`
 * so every later command needs only DIR. Written atomically; `complete` is set
 * only once every blob and link is in place.
 */
import { atomicWrite } from "../util/atomic_write.ts";
import { InputError } from "../util/errors.ts";
import { lockDataDir } from "./lock.ts";
import { dataDirPaths } from "./paths.ts";
import type { LoadedImage } from "../image/loaded_image.ts";

/** The records file. */
export interface Records {
  version: 1;
  /** True once the last load finished: every blob and link in place. */
  complete: boolean;
  images: LoadedImage[];
  /** Distinct blobs referenced by the images, and their total bytes. */
  blobs: number;
  bytes: number;
  /** Each load that contributed, oldest first: its (first) file, and all its files when there were several. */
  loads: { source: string; parts?: string[]; format: string; finishedAt?: string }[];
  /** Files the last load wrote outside DIR, and the mirror address it wrote them for. */
  files?: { mirror?: string; registriesConf?: string; ca?: string };
}

/** Path of the records file in a data directory. */
export function recordsPath(dataDir: string): string {
  return dataDirPaths(dataDir).records;
}

/**
 * Reads one of isoload's JSON state files, or undefined when it does not exist;
 * `valid` says whether the parsed value is what `what` should be.
 */
export async function readStateFile<T>(path: string, valid: (v: T) => boolean, what: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new InputError(`Cannot read ${path}`, { cause: e });
  }
  try {
    const r = JSON.parse(text) as T;
    if (!r || !valid(r)) throw new SyntaxError("unknown version");
    return r;
  } catch (e) {
    throw new InputError(`Cannot read ${path}: not ${what}`, { cause: e });
  }
}

/** Reads the records, or undefined when there are none yet. */
export async function readRecords(dataDir: string): Promise<Records | undefined> {
  return await readStateFile<Records>(recordsPath(dataDir), (r) => r.version === 1 && Array.isArray(r.images), "isoload records");
}

/** Reads records that must exist and be complete (for serve, mirror-config, …). */
export async function requireRecords(dataDir: string, action: string): Promise<Records> {
  const r = await readRecords(dataDir);
  if (!r) throw new InputError(`Cannot ${action}: ${dataDir} holds no isoload load (run isoload load first)`);
  if (!r.complete) throw new InputError(`Cannot ${action}: the load into ${dataDir} is unfinished (run isoload load again)`);
  return r;
}

/**
 * Records of a DIR about to be served: complete, and no load holding DIR now
 * (it may be rewriting what would be served). Refuses naming the holder.
 */
export async function requireServableRecords(dataDir: string): Promise<Records> {
  const records = await requireRecords(dataDir, `serve ${dataDir}`);
  (await lockDataDir(dataDirPaths(dataDir), `serve ${dataDir} while a load is running`)).release();
  return records;
}

/** Writes the records atomically; same records, same bytes. */
export async function writeRecords(dataDir: string, records: Records): Promise<void> {
  await atomicWrite(recordsPath(dataDir), JSON.stringify(records, null, 2) + "\n");
}
