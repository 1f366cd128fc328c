/**
 * Builds test and sample payloads: OCI image layouts of small runnable images
 * (busybox-static) or large random ones, written directly per the OCI image
 * spec. Layer tars come from GNU tar. Not part of the shipped binary. Over
 * 300 lines because it holds every kind of payload (images, indexes, OCI 1.1
 * artifacts, the sample, large benchmark layouts) on one small blob writer.
 */
import { join } from "node:path";
import { createHash } from "node:crypto";

/** A written blob's descriptor. */
export interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string };
  annotations?: Record<string, string>;
}

/** Writes bytes as a blob of the layout at `dir`. */
export async function writeBlob(dir: string, bytes: Uint8Array, mediaType: string): Promise<Desc> {
  const hex = createHash("sha256").update(bytes).digest("hex");
  await Deno.mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  await Deno.writeFile(join(dir, "blobs", "sha256", hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

async function run(cmd: string, args: string[]): Promise<Uint8Array> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}

/** A reproducible tar of a directory tree. */
export async function tarOf(rootfs: string): Promise<Uint8Array> {
  return await run("tar", ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-C", rootfs, "-cf", "-", "."]);
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A rootfs with busybox-static as /bin/busybox and /bin/sh, plus extra files. */
export async function busyboxRootfs(dir: string, extra: Record<string, string> = {}): Promise<string> {
  const root = join(dir, `rootfs-${crypto.randomUUID()}`);
  await Deno.mkdir(join(root, "bin"), { recursive: true });
  await Deno.copyFile("/bin/busybox", join(root, "bin", "busybox"));
  await Deno.symlink("busybox", join(root, "bin", "sh"));
  for (const [p, text] of Object.entries(extra)) {
    await Deno.mkdir(join(root, p, ".."), { recursive: true });
    await Deno.writeTextFile(join(root, p), text);
  }
  return root;
}

/** Options of one image. */
export interface ImageOptions {
  layers: Uint8Array[];
  cmd?: string[];
  entrypoint?: string[];
  env?: string[];
  arch?: string;
  gzipLayers?: boolean;
  /** Docker v2s2 media types instead of OCI. */
  docker?: boolean;
}

/** Writes an image's layers, config and manifest; returns the manifest descriptor. */
export async function writeImage(dir: string, o: ImageOptions): Promise<Desc> {
  const layerType = o.docker
    ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
    : o.gzipLayers
    ? "application/vnd.oci.image.layer.v1.tar+gzip"
    : "application/vnd.oci.image.layer.v1.tar";
  const layers: Desc[] = [];
  const diffIds: string[] = [];
  for (const l of o.layers) {
    diffIds.push(`sha256:${createHash("sha256").update(l).digest("hex")}`);
    const bytes = o.gzipLayers || o.docker ? await gzip(l) : l;
    layers.push(await writeBlob(dir, bytes, layerType));
  }
  const arch = o.arch ?? "amd64";
  const config = {
    architecture: arch,
    os: "linux",
    config: { Cmd: o.cmd, Entrypoint: o.entrypoint, Env: o.env ?? ["PATH=/bin:/usr/bin"] },
    rootfs: { type: "layers", diff_ids: diffIds },
  };
  const configDesc = await writeBlob(
    dir,
    new TextEncoder().encode(JSON.stringify(config)),
    o.docker ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json",
  );
  const mediaType = o.docker ? "application/vnd.docker.distribution.manifest.v2+json" : "application/vnd.oci.image.manifest.v1+json";
  const manifest = { schemaVersion: 2, mediaType, config: configDesc, layers };
  const desc = await writeBlob(dir, new TextEncoder().encode(JSON.stringify(manifest)), mediaType);
  return { ...desc, platform: { os: "linux", architecture: arch } };
}

/** Writes an OCI index over child manifests. */
export async function writeIndex(dir: string, children: Desc[]): Promise<Desc> {
  const mediaType = "application/vnd.oci.image.index.v1+json";
  const index = { schemaVersion: 2, mediaType, manifests: children };
  return await writeBlob(dir, new TextEncoder().encode(JSON.stringify(index)), mediaType);
}

/** The OCI empty descriptor's content, the config of an artifact that has none. */
const EMPTY_JSON = new TextEncoder().encode("{}");

/** Options of an OCI 1.1 artifact. */
export interface ArtifactOptions {
  artifactType: string;
  /** The manifest the artifact refers to (a signature's image, an SBOM's image). */
  subject?: Desc;
  /** Blobs of the artifact, each a layer of media type `artifactType`. */
  blobs?: Uint8Array[];
  annotations?: Record<string, string>;
}

/**
 * Writes an OCI 1.1 artifact: an image manifest with `artifactType`, the empty
 * config, its blobs as layers, and a `subject` when given (what the referrers
 * API lists). Returns its descriptor with `artifactType` and annotations.
 */
export async function writeArtifact(dir: string, o: ArtifactOptions): Promise<Desc & { artifactType: string }> {
  const config = await writeBlob(dir, EMPTY_JSON, "application/vnd.oci.empty.v1+json");
  const layers: Desc[] = [];
  for (const b of o.blobs ?? [EMPTY_JSON]) layers.push(await writeBlob(dir, b, o.blobs ? o.artifactType : config.mediaType));
  const mediaType = "application/vnd.oci.image.manifest.v1+json";
  const subject = o.subject ? { mediaType: o.subject.mediaType, digest: o.subject.digest, size: o.subject.size } : undefined;
  const manifest = {
    schemaVersion: 2,
    mediaType,
    artifactType: o.artifactType,
    config,
    layers,
    ...(subject ? { subject } : {}),
    ...(o.annotations ? { annotations: o.annotations } : {}),
  };
  const desc = await writeBlob(dir, new TextEncoder().encode(JSON.stringify(manifest)), mediaType);
  return { ...desc, artifactType: o.artifactType, ...(o.annotations ? { annotations: o.annotations } : {}) };
}

/** Writes `oci-layout` and `index.json` naming each entry with `org.opencontainers.image.ref.name`. */
export async function writeLayoutIndex(dir: string, entries: { desc: Desc; name?: string }[]): Promise<void> {
  await Deno.writeTextFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const manifests = entries.map(({ desc, name }) => ({
    mediaType: desc.mediaType,
    digest: desc.digest,
    size: desc.size,
    ...(name ? { annotations: { "org.opencontainers.image.ref.name": name } } : {}),
  }));
  await Deno.writeTextFile(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests }));
}

/** The standard fixture's images, by role. */
export interface Fixture {
  dir: string;
  /** Full reference (with tag or digest) → manifest digest, and what the image prints. */
  images: { name: string; source: string; digest: string; prints?: string; children?: Desc[] }[];
  /** With `referrers`: artifacts whose subject is an image of `images`, named in index.json but not runnable. */
  referrers?: { name: string; source: string; subject: string; desc: Desc & { artifactType: string }; blobs: string[] }[];
}

/**
 * The standard small fixture: a runnable tagged image (gzip layer), a
 * multi-platform index, a Docker-format image and a digest-only image. With
 * `referrers`, also two OCI 1.1 artifacts whose subject is the tagged image: a
 * signature tagged as cosign tags them (`sha256-<hex>.sig`) and an SBOM named
 * by digest only.
 */
export async function buildSampleLayout(dir: string, work: string, opts: { referrers?: boolean } = {}): Promise<Fixture> {
  const images: Fixture["images"] = [];
  const hello = await tarOf(await busyboxRootfs(work, { "etc/motd": "hello\n" }));
  const a = await writeImage(dir, { layers: [hello], cmd: ["/bin/busybox", "echo", "hello from isoload"], gzipLayers: true });
  images.push({
    name: "quay.io/isoload-test/hello:v1",
    source: "quay.io/isoload-test/hello",
    digest: a.digest,
    prints: "hello from isoload",
  });
  const amd = await writeImage(dir, { layers: [hello], cmd: ["/bin/busybox", "echo", "multi amd64"], arch: "amd64" });
  const armLayer = await tarOf(await busyboxRootfs(work, { "etc/arch": "arm64\n" }));
  const arm = await writeImage(dir, { layers: [armLayer], cmd: ["/bin/busybox", "echo", "multi arm64"], arch: "arm64" });
  const idx = await writeIndex(dir, [amd, arm]);
  images.push({
    name: "quay.io/isoload-test/multi:v1",
    source: "quay.io/isoload-test/multi",
    digest: idx.digest,
    prints: "multi amd64",
    children: [amd, arm],
  });
  const dock = await writeImage(dir, { layers: [hello], cmd: ["/bin/busybox", "echo", "docker format"], docker: true });
  images.push({
    name: "registry.example.com:5000/team/docker-fmt:latest",
    source: "registry.example.com:5000/team/docker-fmt",
    digest: dock.digest,
    prints: "docker format",
  });
  const dig = await writeImage(dir, { layers: [hello], cmd: ["/bin/busybox", "echo", "by digest"] });
  images.push({
    name: `quay.io/openshift-release-dev/ocp-v4.0-art-dev@${dig.digest}`,
    source: "quay.io/openshift-release-dev/ocp-v4.0-art-dev",
    digest: dig.digest,
    prints: "by digest",
  });
  const descs = [a, idx, dock, dig];
  const entries = descs.map((desc, i) => ({ desc, name: images[i].name }));
  if (!opts.referrers) {
    await writeLayoutIndex(dir, entries);
    return { dir, images };
  }
  const referrers: NonNullable<Fixture["referrers"]> = [];
  const artifact = async (name: (d: Desc) => string, o: ArtifactOptions) => {
    const desc = await writeArtifact(dir, o);
    const m = JSON.parse(await Deno.readTextFile(join(dir, "blobs", "sha256", desc.digest.slice(7))));
    const source = images[0].source;
    referrers.push({ name: name(desc), source, subject: a.digest, desc, blobs: [m.config.digest, ...m.layers.map((l: Desc) => l.digest)] });
    entries.push({ desc, name: name(desc) });
  };
  await artifact(() => `${images[0].source}:sha256-${a.digest.slice(7)}.sig`, {
    artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json",
    subject: a,
    blobs: [new TextEncoder().encode('{"critical":{"image":{"docker-manifest-digest":"' + a.digest + '"}}}')],
    annotations: { "dev.cosignproject.cosign/signature": "MEUCIQ-fixture" },
  });
  await artifact((d) => `${images[0].source}@${d.digest}`, {
    artifactType: "application/spdx+json",
    subject: a,
    blobs: [new TextEncoder().encode('{"spdxVersion":"SPDX-2.3"}')],
  });
  await writeLayoutIndex(dir, entries);
  return { dir, images, referrers };
}

/**
 * Cuts a file into chunks at the given byte offsets, as ISO 9660 tooling
 * splits a large file: `prefix` + a two-digit number from 00, in order.
 * Offsets need not fall on tar boundaries (a chunk may end inside an entry).
 */
export async function splitFile(path: string, cuts: number[], prefix: string): Promise<string[]> {
  const data = await Deno.open(path);
  const size = (await data.stat()).size;
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < size).sort((a, b) => a - b), size];
  const out: string[] = [];
  try {
    for (let i = 0; i + 1 < bounds.length; i++) {
      const name = `${prefix}${String(i).padStart(2, "0")}`;
      const f = await Deno.open(name, { write: true, create: true, truncate: true });
      let left = bounds[i + 1] - bounds[i];
      const buf = new Uint8Array(1 << 20);
      while (left > 0) {
        const n = await data.read(buf.subarray(0, Math.min(left, buf.length)));
        if (n === null) throw new Error(`${path} ended early`);
        let o = 0;
        while (o < n) o += await f.write(buf.subarray(o, n));
        left -= n;
      }
      f.close();
      out.push(name);
    }
  } finally {
    data.close();
  }
  return out;
}

