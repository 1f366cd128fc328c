/**
 * Storage mode end to end with the real tools: isoload load --mode storage
 * into a private vfs store, then podman finds and runs every image by its
 * source name and digest, with no registry and no network.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { buildOcMirrorArchive } from "../tools/oc_mirror_fixture.ts";
import { containersEnv } from "./_containers.ts";
import { sampleFixture, withTempDir } from "./_fixtures.ts";
import { isoload, type Run, tool } from "./_process.ts";
import { layoutEntries, makeTar } from "./_tar.ts";
import type { Fixture } from "../tools/payload.ts";

/** The child of an index this host runs (the fixture has amd64 and arm64). */
function hostChild(img: Fixture["images"][number]) {
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
  return img.children?.find((c) => c.platform?.architecture === arch);
}

/** What the image prints on this host. */
function prints(img: Fixture["images"][number]): string | undefined {
  return img.children && Deno.build.arch === "aarch64" ? "multi arm64" : img.prints;
}

async function loadStorage(source: string, dir: string, env: Record<string, string>, extra: string[] = []): Promise<Run> {
  return await isoload([
    "load",
    source,
    "--mode",
    "storage",
    "--data-dir",
    join(dir, "data"),
    "--storage-conf",
    env.CONTAINERS_STORAGE_CONF,
    "--pin",
    join(dir, "crio.conf.d", "99-isoload-pinned-images.conf"),
    ...extra,
  ]);
}

