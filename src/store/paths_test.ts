import assert from "node:assert/strict";
import { blobFile, dataDirPaths, storageTreeParts } from "./paths.ts";

Deno.test("dataDirPaths() names every file isoload keeps under DIR, as the README lays them out", () => {
  assert.deepEqual(dataDirPaths("/d"), {
    root: "/d",
    v2: "/d/docker/registry/v2",
    scratch: "/d/scratch",
    scratchExports: "/d/scratch/dir",
    state: "/d/isoload",
    records: "/d/isoload/images.json",
    storageRecords: "/d/isoload/storage.json",
    verifyReport: "/d/isoload/verify.json",
    serving: "/d/isoload/serving.json",
    served: "/d/isoload/served.json",
    lock: "/d/isoload/lock",
    tmp: "/d/isoload/tmp",
    registryConfig: "/d/isoload/registry/config.yml",
    dirPolicy: "/d/isoload/dir-policy.json",
    tls: "/d/isoload/tls",
  });
});

Deno.test("blobFile() and storageTreeParts() follow distribution's storage layout", () => {
  const hex = "ab" + "0".repeat(62);
  assert.equal(blobFile("/d", `sha256:${hex}`), `/d/docker/registry/v2/blobs/sha256/ab/${hex}/data`);
  assert.deepEqual(storageTreeParts("/d/scratch"), {
    blobs: "/d/scratch/docker/registry/v2/blobs",
    repositories: "/d/scratch/docker/registry/v2/repositories",
  });
});
