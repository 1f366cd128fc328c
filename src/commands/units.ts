/** `isoload units`: the boot units (or an Ignition fragment) for host0 or another node, written into a directory. */
import { basename, join } from "node:path";
import { atomicWrite } from "../util/atomic_write.ts";
import type { Logger } from "../util/log.ts";
import { renderIgnition, renderUnits, type UnitsOptions } from "../host/units.ts";

/** Writes the units (`files`) or one `isoload.ign` (`ignition`) into `out`; returns the paths written. */
export async function writeUnits(opts: UnitsOptions, out: string, format: "files" | "ignition", log: Logger): Promise<string[]> {
  const rendered = renderUnits(opts);
  const written: [string, string][] = format === "ignition" ? [[join(out, "isoload.ign"), renderIgnition(rendered)]] : [
    ...rendered.units.map((u): [string, string] => [join(out, u.name), u.text]),
    ...rendered.files.map((f): [string, string] => [join(out, basename(f.path)), f.text]),
  ];
  for (const [path, text] of written) await atomicWrite(path, text);
  const what = rendered.units.map((u) => u.name).join(", ");
  log.info(`Wrote ${written.map(([p]) => p).join(", ")} (${opts.role}, ${opts.mode} mode: ${what})`);
  if (opts.role === "node" && rendered.files.length === 0) {
    log.warn("no --expect FILE given: put host0's image list (isoload inspect --json DIR) at /etc/isoload/images.json on each node");
  }
  return written.map(([p]) => p);
}
