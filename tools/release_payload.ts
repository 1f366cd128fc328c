/**
 * A release-like benchmark payload: by default 190 images sharing a few base
 * layers, each with 2–4 layers of its own, layer sizes log-uniform (many
 * small layers, a few huge ones) and scaled so the archive comes to a given
 * total size — one generator for the 1 GB, 4 GB and 8 GB variants. Everything
 * is deterministic from a seed. Written as an OCI layout tar, an oc-mirror v2
 * archive (optionally split into parts like `archiveSize` does), or an OCI
 * layout directory. Not part of the shipped binary.
 *
 * Layer bytes are windows of one pseudo-random pool, so generating is as fast
 * as writing and hashing: the bytes are not meant to resist compression or
 * deduplication, only to be distinct blobs (each layer's tar header names it).
 *
 * Usage:
 *   deno run -A tools/release_payload.ts --size 8G (--out payload.tar | --dir DIR)
 *     [--images 190] [--seed 1] [--format oci|oc-mirror] [--archive-size 4G] [--list refs.json]
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { type Fixture, tarHeader } from "./payload.ts";
import { mirrorRepositoryFor } from "../src/image/reference.ts";

/** What to generate. */
export interface ReleaseOptions {
  /** Approximate size of the archive in bytes (layer bytes are scaled to it). */
  totalBytes: number;
  /** Number of images (190 by default, like an OpenShift release payload). */
  images?: number;
  /** PRNG seed; the same seed and options give the same bytes. */
  seed?: number;
}

/** One layer of the plan: its index (which names it) and content length. */
export interface PlannedLayer {
  id: number;
  bytes: number;
}

/** The pure plan: which layers exist and which images use them. */
export interface ReleasePlan {
  seed: number;
  /** Every distinct layer; shared base layers first. */
  layers: PlannedLayer[];
  /** Per image, the indexes into `layers` of its layers, bottom first. */
  images: number[][];
}

/** Where one image of the payload is, as a pullable reference. */
export interface ReleaseImage {
  /** Full reference as the archive names it (tag or digest). */
  name: string;
  /** Source repository. */
  source: string;
  /** Manifest digest. */
  digest: string;
  /** The repository a registry serving the loaded payload (or the archive in place) has it in. */
  repository: string;
}

/** What was written. */
export interface ReleasePayload {
  images: ReleaseImage[];
  /** Number of distinct blobs (layers, configs, manifests). */
  blobs: number;
  /** Bytes of all blobs. */
  blobBytes: number;
  /** The archive file(s) or the directory written. */
  paths: string[];
}

const RELEASE_TAG = "4.19.0-x86_64";
const ART_DEV = "quay.io/openshift-release-dev/ocp-v4.0-art-dev";
const RELEASE = "quay.io/openshift-release-dev/ocp-release";
/** Base layer chains (an OS base and a shared tooling layer each), like the RHEL 8/9 bases of a release. */
const BASE_CHAINS = 3;
const MIN_LAYER = 4 * 1024;
const LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar";
const CONFIG_TYPE = "application/vnd.oci.image.config.v1+json";
const MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";

/** mulberry32: a tiny, fast, seedable 32-bit PRNG returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes a layer of `content` bytes takes as a one-file tar. */
export function layerTarBytes(content: number): number {
  return 512 + Math.ceil(content / 512) * 512 + 1024;
}

/**
 * Plans the payload: base layers drawn from the top of the size range, own
 * layers (2–4 per image, 2.6 on average) log-uniform in [4 KiB, max], with max
 * solved so the layers add up to `totalBytes`.
 */
export function planRelease(o: ReleaseOptions): ReleasePlan {
  const seed = o.seed ?? 1;
  const count = o.images ?? 190;
  const rand = prng(seed);
  // u in [0, 1] per layer; the size is MIN · (max/MIN)^u once max is known.
  const us: number[] = [];
  for (let i = 0; i < BASE_CHAINS * 2; i++) us.push(0.75 + 0.25 * rand());
  const images: number[][] = [];
  for (let i = 0; i < count; i++) {
    const chain = Math.floor(rand() * BASE_CHAINS);
    const r = rand();
    const own = r < 0.5 ? 2 : r < 0.9 ? 3 : 4;
    const layers = [chain * 2, chain * 2 + 1];
    for (let j = 0; j < own; j++) {
      layers.push(us.length);
      us.push(rand());
    }
    images.push(layers);
  }
  // Manifests and configs are ~1 KB each; the rest of the budget is layers.
  const budget = Math.max(us.length * layerTarBytes(MIN_LAYER), o.totalBytes - count * 2048);
  const total = (max: number) => us.reduce((s, u) => s + layerTarBytes(Math.round(MIN_LAYER * (max / MIN_LAYER) ** u)), 0);
  let lo = MIN_LAYER, hi = Math.max(MIN_LAYER * 2, budget);
  for (let i = 0; i < 100 && hi - lo > 1; i++) {
    const mid = (lo + hi) / 2;
    if (total(mid) > budget) hi = mid;
    else lo = mid;
  }
  const layers = us.map((u, id) => ({ id, bytes: Math.round(MIN_LAYER * (lo / MIN_LAYER) ** u) }));
  return { seed, layers, images };
}