/** Tars a directory's content with GNU tar (entries relative, no leading "./"). */
export async function tarDirectory(dir: string, out: string): Promise<void> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  await run("tar", ["-C", dir, "-cf", out, ...names.sort()]);
}

/**
 * A large payload for benchmarks: `count` images, each one layer of
 * `layerBytes` (a valid tar holding one file), written by streaming.
 * Layers are random bytes, or with `gzip` compressible text (6 bits of
 * entropy a byte, as binaries and text roughly are) gzip-compressed, so
 * consumers pay a real inflate.
 */
export async function buildLargeLayout(dir: string, count: number, layerBytes: number, opts: { gzip?: boolean } = {}): Promise<Fixture> {
  const images: Fixture["images"] = [];
  const descs: Desc[] = [];
  await Deno.mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  for (let i = 0; i < count; i++) {
    const tmp = join(dir, "blobs", "layer.tmp");
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    const blobHash = createHash("sha256");
    const diffHash = createHash("sha256");
    const writeFile = async (b: Uint8Array) => {
      blobHash.update(b);
      let o = 0;
      while (o < b.length) o += await f.write(b.subarray(o));
    };
    // With gzip, the tar goes through a CompressionStream whose output a second task writes.
    const gz = opts.gzip ? new CompressionStream("gzip") : undefined;
    const gzWriter = gz?.writable.getWriter();
    const drained = gz
      ? (async () => {
        for await (const c of gz.readable) await writeFile(c);
      })()
      : Promise.resolve();
    const put = async (b: Uint8Array) => {
      diffHash.update(b);
      if (gzWriter) await gzWriter.write(b.slice());
      else await writeFile(b);
    };
    await put(tarHeader(`data-${i}.bin`, layerBytes));
    const chunk = new Uint8Array(1 << 20);
    let left = layerBytes;
    let seed = i + 1;
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      for (let j = 0; j < n; j += 65536) crypto.getRandomValues(chunk.subarray(j, Math.min(n, j + 65536)));
      if (opts.gzip) { for (let j = 0; j < n; j++) chunk[j] = 0x30 + (chunk[j] & 63); }
      chunk[0] = seed++ & 0xff;
      await put(chunk.subarray(0, n));
      left -= n;
    }
    const pad = (512 - (layerBytes % 512)) % 512;
    await put(new Uint8Array(pad + 1024));
    await gzWriter?.close();
    await drained;
    f.close();
    const hex = blobHash.digest("hex");
    const size = (await Deno.stat(tmp)).size;
    await Deno.rename(tmp, join(dir, "blobs", "sha256", hex));
    const layer: Desc = {
      mediaType: opts.gzip ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.oci.image.layer.v1.tar",
      digest: `sha256:${hex}`,
      size,
    };
    const config = await writeBlob(
      dir,
      new TextEncoder().encode(JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: {},
        rootfs: { type: "layers", diff_ids: [`sha256:${diffHash.digest("hex")}`] },
      })),
      "application/vnd.oci.image.config.v1+json",
    );
    const manifest = { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config, layers: [layer] };
    const desc = await writeBlob(dir, new TextEncoder().encode(JSON.stringify(manifest)), manifest.mediaType);
    const name = `quay.io/isoload-bench/image-${String(i).padStart(3, "0")}:v1`;
    images.push({ name, source: name.split(":")[0], digest: desc.digest });
    descs.push(desc);
  }
  await writeLayoutIndex(dir, descs.map((desc, i) => ({ desc, name: images[i].name })));
  return { dir, images };
}

