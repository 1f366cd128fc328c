/**
 * The images a node expects host0's registry to serve, and the CA it serves
 * them with: read from host0's data directory, or from the list exported
 * from it (`isoload inspect --json DIR`, or `DIR/isoload/images.json`), so
 * nodes never need the archive.
 */
import { dirname, join } from "node:path";
import { isDigest } from "../image/digest.ts";
import { InputError } from "../util/errors.ts";
import type { LoadedImage } from "../image/loaded_image.ts";
import { requireRecords } from "../store/records.ts";
import { isRepositoryPath, mirrorRepositoryFor } from "../image/reference.ts";
import { checkCaPem, readCa } from "../server/tls.ts";

/** What a node is told to expect. */
export interface Expected {
  images: LoadedImage[];
  /** PEM of the registry's CA when it serves TLS. */
  ca?: string;
  /** Where it came from, for messages. */
  from: string;
}

/** From host0's data directory: its records, and its CA when TLS was set up. */
export async function expectedFromDataDir(dataDir: string, action: string): Promise<Expected> {
  const records = await requireRecords(dataDir, action);
  return { images: records.images, ca: await readCa(dataDir), from: dataDir };
}

function checkImage(v: unknown, i: number, path: string): LoadedImage {
  const img = v as Partial<LoadedImage>;
  const bad = (why: string) => new InputError(`Cannot read ${path}: image ${i + 1} ${why}`);
  if (!img || typeof img !== "object") throw bad("is not an object");
  if (typeof img.source !== "string" || !img.source.includes("/") || !isRepositoryPath(img.source.slice(img.source.indexOf("/") + 1))) {
    throw bad(`has no valid "source" repository`);
  }
  if (typeof img.digest !== "string" || !isDigest(img.digest)) throw bad(`has no valid "digest"`);
  const children = Array.isArray(img.children) ? img.children : [];
  if (children.some((c) => typeof c !== "string" || !isDigest(c))) throw bad(`has a bad "children" digest`);
  return {
    source: img.source,
    repository: typeof img.repository === "string" ? img.repository : mirrorRepositoryFor(img.source),
    digest: img.digest,
    mediaType: typeof img.mediaType === "string" ? img.mediaType : "",
    tags: Array.isArray(img.tags) ? img.tags.filter((t): t is string => typeof t === "string") : [],
    ...(children.length ? { children } : {}),
  };
}

/**
 * From an exported list: any JSON document with `images` (each with `source`
 * and `digest`) and optionally `ca` (PEM). Records taken straight from
 * `DIR/isoload/images.json` find the CA beside them in `DIR/isoload/tls/`.
 */
export async function expectedFromFile(path: string): Promise<Expected> {
  let doc: { images?: unknown; ca?: unknown };
  try {
    doc = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new InputError(`Cannot read ${path}: no such file`);
    throw new InputError(`Cannot read ${path}: not a JSON image list`, { cause: e });
  }
  if (!doc || !Array.isArray(doc.images) || doc.images.length === 0) {
    throw new InputError(`Cannot read ${path}: it lists no images (expected the output of isoload inspect --json DIR)`);
  }
  const images = doc.images.map((v, i) => checkImage(v, i, path));
  let ca = typeof doc.ca === "string" ? await checkCaPem(doc.ca, path) : undefined;
  if (!ca) {
    const beside = join(dirname(path), "tls", "ca.crt");
    ca = await Deno.readTextFile(beside).then((t) => checkCaPem(t, beside), () => undefined);
  }
  return { images, ca, from: path };
}

/** Where a node's image list comes from: host0's data directory or an exported file. */
export type ExpectFrom = { dataDir: string } | { file: string };

/** Reads the image list from where the command line said. */
export async function readExpected(from: ExpectFrom, action: string): Promise<Expected> {
  return "dataDir" in from ? await expectedFromDataDir(from.dataDir, action) : await expectedFromFile(from.file);
}
