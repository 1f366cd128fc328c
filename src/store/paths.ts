/**
 * Every file isoload keeps under a data directory, named in one place (as
 * distribution's registry/storage/paths.go names every storage path): callers
 * ask this mapper for a kind of object and never join DIR with names of their
 * own, so the layout below is the whole truth of what DIR holds.
 *
 *   DIR/
 *     docker/registry/v2/           the distribution storage tree (storage_tree.ts, layout_plan.ts)
 *       blobs/sha256/<ab>/<hex>/data
 *       repositories/<repo>/_manifests|_layers/…/link
 *     scratch/                      storage mode's scratch, removed unless --keep
 *       docker/registry/v2/         its storage tree
 *       dir/<n>/                    the dir: layouts skopeo copies from
 *     isoload/                      isoload's own state
 *       images.json                 registry-mode records (records.ts)
 *       storage.json                storage-mode records (storage_records.ts)
 *       verify.json                 the last full verify (commands/verify.ts)
 *       serving.json                what a running serve serves; on exit it becomes served.json (server/serving_state.ts)
 *       served.json                 what the last serve served, once it stopped
 *       lock                        one writer at a time (lock.ts)
 *       tmp/                        blobs being written, renamed into the tree once verified
 *       registry/config.yml         the external docker-registry's configuration
 *       dir-policy.json             the signature policy skopeo copies from dir: layouts with
 *       tls/                        ca.crt, ca.key, server.crt, server.key (server/tls.ts)
 */
import { join } from "node:path";
import { blobDataPath } from "./layout_plan.ts";

/** The paths of one data directory. Pure: nothing is read or created. */
export interface DataDirPaths {
  /** DIR itself. */
  root: string;
  /** `DIR/docker/registry/v2`: the storage tree a distribution registry serves. */
  v2: string;
  /** `DIR/scratch`: storage mode's scratch storage tree (its own `docker/registry/v2`). */
  scratch: string;
  /** `DIR/scratch/dir`: the `dir:` layouts storage mode exports for skopeo. */
  scratchExports: string;
  /** `DIR/isoload`: isoload's own state. */
  state: string;
  /** Registry-mode records. */
  records: string;
  /** Storage-mode records. */
  storageRecords: string;
  /** The last full verify's report. */
  verifyReport: string;
  /** What a running `serve` serves; present only while it runs (or left by one that was killed). */
  serving: string;
  /** What the last `serve` served, once it stopped. */
  served: string;
  /** The lock file one writer holds. */
  lock: string;
  /** Temp files, on DIR's filesystem so a rename lands them. */
  tmp: string;
  /** The external registry's configuration file. */
  registryConfig: string;
  /** The signature policy for copies from `dir:` layouts. */
  dirPolicy: string;
  /** The directory of the registry's TLS material. */
  tls: string;
}

/** The storage tree's root under a tree directory (DIR, or DIR's scratch). */
export function storageTreeV2(treeRoot: string): string {
  return join(treeRoot, "docker", "registry", "v2");
}

/** The blob store and the repositories of the storage tree under `treeRoot`. */
export function storageTreeParts(treeRoot: string): { blobs: string; repositories: string } {
  const v2 = storageTreeV2(treeRoot);
  return { blobs: join(v2, "blobs"), repositories: join(v2, "repositories") };
}

/** The data file of a blob in the storage tree under `treeRoot`. */
export function blobFile(treeRoot: string, digest: string): string {
  return join(storageTreeV2(treeRoot), blobDataPath(digest));
}

/** Maps a data directory to every path isoload keeps in it. */
export function dataDirPaths(dataDir: string): DataDirPaths {
  const state = join(dataDir, "isoload");
  return {
    root: dataDir,
    v2: storageTreeV2(dataDir),
    scratch: join(dataDir, "scratch"),
    scratchExports: join(dataDir, "scratch", "dir"),
    state,
    records: join(state, "images.json"),
    storageRecords: join(state, "storage.json"),
    verifyReport: join(state, "verify.json"),
    serving: join(state, "serving.json"),
    served: join(state, "served.json"),
    lock: join(state, "lock"),
    tmp: join(state, "tmp"),
    registryConfig: join(state, "registry", "config.yml"),
    dirPolicy: join(state, "dir-policy.json"),
    tls: join(state, "tls"),
  };
}