/** A rootfs holding a host binary and the shared libraries `ldd` says it needs. */
export async function binaryRootfs(dir: string, binary: string, at: string): Promise<string> {
  const root = join(dir, `rootfs-${crypto.randomUUID()}`);
  const copy = async (from: string, to: string) => {
    await Deno.mkdir(join(root, to, ".."), { recursive: true });
    await Deno.copyFile(await Deno.realPath(from), join(root, to));
  };
  await copy(binary, at);
  const ldd = new TextDecoder().decode(await run("ldd", [binary]));
  for (const m of ldd.matchAll(/(\/[^\s]+\.so[^\s]*)/g)) await copy(m[1], m[1]);
  await Deno.mkdir(join(root, "tmp"), { recursive: true });
  return root;
}

/** An image running the Debian distribution registry, like the release payload's docker-registry image. */
export async function writeRegistryImage(dir: string, work: string): Promise<Desc> {
  const rootfs = await binaryRootfs(work, "/usr/bin/docker-registry", "usr/bin/docker-registry");
  return await writeImage(dir, {
    layers: [await tarOf(rootfs)],
    entrypoint: ["/usr/bin/docker-registry", "serve"],
    cmd: ["/etc/docker/registry/config.yml"],
    gzipLayers: true,
  });
}

const enc = new TextEncoder();

/** A ustar header; long paths are split into prefix and name at a slash. */
export function tarHeader(path: string, size: number): Uint8Array {
  const h = new Uint8Array(512);
  let name = path, prefix = "";
  if (enc.encode(path).length > 100) {
    const cut = path.lastIndexOf("/", path.length - 1);
    let at = cut;
    while (at > 0 && (path.length - at - 1 > 100 || at > 155)) at = path.lastIndexOf("/", at - 1);
    if (at <= 0 || path.length - at - 1 > 100) throw new RangeError(`Cannot write tar entry ${path}: path too long for ustar`);
    prefix = path.slice(0, at);
    name = path.slice(at + 1);
  }
  h.set(enc.encode(name), 0);
  h.set(enc.encode("0000644\0"), 100);
  h.set(enc.encode("0000000\0"), 108);
  h.set(enc.encode("0000000\0"), 116);
  h.set(enc.encode(size.toString(8).padStart(11, "0") + "\0"), 124);
  h.set(enc.encode("00000000000\0"), 136);
  h[156] = 0x30;
  h.set(enc.encode("ustar\u000000"), 257);
  h.set(enc.encode(prefix), 345);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return h;
}
