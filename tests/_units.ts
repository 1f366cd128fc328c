/** Shared by the units and boot-order tests: a stand-in binary, the exported image list, the roles and modes. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sampleFixture } from "./_fixtures.ts";
import { isoload } from "./_process.ts";

/** An executable to stand for isoload on the host: verify checks that ExecStart's binary exists. */
export async function shim(dir: string): Promise<string> {
  const path = join(dir, "isoload");
  await Deno.writeTextFile(path, "#!/bin/sh\nexit 0\n");
  await Deno.chmod(path, 0o755);
  return path;
}

/** The sample's image list as the ISO builder exports it (isoload inspect --json ARCHIVE) at DIR/images.json; returns its path. */
export async function exportedList(dir: string): Promise<string> {
  const { tar } = await sampleFixture();
  const list = join(dir, "images.json");
  const r = await isoload(["inspect", "--json", tar]);
  assert.equal(r.code, 0, r.stderr);
  await Deno.writeTextFile(list, r.stdout);
  return list;
}

/** Each role and mode `units` knows, with the units it writes. */
export const UNIT_CASES: [string, string[], string[]][] = [
  ["all", [], ["isoload-registries-conf.service", "isoload-registry.service"]],
  ["h0", ["--role", "host0"], ["isoload-registries-conf.service", "isoload-registry.service"]],
  ["n1", ["--role", "node", "--before", "crio.service,kubelet.service"], ["isoload-registries-conf.service", "isoload-registry.service"]],
  ["copy", ["--role", "host0", "--data-dir", "/var/lib/isoload"], [
    "isoload-registries-conf.service",
    "isoload-load.service",
    "isoload-registry.service",
  ]],
  ["storage", ["--mode", "storage"], ["isoload-registries-conf.service", "isoload-registry.service", "isoload-load.service"]],
  ["http", ["--insecure-http"], ["isoload-registries-conf.service", "isoload-registry.service"]],
];
