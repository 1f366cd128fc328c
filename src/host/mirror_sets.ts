/** Mirror-set documents for the installed cluster (openshift/api config/v1, operator/v1alpha1). */
import { stringify } from "yaml";
import type { LoadedImage } from "../image/loaded_image.ts";

/** The kinds `mirror-config` writes. */
export type MirrorSetKind = "idms" | "itms" | "icsp";

/**
 * One YAML document mapping every source repository to its mirror, or to
 * several mirrors (hosts, tried in the order given).
 */
export function renderMirrorSet(images: LoadedImage[], mirrorHost: string | string[], kind: MirrorSetKind, name = "isoload"): string {
  const hosts = typeof mirrorHost === "string" ? [mirrorHost] : mirrorHost;
  const bySource = new Map<string, string>();
  for (const img of images) {
    if (kind === "itms" && img.tags.length === 0) continue;
    bySource.set(img.source, img.repository);
  }
  const entries = [...bySource.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([source, repository]) => ({
    source,
    mirrors: hosts.map((h) => `${h}/${repository}`),
  }));
  const doc = kind === "idms"
    ? { apiVersion: "config.openshift.io/v1", kind: "ImageDigestMirrorSet", metadata: { name }, spec: { imageDigestMirrors: entries } }
    : kind === "itms"
    ? { apiVersion: "config.openshift.io/v1", kind: "ImageTagMirrorSet", metadata: { name }, spec: { imageTagMirrors: entries } }
    : {
      apiVersion: "operator.openshift.io/v1alpha1",
      kind: "ImageContentSourcePolicy",
      metadata: { name },
      spec: { repositoryDigestMirrors: entries },
    };
  return stringify(doc, { lineWidth: 0 });
}

/**
 * The cluster's trust of a TLS mirror: a ConfigMap in openshift-config keyed by
 * `host..port` (OpenShift's spelling of host:port) holding the CA, and the
 * cluster Image config naming it as additionalTrustedCA.
 */
export function renderTrustedCa(mirrorHost: string, caPem: string, name = "isoload-registry-ca"): string {
  const key = mirrorHost.replace(/:(\d+)$/, "..$1");
  const configMap = { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "openshift-config" }, data: { [key]: caPem } };
  const image = {
    apiVersion: "config.openshift.io/v1",
    kind: "Image",
    metadata: { name: "cluster" },
    spec: { additionalTrustedCA: { name } },
  };
  return stringify(configMap, { lineWidth: 0 }) + "---\n" + stringify(image, { lineWidth: 0 });
}

/**
 * The cluster Image config that tells the Machine Config Operator the mirrors
 * are plain HTTP: without it, the MCO renders them with no `insecure` and
 * installed nodes ask them over HTTPS ("server gave HTTP response to HTTPS
 * client").
 */
export function renderInsecureImageConfig(mirrorHosts: string[]): string {
  const image = {
    apiVersion: "config.openshift.io/v1",
    kind: "Image",
    metadata: { name: "cluster" },
    spec: { registrySources: { insecureRegistries: [...new Set(mirrorHosts)] } },
  };
  return stringify(image, { lineWidth: 0 });
}
