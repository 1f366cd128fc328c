import assert from "node:assert/strict";
import { parse } from "yaml";
import type { LoadedImage } from "../image/loaded_image.ts";
import { type ClusterManifestOptions, renderClusterManifests } from "./cluster_manifests.ts";
import { MAX_MANIFEST_BYTES } from "./machine_config.ts";

const img = (source: string, tags: string[] = []): LoadedImage => ({
  source,
  repository: source.replace(/:(\d+)\//, "-$1/"),
  digest: `sha256:${"a".repeat(64)}`,
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  tags,
});

const options: ClusterManifestOptions = {
  cluster: "ocp",
  baseDomain: "example.com",
  binarySha256: "b".repeat(64),
  caPem: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
  serverCertPem: "-----BEGIN CERTIFICATE-----\nSERVER\n-----END CERTIFICATE-----\n",
  serverKeyPem: "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n",
  images: [img("quay.io/a/b", ["v1"]), img("quay.io/c/d"), img("registry.example.com:5000/e/f", ["latest"])],
  peers: ["192.168.111.20:22625", "192.168.111.21:22625"],
  isoLabel: "rhcos-*",
  isoBinary: "images/isoload",
  isoArchive: "images/mirror_*.tar",
};

function fileText(source: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(source.split(",")[1]), (c) => c.charCodeAt(0)));
}

Deno.test("renderClusterManifests() writes the master and worker MachineConfigs and both mirror sets, the same bytes each time", () => {
  const a = renderClusterManifests(options);
  assert.deepEqual(a.map((m) => m.file), [
    "99_openshift-machineconfig_99-master-isoload.yaml",
    "99_openshift-machineconfig_99-worker-isoload.yaml",
    "99_isoload-image-digest-mirror-set.yaml",
    "99_isoload-image-tag-mirror-set.yaml",
  ]);
  assert.deepEqual(renderClusterManifests(options), a);
  for (const m of a) assert.ok(new TextEncoder().encode(m.text).length < MAX_MANIFEST_BYTES, m.file);
});

Deno.test("renderClusterManifests() master config: key 0600, script with the digest and peers, units before the pullers", () => {
  const mc = parse(renderClusterManifests(options)[0].text);
  assert.equal(mc.metadata.labels["machineconfiguration.openshift.io/role"], "master");
  const files = new Map<string, { mode: number; contents: { source: string } }>(
    mc.spec.config.storage.files.map((f: { path: string }) => [f.path, f]),
  );
  assert.equal(files.get("/etc/isoload/tls/server.key")!.mode, 0o600);
  assert.equal(fileText(files.get("/etc/isoload/tls/server.key")!.contents.source), options.serverKeyPem);
  assert.equal(fileText(files.get("/etc/containers/certs.d/localhost:22625/isoload-ca.crt")!.contents.source), options.caPem);
  assert.ok(files.has("/etc/containers/certs.d/api-int.ocp.example.com:22625/isoload-ca.crt"));
  const script = fileText(files.get("/usr/local/bin/isoload-boot")!.contents.source);
  assert.equal(files.get("/usr/local/bin/isoload-boot")!.mode, 0o755);
  assert.match(script, new RegExp(`^want=${"b".repeat(64)}$`, "m"));
  assert.match(
    script,
    /^peers=\('https:\/\/api-int\.ocp\.example\.com:22625' 'https:\/\/192\.168\.111\.20:22625' 'https:\/\/192\.168\.111\.21:22625'\)$/m,
  );
  for (const u of mc.spec.config.systemd.units) {
    assert.equal(u.enabled, true);
    assert.match(
      u.contents,
      /^Before=machine-config-daemon-pull\.service machine-config-daemon-firstboot\.service crio\.service kubelet\.service$/m,
    );
  }
  assert.deepEqual(mc.spec.config.systemd.units.map((u: { name: string }) => u.name), [
    "isoload-binary.service",
    "isoload-registry.service",
  ]);
});

Deno.test("renderClusterManifests() worker config: the CA only, never the key", () => {
  const text = renderClusterManifests(options)[1].text;
  const mc = parse(text);
  assert.equal(mc.metadata.labels["machineconfiguration.openshift.io/role"], "worker");
  assert.deepEqual(mc.spec.config.storage.files.map((f: { path: string }) => f.path), [
    "/etc/pki/ca-trust/source/anchors/isoload-ca.crt",
    "/etc/containers/certs.d/api-int.ocp.example.com:22625/isoload-ca.crt",
  ]);
  assert.equal(mc.spec.config.systemd, undefined);
  assert.doesNotMatch(text, new RegExp(btoa(options.serverKeyPem).slice(0, 20)));
});

Deno.test("renderClusterManifests() mirror sets: localhost first, then api-int; tags only for tagged repositories", () => {
  const [, , idms, itms] = renderClusterManifests(options).map((m) => parse(m.text));
  assert.equal(idms.kind, "ImageDigestMirrorSet");
  assert.deepEqual(idms.spec.imageDigestMirrors[2], {
    source: "registry.example.com:5000/e/f",
    mirrors: ["localhost:22625/registry.example.com-5000/e/f", "api-int.ocp.example.com:22625/registry.example.com-5000/e/f"],
  });
  assert.equal(itms.kind, "ImageTagMirrorSet");
  assert.deepEqual(itms.spec.imageTagMirrors.map((e: { source: string }) => e.source), ["quay.io/a/b", "registry.example.com:5000/e/f"]);
});