async function podman(env: Record<string, string>, args: string[]): Promise<Run> {
  const out = await new Deno.Command("podman", { args, env, stdin: "null", stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Every image is present under its source name by digest (and by tag), runs offline, and is pinned. */
async function checkAllLoaded(fixture: Fixture, dir: string, env: Record<string, string>): Promise<void> {
  const pinText = await Deno.readTextFile(join(dir, "crio.conf.d", "99-isoload-pinned-images.conf"));
  const pins = ((parseToml(pinText).crio as Record<string, Record<string, unknown>>).image.pinned_images) as string[];
  for (const img of fixture.images) {
    const ref = `${img.source}@${img.digest}`;
    const refs = [ref];
    if (!img.name.includes("@")) refs.push(img.name);
    const child = hostChild(img);
    if (child) refs.push(`${img.source}@${child.digest}`);
    for (const r of refs) {
      assert.equal((await podman(env, ["image", "exists", r])).code, 0, `podman image exists ${r}`);
      assert.ok(pins.includes(r), `${r} is pinned`);
    }
    const run = await podman(env, ["run", "--rm", "--pull", "never", "--network", "none", ref]);
    assert.equal(run.code, 0, `podman run ${ref}: ${run.stderr}`);
    assert.equal(run.stdout.trim(), prints(img), ref);
  }
}

Deno.test("load --mode storage: every image runs under its source name and digest; a re-run skips them all", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("storage", async (dir) => {
    const env = await containersEnv(join(dir, "containers"));
    const first = await loadStorage(tar, dir, env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /copied 4, 0 already present/);
    await assert.rejects(Deno.stat(join(dir, "data", "scratch")), "the scratch tree is removed without --keep");
    await checkAllLoaded(fixture, dir, env);

    const pin = join(dir, "crio.conf.d", "99-isoload-pinned-images.conf");
    const pinBefore = await Deno.readTextFile(pin);
    const images = (await podman(env, ["images", "--no-trunc", "--format", "{{.ID}} {{.Digest}}"])).stdout;
    const again = await loadStorage(tar, dir, env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /Nothing to do: all 4 images/);
    await assert.rejects(Deno.stat(join(dir, "data", "scratch")), "a re-run does not unpack the archive");
    assert.equal((await podman(env, ["images", "--no-trunc", "--format", "{{.ID}} {{.Digest}}"])).stdout, images);
    assert.equal(await Deno.readTextFile(pin), pinBefore, "same input, same pin file bytes");

    // An image removed from the store (every name of it) comes back; the others are left as they are.
    const gone = fixture.images[0];
    const id = (await tool("podman", ["image", "inspect", "--format", "{{.Id}}", `${gone.source}@${gone.digest}`], env)).stdout.trim();
    await tool("podman", ["rmi", "--force", id], env);
    const third = await loadStorage(tar, dir, env);
    assert.equal(third.code, 0, third.stderr);
    assert.match(third.stderr, /copied 1, 3 already present/);
    await checkAllLoaded(fixture, dir, env);
  });
});

Deno.test("load --mode storage: an oc-mirror v2 archive lands under its source names", async () => {
  const { fixture } = await sampleFixture();
  await withTempDir("storage-ocm", async (dir) => {
    const archive = join(dir, "mirror_000001.tar");
    await buildOcMirrorArchive(fixture, dir, archive);
    const env = await containersEnv(join(dir, "containers"));
    const r = await loadStorage(archive, dir, env, ["--jobs", "1", "--keep"]);
    assert.equal(r.code, 0, r.stderr);
    await checkAllLoaded(fixture, dir, env);
    assert.ok((await Deno.stat(join(dir, "data", "scratch"))).isDirectory, "--keep keeps the scratch tree");
  });
});

Deno.test("load --mode storage: one corrupt blob fails its image by name; the others load", async () => {
  const { fixture } = await sampleFixture();
  await withTempDir("storage-corrupt", async (dir) => {
    // Corrupt hello's layer: every image whose manifest (or host child) uses it fails, the others load.
    const hello = fixture.images.find((i) => i.source.endsWith("/hello"))!;
    const manifestOf = async (digest: string) => JSON.parse(await Deno.readTextFile(join(fixture.dir, "blobs", "sha256", digest.slice(7))));
    const layer = (await manifestOf(hello.digest)).layers[0].digest as string;
    const failing: string[] = [];
    for (const img of fixture.images) {
      const m = await manifestOf(hostChild(img)?.digest ?? img.digest);
      if (m.layers.some((l: { digest: string }) => l.digest === layer)) failing.push(`${img.source}@${img.digest}`);
    }
    assert.ok(failing.length >= 1 && failing.length < fixture.images.length, `some images fail, not all: ${failing}`);
    const entries = await layoutEntries(fixture.dir);
    const i = entries.findIndex((e) => e.name.endsWith(layer.slice(7)));
    const data = new Uint8Array(entries[i].data as Uint8Array);
    data[data.length >> 1] ^= 0xff;
    entries[i] = { ...entries[i], data };
    const tar = join(dir, "corrupt.tar");
    await Deno.writeFile(tar, makeTar(entries, { end: true }));

    const env = await containersEnv(join(dir, "containers"));
    const r = await loadStorage(tar, dir, env);
    assert.equal(r.code, 3, r.stderr);
    const last = r.stderr.trim().split("\n").at(-1)!;
    assert.match(last, new RegExp(`Cannot load ${failing.length} of 4 images into containers-storage \\(first: ${failing.sort()[0]}`));
    assert.match(last, new RegExp(`${layer}.*corrupt`));
    const pins = await Deno.readTextFile(join(dir, "crio.conf.d", "99-isoload-pinned-images.conf"));
    for (const img of fixture.images) {
      const ref = `${img.source}@${img.digest}`;
      const exists = (await podman(env, ["image", "exists", ref])).code === 0;
      if (failing.includes(ref)) {
        assert.ok(!exists, `${ref} is not in the store`);
        assert.ok(!pins.includes(ref), `${ref} is not pinned`);
        assert.match(r.stderr, new RegExp(`${ref} failed: .*${layer}.*corrupt`));
      } else {
        assert.ok(exists, `${ref} loaded despite the corrupt blob`);
        assert.ok(pins.includes(ref), `${ref} pinned`);
      }
    }
  });
});

Deno.test("load --mode storage: a second source into the same DIR adds to the pins, never drops the first's", async () => {
  const { fixture, tar } = await sampleFixture();
  await withTempDir("storage-two", async (dir) => {
    const env = await containersEnv(join(dir, "containers"));
    assert.equal((await loadStorage(tar, dir, env)).code, 0);
    // A second archive: the sample's blobs, its index naming one image under another repository.
    const hello = fixture.images[0];
    const helloSize = (await Deno.stat(join(fixture.dir, "blobs", "sha256", hello.digest.slice(7)))).size;
    const entries = (await layoutEntries(fixture.dir)).map((e) =>
      e.name === "index.json"
        ? {
          ...e,
          data: new TextEncoder().encode(JSON.stringify({
            schemaVersion: 2,
            manifests: [{
              mediaType: "application/vnd.oci.image.manifest.v1+json",
              digest: hello.digest,
              size: helloSize,
              annotations: { "org.opencontainers.image.ref.name": "quay.io/isoload-test/extra:v9" },
            }],
          })),
        }
        : e
    );
    const second = join(dir, "second.tar");
    await Deno.writeFile(second, makeTar(entries, { end: true }));
    const r = await loadStorage(second, dir, env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await podman(env, ["image", "exists", `quay.io/isoload-test/extra@${hello.digest}`])).code, 0);
    const pins = await Deno.readTextFile(join(dir, "crio.conf.d", "99-isoload-pinned-images.conf"));
    for (const ref of ["quay.io/isoload-test/extra:v9", ...fixture.images.map((i) => `${i.source}@${i.digest}`)]) {
      assert.ok(pins.includes(`"${ref}"`), `${ref} pinned`);
    }
  });
});

Deno.test("load --mode storage: a pin file isoload did not write is left alone, before any work", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("storage-pin", async (dir) => {
    const pin = join(dir, "crio.conf.d", "99-isoload-pinned-images.conf");
    await Deno.mkdir(join(dir, "crio.conf.d"));
    const foreign = '[crio.image]\npinned_images = ["quay.io/someone/else:1"]\n';
    await Deno.writeTextFile(pin, foreign);
    const env = await containersEnv(join(dir, "containers"));
    const r = await loadStorage(tar, dir, env);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /Cannot write .*99-isoload-pinned-images\.conf: it exists and isoload did not write it/);
    assert.equal(await Deno.readTextFile(pin), foreign);
    assert.equal((await podman(env, ["images", "-q"])).stdout.trim(), "", "nothing copied");
  });
});

Deno.test("load: storage-mode flags without --mode storage (and the reverse) are usage errors", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("storage-usage", async (dir) => {
    const a = await isoload(["load", tar, "--data-dir", dir, "--jobs", "2"]);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /--jobs applies to --mode storage only/);
    const b = await isoload(["load", tar, "--data-dir", dir, "--mode", "storage", "--mirror", "h:1"]);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /--mirror applies to --mode registry only/);
    const c = await isoload(["load", tar, "--data-dir", dir, "--mode", "storage", "--jobs", "0"]);
    assert.equal(c.code, 2);
    const d = await isoload(["load", tar, "--data-dir", dir, "--mode", "mirror"]);
    assert.equal(d.code, 2);
  });
});
