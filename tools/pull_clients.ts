/**
 * Clients that pull every image of a registry as nodes do, for the tests and
 * benchmarks of serving: each client fetches every image's manifest (an
 * index's children too), then every distinct config and layer once, in its
 * own order (client i starts i/N of the way down the list, so the clients ask
 * for different blobs at the same moment), checking each blob's size and,
 * with `verify`, its sha256. Any status but 200, or a wrong byte, fails.
 */
import { createHash } from "node:crypto";

/** An image to pull: its repository on the registry and its manifest digest. */
export interface PullImage {
  repository: string;
  digest: string;
}

/** What the clients received between them. */
export interface PullResult {
  /** Blob bytes received (manifests not counted). */
  bytes: number;
  /** Blob responses received whole. */
  blobs: number;
}

const ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

interface Blob {
  url: string;
  digest: string;
  size: number;
}

async function get(url: string, client: Deno.HttpClient, accept?: string): Promise<Response> {
  const r = await fetch(url, { client, headers: accept ? { Accept: accept } : {} });
  if (r.status !== 200) {
    await r.body?.cancel();
    throw new Error(`GET ${url}: ${r.status}`);
  }
  return r;
}

/** Every distinct config and layer of `images` at `base` (http://HOST:PORT), through `client`. */
async function blobsOf(base: string, images: readonly PullImage[], client: Deno.HttpClient): Promise<Blob[]> {
  const seen = new Map<string, Blob>();
  const visit = async (repo: string, digest: string) => {
    const m = await (await get(`${base}/v2/${repo}/manifests/${digest}`, client, ACCEPT)).json();
    if (Array.isArray(m.manifests)) {
      for (const c of m.manifests) await visit(repo, c.digest);
      return;
    }
    for (const d of [m.config, ...(m.layers ?? [])]) {
      if (d && !seen.has(d.digest)) seen.set(d.digest, { url: `${base}/v2/${repo}/blobs/${d.digest}`, digest: d.digest, size: d.size });
    }
  };
  for (const img of images) await visit(img.repository, img.digest);
  return [...seen.values()];
}

/** `clients` clients each pull every image of `images` from `base`; resolves once all are done. */
export async function pullEveryImage(
  base: string,
  images: readonly PullImage[],
  clients: number,
  opts: { verify?: boolean } = {},
): Promise<PullResult> {
  const total: PullResult = { bytes: 0, blobs: 0 };
  await Promise.all(Array.from({ length: clients }, async (_, i) => {
    const client = Deno.createHttpClient({});
    try {
      const blobs = await blobsOf(base, images, client);
      const start = Math.floor((i * blobs.length) / clients);
      for (const b of [...blobs.slice(start), ...blobs.slice(0, start)]) {
        const hash = opts.verify ? createHash("sha256") : undefined;
        let got = 0;
        for await (const c of (await get(b.url, client)).body!) {
          got += c.length;
          hash?.update(c);
        }
        if (got !== b.size) throw new Error(`GET ${b.url}: ${got} bytes, expected ${b.size}`);
        const hex = hash?.digest("hex");
        if (hex !== undefined && `sha256:${hex}` !== b.digest) throw new Error(`GET ${b.url}: the bytes hash to sha256:${hex}`);
        total.bytes += got;
        total.blobs++;
      }
    } finally {
      client.close();
    }
  }));
  return total;
}
