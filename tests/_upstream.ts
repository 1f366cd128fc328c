/**
 * The shared upstream kit (`../shared/upstream`, see its README): tools built
 * from upstream sources to check isoload's output against (skopeo 1.20,
 * mco-render, ignition-validate, the openshift-api CRDs, the agent ISO's
 * units). Found through ISOLOAD_SHARED, else beside the checkout; absent in a
 * fresh clone elsewhere, where the tests that need it skip with a notice.
 */
import { join } from "node:path";
import { ROOT } from "./_process.ts";

/** The shared kit's directory: $ISOLOAD_SHARED, else <root>/../shared. */
export function sharedDir(): string {
  return Deno.env.get("ISOLOAD_SHARED") || join(ROOT, "..", "shared");
}

/** Path of `upstream/bin/NAME` when the kit has it; otherwise prints why the caller skips and returns undefined. */
export function upstreamTool(name: string): string | undefined {
  return upstream(join("bin", name), `the tests that need ${name}`);
}

const noticed = new Set<string>();

/** Path of `upstream/REL` (a file or directory) when the kit has it; otherwise prints (once) what is skipped and returns undefined. */
export function upstream(rel: string, what: string): string | undefined {
  const path = join(sharedDir(), "upstream", rel);
  try {
    Deno.statSync(path);
    return path;
  } catch {
    // absent: fall through to the notice
  }
  if (!noticed.has(rel)) {
    noticed.add(rel);
    console.warn(`NOTICE: ${path} is absent (set ISOLOAD_SHARED to the shared kit): skipping ${what}`);
  }
  return undefined;
}
