/** The isoload binary this process runs from, when it is one. */
import { basename } from "node:path";

/**
 * The running executable when it is a compiled isoload; undefined when this is
 * `deno` running main.ts or the bundle (whose executable is not isoload).
 */
export function runningIsoloadBinary(): string | undefined {
  const exe = Deno.execPath();
  return /^deno(\.exe)?$/.test(basename(exe)) ? undefined : exe;
}
