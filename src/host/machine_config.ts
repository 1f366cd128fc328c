/**
 * A MachineConfig (machineconfiguration.openshift.io/v1) for one pool: an
 * Ignition 3.2 config in `spec.config`, whose files are data URLs. The object
 * lives in etcd, so it carries text only, never a binary. Pure renderer.
 */
import { stringify } from "yaml";
import type { ShippedFile, Unit } from "./units.ts";

/** The Ignition spec version the MCO accepts in a MachineConfig from the installer. */
export const IGNITION_VERSION = "3.2.0";

/** The largest manifest isoload writes: etcd takes objects up to about 1.5 MB; stay far below. */
export const MAX_MANIFEST_BYTES = 256 << 10;

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** An RFC 2397 data URL of text, base64 (what Ignition and the MCO read). */
export function dataUrl(text: string): string {
  return `data:text/plain;charset=utf-8;base64,${base64(text)}`;
}

/** The Ignition config: files (overwritten, data URLs) and units (enabled). */
export function ignitionConfig(files: ShippedFile[], units: Unit[]): Record<string, unknown> {
  const config: Record<string, unknown> = { ignition: { version: IGNITION_VERSION } };
  if (files.length) {
    config.storage = {
      files: files.map((f) => ({ path: f.path, mode: f.mode, overwrite: true, contents: { source: dataUrl(f.text) } })),
    };
  }
  if (units.length) config.systemd = { units: units.map((u) => ({ name: u.name, enabled: true, contents: u.text })) };
  return config;
}

/** The MachineConfig YAML for `role` (master or worker) holding `config`. */
export function renderMachineConfig(name: string, role: string, config: Record<string, unknown>): string {
  const doc = {
    apiVersion: "machineconfiguration.openshift.io/v1",
    kind: "MachineConfig",
    metadata: { name, labels: { "machineconfiguration.openshift.io/role": role } },
    spec: { config },
  };
  return stringify(doc, { lineWidth: 0 });
}