/** A source of layer bytes: windows of one pseudo-random pool at seeded offsets. */
class Bytes {
  static readonly CHUNK = 1 << 20;
  readonly #pool: Uint8Array;
  constructor(seed: number) {
    const words = new Uint32Array((32 << 20) / 4 + Bytes.CHUNK / 4);
    // xorshift32 fills the pool once (~40 ms); every layer reuses it.
    let x = (seed * 2654435761) >>> 0 || 1;
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x >>> 0;
    }
    this.#pool = new Uint8Array(words.buffer);
  }
  /** Calls `put` with the layer's content, in chunks (views of the pool: do not keep them). */
  async layer(seed: number, bytes: number, put: (b: Uint8Array) => Promise<void>): Promise<void> {
    const rand = prng(seed);
    for (let left = bytes; left > 0;) {
      const n = Math.min(left, Bytes.CHUNK);
      const at = Math.floor(rand() * (32 << 20));
      await put(this.#pool.subarray(at, at + n));
      left -= n;
    }
  }
}

const enc = new TextEncoder();

/** Where blobs and metadata files go. */
interface Sink {
  /** Writes a blob of `size` bytes produced by `fill`; returns its hex digest. */
  blob(size: number, fill: (put: (b: Uint8Array) => Promise<void>) => Promise<void>): Promise<string>;
  /** Writes a small file at a path relative to the layout/archive root. */
  file(path: string, bytes: Uint8Array): Promise<void>;
  close(): Promise<string[]>;
}

async function writeAll(f: Deno.FsFile, b: Uint8Array): Promise<void> {
  for (let o = 0; o < b.length;) o += await f.write(b.subarray(o));
}

