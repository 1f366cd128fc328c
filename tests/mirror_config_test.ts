/**
 * `isoload mirror-config` as the installed cluster sees it: every document
 * passes the openshift-api CRD schemas, and the Machine Config Operator's own
 * rendering (mco-render) of it gives a registries.conf through which skopeo
 * 1.20 pulls every image, over TLS with the cluster CA, and over plain HTTP
 * only thanks to the Image config --insecure-http adds.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { fileDigest, pulledDigest, sampleFixture, withTempDir } from "./_fixtures.ts";
import { freePort, isoload, serve } from "./_process.ts";
import { upstream } from "./_upstream.ts";
import { crdSchema, type Schema, validate } from "./_openapi.ts";
import { parse } from "yaml";

/** The objects of a multi-document YAML text. */
function docs(text: string): Record<string, unknown>[] {
  return parseAllDocuments(text).map((d) => d.toJS());
}

/** Checks each object against its CRD; returns the objects. */
async function checkCrds(objects: Record<string, unknown>[]): Promise<void> {
  const dir = upstream("openshift-api", "validating mirror-config output against the openshift-api CRDs");
  if (!dir) return;
  const schemas = new Map<string, { group: string; schema: Schema }>();
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    const crd = parse(await Deno.readTextFile(path));
    const version = crd.spec.versions.find((v: { storage: boolean }) => v.storage).name;
    schemas.set(crd.spec.names.kind, { group: `${crd.spec.group}/${version}`, schema: await crdSchema(path, version) });
  }
  for (const o of objects) {
    if (o.kind === "ConfigMap") continue;
    const s = schemas.get(o.kind as string);
    assert.ok(s, `a CRD for ${o.kind}`);
    assert.equal(o.apiVersion, s.group, `${o.kind} apiVersion`);
    assert.deepEqual(validate(s.schema, o), [], `${o.kind} is valid by its CRD`);
  }
  // The validator does bite: a mirror with a scheme and a stray field are refused.
  const idms = objects.find((o) => o.kind === "ImageDigestMirrorSet");
  if (idms) {
    const bad = structuredClone(idms) as { spec: { imageDigestMirrors: { mirrors: string[] }[]; extra?: number } };
    bad.spec.imageDigestMirrors[0].mirrors = ["https://h:1/x"];
    bad.spec.extra = 1;
    assert.equal(validate(schemas.get("ImageDigestMirrorSet")!.schema, bad).length, 2);
  }
}

async function run(cmd: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout), err: new TextDecoder().decode(r.stderr) };
}

/** mco-render of the objects (with the Image config's insecure registries, as the MCO passes them). */
async function mcoRender(dir: string, objects: Record<string, unknown>[]): Promise<string | undefined> {
  const render = upstream("bin/mco-render", "mco-render of mirror-config output");
  if (!render) return undefined;
  const template = join(dir, "template.toml");
  await Deno.writeTextFile(template, "unqualified-search-registries = ['registry.access.redhat.com']\n");
  const json = join(dir, "docs.json");
  await Deno.writeTextFile(json, JSON.stringify(objects));
  const insecure = objects.filter((o) => o.kind === "Image").flatMap((o) =>
    ((o.spec as { registrySources?: { insecureRegistries?: string[] } }).registrySources?.insecureRegistries) ?? []
  );
  const r = await run(render, [template, json, ...insecure]);
  assert.equal(r.code, 0, r.err);
  const conf = join(dir, "registries.conf");
  await Deno.writeTextFile(conf, r.out);
  return conf;
}

/** Pulls every image of the sample by digest (IDMS) and by tag (ITMS) with skopeo 1.20 through `conf`. */
async function pullEvery(skopeo: string, conf: string, dir: string, certDir?: string): Promise<void> {
  const { fixture } = await sampleFixture();
  await Deno.mkdir(dir, { recursive: true });
  let n = 0;
  const pull = async (ref: string) => {
    const out = join(dir, `p${n++}`);
    const r = await run(skopeo, [
      "--registries-conf",
      conf,
      "copy",
      "--quiet",
      ...(certDir ? ["--src-cert-dir", certDir] : []),
      `docker://${ref}`,
      `dir:${out}`,
    ]);
    assert.equal(r.code, 0, `skopeo-1.20 copy ${ref}: ${r.err}`);
    return await fileDigest(join(out, "manifest.json"));
  };
  for (const img of fixture.images) {
    const want = pulledDigest(img);
    assert.equal(await pull(`${img.source}@${img.digest}`), want, `${img.name} by digest`);
    if (!img.name.includes("@")) assert.equal(await pull(img.name), want, `${img.name} by tag`);
  }
}

