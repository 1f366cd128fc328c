/**
 * What storage mode put in containers-storage, kept in `DIR/isoload/storage.json`
 * so a re-run can check the store instead of reading the archive again.
 */
import { resolve } from "node:path";
import { atomicWrite } from "../util/atomic_write.ts";
import { readStateFile } from "../store/records.ts";
import { dataDirPaths } from "../store/paths.ts";
import type { StorageFailure } from "./storage_plan.ts";

/** Identifies a source file or directory well enough to notice it changed. */
export interface SourceIdentity {
  /** The (first) file's absolute path. */
  path: string;
  /** Total bytes, and the newest modification time, of all its files. */
  size: number;
  mtimeMs: number;
  /** Each file when the source has several (a multi-part or split archive), in order. */
  parts?: { path: string; size: number; mtimeMs: number }[];
}

/** The identity of a source read from `files` (one, or several in order). */
export function sourceIdentity(files: readonly { path: string; size: number; mtimeMs: number }[]): SourceIdentity {
  const parts = files.map((f) => ({ path: resolve(f.path), size: f.size, mtimeMs: f.mtimeMs }));
  return {
    path: parts[0].path,
    size: parts.reduce((n, f) => n + f.size, 0),
    mtimeMs: Math.max(...parts.map((f) => f.mtimeMs)),
    ...(parts.length > 1 ? { parts } : {}),
  };
}

/** One image as stored. */
export interface StoredImage {
  ref: string;
  targets: string[];
  accepts: string[];
  pins: string[];
}

/** One source loaded into the store. */
export interface StorageLoad {
  source: SourceIdentity;
  /** True once every image of the source is in the store. */
  complete: boolean;
  images: StoredImage[];
  failures: StorageFailure[];
}

/** The storage records file: every source loaded into one store (an oc-mirror series has several). */
export interface StorageRecords {
  version: 2;
  /** The storage.conf skopeo was given; absent for the host's. */
  storageConf?: string;
  /** One entry per source path, in the order first loaded. */
  loads: StorageLoad[];
  /** The CRI-O pinned-images drop-in written, if any. */
  pinFile?: string;
}

/** Path of the storage records in a data directory. */
export function storageRecordsPath(dataDir: string): string {
  return dataDirPaths(dataDir).storageRecords;
}

/** Reads the storage records, or undefined when there are none. */
export async function readStorageRecords(dataDir: string): Promise<StorageRecords | undefined> {
  return await readStateFile<StorageRecords>(
    storageRecordsPath(dataDir),
    (r) => r.version === 2 && Array.isArray(r.loads),
    "isoload storage records",
  );
}

/** Writes the storage records atomically. */
export async function writeStorageRecords(dataDir: string, records: StorageRecords): Promise<void> {
  await atomicWrite(storageRecordsPath(dataDir), JSON.stringify(records, null, 2) + "\n");
}

/** The records with `load` in place of the entry for its source path (appended when new). */
export function withLoad(records: StorageRecords, load: StorageLoad): StorageRecords {
  const loads = records.loads.some((l) => l.source.path === load.source.path)
    ? records.loads.map((l) => (l.source.path === load.source.path ? load : l))
    : [...records.loads, load];
  return { ...records, loads };
}

/** True when two identities name the same unchanged source. */
export function sameSource(a: SourceIdentity, b: SourceIdentity): boolean {
  return a.path === b.path && a.size === b.size && a.mtimeMs === b.mtimeMs && JSON.stringify(a.parts) === JSON.stringify(b.parts);
}