/** Tar archive(s): each blob's header is written after its bytes (the name is the digest), by seeking back. */
class TarSink implements Sink {
  #f!: Deno.FsFile;
  #pos = 0;
  #part = 0;
  readonly #paths: string[] = [];
  constructor(readonly out: string, readonly blobPath: (hex: string) => string, readonly partBytes = Infinity) {}
  async #ensure(size: number): Promise<void> {
    if (this.#f && this.#pos + size <= this.partBytes) return;
    if (this.#f && this.#pos === 0) return;
    if (this.#f) await this.#finish();
    this.#part++;
    const path = this.partBytes === Infinity ? this.out : this.out.replace(/(\.tar)?$/, `_${String(this.#part).padStart(6, "0")}.tar`);
    this.#paths.push(path);
    this.#f = await Deno.open(path, { write: true, create: true, truncate: true });
    this.#pos = 0;
  }
  async #finish(): Promise<void> {
    await writeAll(this.#f, new Uint8Array(1024));
    this.#f.close();
  }
  async blob(size: number, fill: (put: (b: Uint8Array) => Promise<void>) => Promise<void>): Promise<string> {
    await this.#ensure(512 + size);
    const start = this.#pos;
    await this.#f.seek(512, Deno.SeekMode.Current);
    const hash = createHash("sha256");
    let n = 0;
    await fill(async (b) => {
      hash.update(b);
      n += b.length;
      await writeAll(this.#f, b);
    });
    if (n !== size) throw new Error(`Cannot write blob: produced ${n} bytes, planned ${size}`);
    const pad = (512 - (size % 512)) % 512;
    if (pad) await writeAll(this.#f, new Uint8Array(pad));
    const hex = hash.digest("hex");
    await this.#f.seek(start, Deno.SeekMode.Start);
    await writeAll(this.#f, tarHeader(this.blobPath(hex), size));
    this.#pos = start + 512 + size + pad;
    await this.#f.seek(this.#pos, Deno.SeekMode.Start);
    return hex;
  }
  async file(path: string, bytes: Uint8Array): Promise<void> {
    await this.#ensure(512 + bytes.length);
    const pad = (512 - (bytes.length % 512)) % 512;
    await writeAll(this.#f, tarHeader(path, bytes.length));
    await writeAll(this.#f, bytes);
    if (pad) await writeAll(this.#f, new Uint8Array(pad));
    this.#pos += 512 + bytes.length + pad;
  }
  async close(): Promise<string[]> {
    await this.#finish();
    return this.#paths;
  }
}

/** An OCI layout directory. */
class DirSink implements Sink {
  constructor(readonly dir: string) {}
  async blob(size: number, fill: (put: (b: Uint8Array) => Promise<void>) => Promise<void>): Promise<string> {
    const blobs = join(this.dir, "blobs", "sha256");
    await Deno.mkdir(blobs, { recursive: true });
    const tmp = join(blobs, `.tmp-${crypto.randomUUID()}`);
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    const hash = createHash("sha256");
    let n = 0;
    try {
      await fill(async (b) => {
        hash.update(b);
        n += b.length;
        await writeAll(f, b);
      });
    } finally {
      f.close();
    }
    if (n !== size) throw new Error(`Cannot write blob: produced ${n} bytes, planned ${size}`);
    const hex = hash.digest("hex");
    await Deno.rename(tmp, join(blobs, hex));
    return hex;
  }
  async file(path: string, bytes: Uint8Array): Promise<void> {
    await Deno.mkdir(join(this.dir, path, ".."), { recursive: true });
    await Deno.writeFile(join(this.dir, path), bytes);
  }
  close(): Promise<string[]> {
    return Promise.resolve([this.dir]);
  }
}

/** Where the payload goes and in which format. */
export interface ReleaseTarget {
  /** An archive file (`oci` or `oc-mirror`), or a directory (`oci` only). */
  out?: string;
  dir?: string;
  format?: "oci" | "oc-mirror";
  /** Split an oc-mirror archive into parts of about this many bytes (`OUT_000001.tar` …), like oc-mirror's archiveSize. */
  archiveBytes?: number;
}

/** The mirror repository an oc-mirror v2 archive uses for a release source. */
function ocMirrorRepo(source: string): string {
  return source === RELEASE ? "openshift/release-images" : "openshift/release";
}

/** Generates the payload from a plan. */
export async function writeRelease(plan: ReleasePlan, target: ReleaseTarget): Promise<ReleasePayload> {
  const format = target.format ?? "oci";
  let sink: Sink;
  if (target.dir) {
    if (format !== "oci") throw new TypeError("Cannot write an oc-mirror archive as a directory");
    sink = new DirSink(target.dir);
  } else if (target.out) {
    const blobPath = format === "oci"
      ? (hex: string) => `blobs/sha256/${hex}`
      : (hex: string) => `docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
    sink = new TarSink(target.out, blobPath, format === "oc-mirror" ? target.archiveBytes ?? Infinity : Infinity);
  } else throw new TypeError("Cannot write the payload: give out or dir");
  if (format === "oci") await sink.file("oci-layout", enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" })));

  const bytes = new Bytes(plan.seed);
  let blobs = 0, blobBytes = 0;
  const putBlob = async (data: Uint8Array, mediaType: string) => {
    const hex = await sink.blob(data.length, (put) => put(data));
    blobs++;
    blobBytes += data.length;
    return { mediaType, digest: `sha256:${hex}`, size: data.length };
  };
  const layerDescs: { mediaType: string; digest: string; size: number }[] = [];
  for (const l of plan.layers) {
    const size = layerTarBytes(l.bytes);
    const hex = await sink.blob(size, async (put) => {
      const pad = (512 - (l.bytes % 512)) % 512;
      await put(tarHeader(`layer-${plan.seed}-${l.id}.bin`, l.bytes));
      await bytes.layer(plan.seed * 1_000_003 + l.id, l.bytes, put);
      await put(new Uint8Array(pad + 1024));
    });
    blobs++;
    blobBytes += size;
    layerDescs.push({ mediaType: LAYER_TYPE, digest: `sha256:${hex}`, size });
  }
  const images: ReleaseImage[] = [];
  const manifestSizes = new Map<string, number>();
  const links: string[] = [];
  for (const [i, ids] of plan.images.entries()) {
    const layers = ids.map((id) => layerDescs[id]);
    const config = await putBlob(
      enc.encode(JSON.stringify({
        architecture: "amd64",
        os: "linux",
        created: "2026-11-28T00:00:00Z",
        config: { Labels: { "io.openshift.build.name": `component-${i}` }, Env: ["PATH=/usr/bin"] },
        // Uncompressed layers: the diff ID is the blob digest.
        rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
      })),
      CONFIG_TYPE,
    );
    const manifest = await putBlob(
      enc.encode(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config, layers })),
      MANIFEST_TYPE,
    );
    // The first image is the release image (tagged); the rest are its components, by digest.
    const source = i === 0 ? RELEASE : ART_DEV;
    const name = i === 0 ? `${RELEASE}:${RELEASE_TAG}` : `${ART_DEV}@${manifest.digest}`;
    const repository = format === "oc-mirror" ? ocMirrorRepo(source) : mirrorRepositoryFor(source);
    images.push({ name, source, digest: manifest.digest, repository });
    manifestSizes.set(manifest.digest, manifest.size);
    if (format === "oc-mirror") {
      const repo = `docker/registry/v2/repositories/${ocMirrorRepo(source)}`;
      const hexOf = (d: string) => d.slice(7);
      for (const d of [config.digest, ...layers.map((l) => l.digest)]) links.push(`${repo}/_layers/sha256/${hexOf(d)}/link\n${d}`);
      links.push(`${repo}/_manifests/revisions/sha256/${hexOf(manifest.digest)}/link\n${manifest.digest}`);
      if (i === 0) {
        links.push(`${repo}/_manifests/tags/${RELEASE_TAG}/current/link\n${manifest.digest}`);
        links.push(`${repo}/_manifests/tags/${RELEASE_TAG}/index/sha256/${hexOf(manifest.digest)}/link\n${manifest.digest}`);
      }
    }
  }
  if (format === "oci") {
    const manifests = images.map((img) => ({
      mediaType: MANIFEST_TYPE,
      digest: img.digest,
      size: manifestSizes.get(img.digest),
      annotations: { "org.opencontainers.image.ref.name": img.name },
    }));
    await sink.file("index.json", enc.encode(JSON.stringify({ schemaVersion: 2, manifests })));
  } else {
    // Links with no trailing newline, as distribution writes them; shared layers are linked once per repository.
    for (const l of new Set(links)) {
      const [path, digest] = l.split("\n");
      await sink.file(path, enc.encode(digest));
    }
    await sink.file("working-dir/cluster-resources/idms-oc-mirror.yaml", enc.encode(idms()));
    await sink.file("isc_20261128T000000Z", enc.encode("kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\n"));
  }
  return { images, blobs, blobBytes, paths: await sink.close() };
}

function idms(): string {
  return [
    "apiVersion: config.openshift.io/v1",
    "kind: ImageDigestMirrorSet",
    "metadata:",
    "  name: idms-release-0",
    "spec:",
    "  imageDigestMirrors:",
    "  - mirrors:",
    "    - localhost:55000/openshift/release",
    `    source: ${ART_DEV}`,
    "  - mirrors:",
    "    - localhost:55000/openshift/release-images",
    `    source: ${RELEASE}`,
    "",
  ].join("\n");
}

/**
 * The payload's images as a {@link Fixture} (for code that takes the small
 * fixtures' shape, like tests' pullAll). `source` is rewritten so that
 * `mirrorRepositoryFor(source)` is the served repository, as such code expects.
 */
export function asFixture(dir: string, p: ReleasePayload): Fixture {
  return { dir, images: p.images.map((i) => ({ name: i.name, digest: i.digest, source: servedAs(i.repository) })) };
}

/** A source whose mirror repository is `repository` (the first path element stands for the domain). */
function servedAs(repository: string): string {
  return mirrorRepositoryFor(repository) === repository ? repository : `${repository.split("/")[0]}/${repository}`;
}

/** "8G", "1.5G", "512M", "1000000" → bytes (powers of 1000, like the "8 GB"). */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)B?$/.exec(s.trim());
  if (!m) throw new TypeError(`Cannot read size ${JSON.stringify(s)}: expected e.g. 8G, 512M`);
  const unit = { "": 1, k: 1e3, m: 1e6, g: 1e9 }[m[2].toLowerCase() as "" | "k" | "m" | "g"];
  return Math.round(Number(m[1]) * unit);
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      size: { type: "string", default: "1G" },
      images: { type: "string", default: "190" },
      seed: { type: "string", default: "1" },
      format: { type: "string", default: "oci" },
      "archive-size": { type: "string" },
      out: { type: "string" },
      dir: { type: "string" },
      list: { type: "string" },
    },
  });
  const plan = planRelease({ totalBytes: parseSize(values.size), images: Number(values.images), seed: Number(values.seed) });
  const t0 = performance.now();
  const p = await writeRelease(plan, {
    out: values.out,
    dir: values.dir,
    format: values.format as "oci" | "oc-mirror",
    archiveBytes: values["archive-size"] ? parseSize(values["archive-size"]) : undefined,
  });
  if (values.list) await Deno.writeTextFile(values.list, JSON.stringify(p.images, null, 1) + "\n");
  console.log(
    `release payload: ${p.images.length} images, ${p.blobs} blobs, ${(p.blobBytes / 1e9).toFixed(2)} GB in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s → ${p.paths.join(", ")}`,
  );
}
