/**
 * `GET`/`HEAD /v2/_isoload/binary/blobs/sha256:<hex>`: the isoload binary
 * this registry hands to nodes that lack it (the installed OS's boot script
 * asks its peers for it by the digest in its MachineConfig). The file is
 * hashed on the first request and again whenever it changes; any other digest
 * is BLOB_UNKNOWN, so a peer running another isoload is skipped. `_isoload`
 * can never be an image's repository (those start with a registry host).
 */
import { isDigest, newHasher } from "../image/digest.ts";
import { API_HEADER, decodeSegment, RegistryError } from "./http.ts";

/** The URL path of the binary with sha256 `hex` (what a node's boot script asks its peers for). */
export function binaryBlobPath(hex: string): string {
  return `/v2/_isoload/binary/blobs/sha256:${hex}`;
}

/** The route, on the raw request path. */
export const BINARY_ROUTE = /^\/v2\/_isoload\/binary\/blobs\/([^/]+)$/;

interface Hashed {
  digest: string;
  size: number;
  mtime: number;
}

/** The handler for the binary at `path`: given the raw digest segment of the route and whether it is a HEAD. */
export function binaryHandler(path: string): (rawDigest: string, head: boolean) => Promise<Response> {
  let known: Hashed | undefined;
  let hashing: Promise<Hashed> | undefined;
  const current = async (): Promise<Hashed | undefined> => {
    const st = await Deno.stat(path).catch(() => undefined);
    if (!st?.isFile) return undefined;
    const mtime = st.mtime?.getTime() ?? 0;
    if (known && known.size === st.size && known.mtime === mtime) return known;
    // Concurrent first requests share one hashing pass of the ~100 MB file.
    hashing ??= (async () => {
      const h = newHasher();
      const f = await Deno.open(path);
      for await (const c of f.readable) h.update(c);
      known = { digest: h.digest(), size: st.size, mtime };
      return known;
    })().finally(() => (hashing = undefined));
    return await hashing;
  };
  return async (rawDigest, head) => {
    const digest = decodeSegment(rawDigest, "DIGEST_INVALID");
    if (!isDigest(digest)) throw new RegistryError(400, "DIGEST_INVALID", `invalid digest ${JSON.stringify(digest)}`);
    const have = await current();
    if (!have || have.digest !== digest) {
      throw new RegistryError(404, "BLOB_UNKNOWN", `this registry's isoload binary is not ${digest}`, { detail: { digest } });
    }
    const headers = {
      ...API_HEADER,
      "Content-Type": "application/octet-stream",
      "Docker-Content-Digest": digest,
      "Content-Length": String(have.size),
    };
    if (head) return new Response(null, { headers });
    return new Response((await Deno.open(path)).readable, { headers });
  };
}
