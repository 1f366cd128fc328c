import assert from "node:assert/strict";
import { join } from "node:path";
import { digestOf } from "../image/digest.ts";
import { BINARY_ROUTE, binaryHandler } from "./binary.ts";
import { errorResponse, type RegistryError } from "./http.ts";

async function answer(handle: ReturnType<typeof binaryHandler>, digest: string, head = false): Promise<Response> {
  try {
    return await handle(digest, head);
  } catch (e) {
    return errorResponse(e as RegistryError, head);
  }
}

Deno.test("binaryHandler() serves the file at its own digest only, and follows a change of the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isoload-binary-" });
  try {
    const path = join(dir, "isoload");
    const bytes = new TextEncoder().encode("#!/bin/sh\necho isoload\n");
    await Deno.writeFile(path, bytes);
    const handle = binaryHandler(path);
    const ok = await answer(handle, digestOf(bytes));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("Docker-Content-Digest"), digestOf(bytes));
    assert.equal(ok.headers.get("Content-Length"), String(bytes.length));
    assert.deepEqual(new Uint8Array(await ok.arrayBuffer()), bytes);
    const head = await answer(handle, digestOf(bytes), true);
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");

    const other = await answer(handle, digestOf("another isoload"));
    assert.equal(other.status, 404);
    assert.equal((await other.json()).errors[0].code, "BLOB_UNKNOWN");
    const bad = await answer(handle, "sha256:xyz");
    assert.equal(bad.status, 400);
    await bad.body?.cancel();

    // A new build in place: the old digest is gone, the new one is served.
    const next = new TextEncoder().encode("#!/bin/sh\necho isoload 2 (a longer file)\n");
    await Deno.writeFile(path, next);
    const gone = await answer(handle, digestOf(bytes));
    assert.equal(gone.status, 404);
    await gone.body?.cancel();
    const now = await answer(handle, digestOf(next));
    assert.equal(now.status, 200);
    assert.deepEqual(new Uint8Array(await now.arrayBuffer()), next);

    await Deno.remove(path);
    const missing = await answer(handle, digestOf(next));
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("BINARY_ROUTE matches only the binary's blob path, never an image repository's", () => {
  const hex = "a".repeat(64);
  assert.equal(BINARY_ROUTE.exec(`/v2/_isoload/binary/blobs/sha256:${hex}`)?.[1], `sha256:${hex}`);
  assert.equal(BINARY_ROUTE.exec(`/v2/quay.io/_isoload/binary/blobs/sha256:${hex}`), null);
  assert.equal(BINARY_ROUTE.exec(`/v2/_isoload/binary/manifests/latest`), null);
});
