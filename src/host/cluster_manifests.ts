/**
 * The manifests for an agent install's extra-manifests directory (`openshift/`
 * beside install-config.yaml) that keep the images pullable on the installed
 * cluster: the control-plane MachineConfig (the boot script, the units, the
 * cluster's TLS), the worker MachineConfig (trust of the CA), and the mirror
 * sets. Pure renderer: the same options give the same bytes.
 */
import type { LoadedImage } from "../image/loaded_image.ts";
import { INSTALLED_PATHS, renderBootScript } from "./installed_script.ts";
import { INSTALLED_BEFORE, renderInstalledUnits } from "./installed_units.ts";
import { ignitionConfig, renderMachineConfig } from "./machine_config.ts";
import { renderMirrorSet } from "./mirror_sets.ts";
import type { ShippedFile } from "./units.ts";

/** The port the registry serves at on every node (as OpenShift's InternalReleaseImage registry). */
export const REGISTRY_PORT = 22625;

/** Options of `isoload machine-configs`. */
export interface ClusterManifestOptions {
  cluster: string;
  baseDomain: string;
  /** sha256 (hex) of the isoload binary the nodes install. */
  binarySha256: string;
  /** The cluster's CA and the registry's certificate and key (PEM). */
  caPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** The images the mirror sets list. */
  images: LoadedImage[];
  /** Peers a control-plane node fetches from besides api-int: the rendezvous host first, then the others (HOST:PORT). */
  peers: string[];
  isoLabel: string;
  isoBinary: string;
  isoArchive: string;
}

/** One manifest file. */
export interface Manifest {
  /** File name inside the extra-manifests directory. */
  file: string;
  text: string;
}

/** `api-int.<cluster>.<domain>:22625`: the API VIP, held by a control-plane node, as the workers reach it. */
export function apiIntRegistry(cluster: string, baseDomain: string): string {
  return `api-int.${cluster}.${baseDomain}:${REGISTRY_PORT}`;
}

/** `localhost:22625`: the node's own registry (control-plane nodes only). */
export const LOCAL_REGISTRY = `localhost:${REGISTRY_PORT}`;

/**
 * The mirrors, in the order containers/image tries them: the node's own
 * registry first (on a control-plane node it answers without DNS, the VIP or
 * the network; on a worker nothing listens there, and a refused connection on
 * loopback costs well under a millisecond), then api-int.
 */
export function mirrorOrder(cluster: string, baseDomain: string): string[] {
  return [LOCAL_REGISTRY, apiIntRegistry(cluster, baseDomain)];
}

function caFiles(caPem: string, registries: string[]): ShippedFile[] {
  return [
    // The host's trust store (update-ca-trust at boot), as the MCO's own InternalReleaseImage does.
    { path: "/etc/pki/ca-trust/source/anchors/isoload-ca.crt", mode: 0o644, text: caPem },
    // containers/image's per-registry trust, which needs no update-ca-trust.
    ...registries.map((r) => ({ path: `/etc/containers/certs.d/${r}/isoload-ca.crt`, mode: 0o644, text: caPem })),
  ];
}

/** Every manifest, in a stable order. */
export function renderClusterManifests(o: ClusterManifestOptions): Manifest[] {
  const apiInt = apiIntRegistry(o.cluster, o.baseDomain);
  const p = INSTALLED_PATHS;
  const script = renderBootScript({
    binarySha256: o.binarySha256,
    binaryPath: p.binary,
    isoLabel: o.isoLabel,
    isoMount: p.isoMount,
    isoBinary: o.isoBinary,
    isoArchive: o.isoArchive,
    peers: [apiInt, ...o.peers].filter((x, i, all) => all.indexOf(x) === i).map((h) => `https://${h}`),
    tlsDir: p.tlsDir,
    dataDir: p.dataDir,
    listen: `0.0.0.0:${REGISTRY_PORT}`,
  });
  const masterFiles: ShippedFile[] = [
    { path: p.script, mode: 0o755, text: script },
    { path: `${p.tlsDir}/ca.crt`, mode: 0o644, text: o.caPem },
    { path: `${p.tlsDir}/server.crt`, mode: 0o644, text: o.serverCertPem },
    { path: `${p.tlsDir}/server.key`, mode: 0o600, text: o.serverKeyPem },
    ...caFiles(o.caPem, [LOCAL_REGISTRY, apiInt]),
  ];
  const units = renderInstalledUnits({ script: p.script, before: INSTALLED_BEFORE });
  const master = renderMachineConfig("99-master-isoload", "master", ignitionConfig(masterFiles, units));
  const worker = renderMachineConfig("99-worker-isoload", "worker", ignitionConfig(caFiles(o.caPem, [apiInt]), []));
  const mirrors = mirrorOrder(o.cluster, o.baseDomain);
  return [
    // The installer's own names for MachineConfigs in manifests: 99_openshift-machineconfig_<name>.yaml.
    { file: "99_openshift-machineconfig_99-master-isoload.yaml", text: master },
    { file: "99_openshift-machineconfig_99-worker-isoload.yaml", text: worker },
    { file: "99_isoload-image-digest-mirror-set.yaml", text: renderMirrorSet(o.images, mirrors, "idms") },
    { file: "99_isoload-image-tag-mirror-set.yaml", text: renderMirrorSet(o.images, mirrors, "itms") },
  ];
}