Deno.test("mirror-config: CRD-valid; mco-render of it gives a registries.conf skopeo 1.20 pulls every image through, over TLS", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("mc-tls", async (dir) => {
    const tls = join(dir, "tls");
    assert.equal((await isoload(["tls", "--out", tls, "--rendezvous", "127.0.0.1"])).code, 0);
    const list = join(dir, "images.json");
    await Deno.writeTextFile(list, (await isoload(["inspect", "--json", tar])).stdout);
    const port = freePort();
    const mirror = `127.0.0.1:${port}`;
    const objects: Record<string, unknown>[] = [];
    for (const kind of ["idms", "itms", "trusted-ca"]) {
      const r = await isoload(["mirror-config", "--expect", list, "--mirror", mirror, "--kind", kind, "--tls-dir", tls]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /insecureRegistries/, "TLS: nothing insecure");
      objects.push(...docs(r.stdout));
    }
    await checkCrds(objects);
    const conf = await mcoRender(dir, objects.filter((o) => o.kind !== "ConfigMap" && o.kind !== "Image"));
    const skopeo = upstream("bin/skopeo-1.20", "pulls with skopeo 1.20");
    if (!conf || !skopeo) return;
    assert.doesNotMatch(await Deno.readTextFile(conf), /insecure = true/);
    const served = await serve(["--source", tar, "--listen", mirror, "--tls-dir", tls]);
    try {
      const certs = join(dir, "certs");
      await Deno.mkdir(certs);
      await Deno.copyFile(join(tls, "ca.crt"), join(certs, "ca.crt"));
      await pullEvery(skopeo, conf, join(dir, "pulls"), certs);
    } finally {
      assert.equal(await served.stop(), 0);
    }
  });
});

Deno.test("mirror-config --insecure-http: every output carries the Image config, and only with it does the MCO's rendering pull over plain HTTP", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("mc-http", async (dir) => {
    const list = join(dir, "images.json");
    await Deno.writeTextFile(list, (await isoload(["inspect", "--json", tar])).stdout);
    const port = freePort();
    const mirror = `127.0.0.1:${port}`;
    const objects: Record<string, unknown>[] = [];
    for (const kind of ["idms", "itms", "icsp"]) {
      const r = await isoload(["mirror-config", "--expect", list, "--mirror", mirror, "--kind", kind, "--insecure-http"]);
      assert.equal(r.code, 0, r.stderr);
      const these = docs(r.stdout);
      const image = these.find((o) => o.kind === "Image");
      assert.deepEqual(image, {
        apiVersion: "config.openshift.io/v1",
        kind: "Image",
        metadata: { name: "cluster" },
        spec: { registrySources: { insecureRegistries: [mirror] } },
      }, `${kind} carries the insecure Image config`);
      objects.push(...these.filter((o) => o.kind !== "Image" || !objects.some((x) => x.kind === "Image")));
    }
    await checkCrds(objects);
    const refused = await isoload(["mirror-config", "--expect", list, "--mirror", mirror, "--kind", "trusted-ca", "--insecure-http"]);
    assert.equal(refused.code, 3, refused.stderr);
    const skopeo = upstream("bin/skopeo-1.20", "pulls with skopeo 1.20");
    const sets = objects.filter((o) => o.kind !== "ImageContentSourcePolicy");
    const conf = await mcoRender(dir, sets);
    if (!conf || !skopeo) return;
    assert.match(await Deno.readTextFile(conf), /insecure = true/);
    const served = await serve(["--source", tar, "--listen", mirror]);
    try {
      await pullEvery(skopeo, conf, join(dir, "pulls"));
      // Without the Image config the MCO renders the mirror as HTTPS, and the pull fails as the issue says.
      const bare = join(dir, "bare");
      await Deno.mkdir(bare);
      const secureConf = await mcoRender(bare, sets.filter((o) => o.kind !== "Image"));
      const { fixture } = await sampleFixture();
      const img = fixture.images[0];
      const r = await run(skopeo, [
        "--registries-conf",
        secureConf!,
        "copy",
        `docker://${img.source}@${img.digest}`,
        `dir:${join(bare, "x")}`,
      ]);
      assert.notEqual(r.code, 0);
      assert.match(r.err, /HTTP response to HTTPS client/);
    } finally {
      assert.equal(await served.stop(), 0);
    }
  });
});
