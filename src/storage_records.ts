/**
 * What storage mode put in containers-storage, kept in `DIR/isoload/storage.json`
 * so a re-run can check the store instead of reading the archive again.
 */
import { join } from "node:path";
import { atomicWrite } from "./atomic_write.ts";
import { InputError } from "./errors.ts";
import type { StorageFailure } from "./storage_plan.ts";

/** Identifies a source file or directory well enough to notice it changed. */
export interface SourceIdentity {
  path: string;
  size: number;
  mtimeMs: number;
}

/** One image as stored. */
export interface StoredImage {
  ref: string;
  targets: string[];
  accepts: string[];
  pins: string[];
}

/** The storage records file. */
export interface StorageRecords {
  version: 1;
  /** True once every image of the source is in the store. */
  complete: boolean;
  source: SourceIdentity;
  /** The storage.conf skopeo was given; absent for the host's. */
  storageConf?: string;
  images: StoredImage[];
  failures: StorageFailure[];
}

/** Path of the storage records in a data directory. */
export function storageRecordsPath(dataDir: string): string {
  return join(dataDir, "isoload", "storage.json");
}

/** Reads the storage records, or undefined when there are none. */
export async function readStorageRecords(dataDir: string): Promise<StorageRecords | undefined> {
  const path = storageRecordsPath(dataDir);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new InputError(`Cannot read ${path}`, { cause: e });
  }
  try {
    const r = JSON.parse(text) as StorageRecords;
    if (r.version !== 1 || !Array.isArray(r.images) || typeof r.source?.path !== "string") throw new SyntaxError("unknown version");
    return r;
  } catch (e) {
    throw new InputError(`Cannot read ${path}: not isoload storage records`, { cause: e });
  }
}

/** Writes the storage records atomically. */
export async function writeStorageRecords(dataDir: string, records: StorageRecords): Promise<void> {
  await atomicWrite(storageRecordsPath(dataDir), JSON.stringify(records, null, 2) + "\n");
}

/** True when two identities name the same unchanged source. */
export function sameSource(a: SourceIdentity, b: SourceIdentity): boolean {
  return a.path === b.path && a.size === b.size && a.mtimeMs === b.mtimeMs;
}
