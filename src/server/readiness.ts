/** Readiness of a registry: `/v2/` answers and every recorded manifest is served by digest. */
import type { LoadedImage } from "../image/loaded_image.ts";
import { MANIFEST_ACCEPT } from "../image/manifest.ts";
import { runPool } from "../util/pool.ts";

/** What a probe found. */
export interface ProbeResult {
  apiUp: boolean;
  /** `repository@digest` of manifests not (yet) served. */
  missing: string[];
}

/** Every manifest a client may ask for: each image and each child of an index. */
export function expectedManifests(images: LoadedImage[]): { repository: string; digest: string }[] {
  const out: { repository: string; digest: string }[] = [];
  for (const img of images) {
    out.push({ repository: img.repository, digest: img.digest });
    for (const c of img.children ?? []) out.push({ repository: img.repository, digest: c });
  }
  return out;
}

/** Probes once. `base` is e.g. `http://127.0.0.1:22625`. */
export async function probeRegistry(
  base: string,
  manifests: { repository: string; digest: string }[],
  client?: Deno.HttpClient,
): Promise<ProbeResult> {
  const names = manifests.map((m) => `${m.repository}@${m.digest}`);
  const signal = AbortSignal.timeout(5000);
  try {
    const r = await fetch(`${base}/v2/`, { signal, client });
    await r.body?.cancel();
    if (r.status !== 200 && r.status !== 401) return { apiUp: false, missing: names };
  } catch {
    return { apiUp: false, missing: names };
  }
  const served = await runPool(manifests, 8, async (m) => {
    const r = await fetch(`${base}/v2/${m.repository}/manifests/${m.digest}`, {
      method: "HEAD",
      headers: { Accept: MANIFEST_ACCEPT },
      signal: AbortSignal.timeout(5000),
      client,
    });
    await r.body?.cancel();
    return r.status === 200;
  });
  const missing = names.filter((_, i) => !(served[i].ok && served[i].value));
  return { apiUp: true, missing: missing.sort() };
}

/** How a wait ended. */
export interface WaitOutcome {
  ready: boolean;
  last: ProbeResult;
  waitedMs: number;
}

/**
 * Probes until every manifest is served, `timeoutMs` passes or `stopped()`
 * says so; reports progress through `report` every `everyMs`.
 */
export async function waitUntilServed(
  base: string,
  manifests: { repository: string; digest: string }[],
  opts: { timeoutMs: number; client?: Deno.HttpClient; report: (last: ProbeResult) => void; everyMs?: number; stopped?: () => boolean },
): Promise<WaitOutcome> {
  const started = performance.now();
  let lastReport = 0;
  let last: ProbeResult = { apiUp: false, missing: [] };
  while (!opts.stopped?.()) {
    last = await probeRegistry(base, manifests, opts.client);
    const waitedMs = performance.now() - started;
    if (last.apiUp && last.missing.length === 0) return { ready: true, last, waitedMs };
    if (waitedMs > opts.timeoutMs) return { ready: false, last, waitedMs };
    if (waitedMs - lastReport > (opts.everyMs ?? 5000)) {
      lastReport = waitedMs;
      opts.report(last);
    }
    await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(200, waitedMs / 20))));
  }
  return { ready: false, last, waitedMs: performance.now() - started };
}

/** One line saying what a probe still lacks. */
export function describeProbe(base: string, last: ProbeResult, total: number): string {
  return last.apiUp
    ? `${last.missing.length} of ${total} manifests not served (first: ${last.missing[0]})`
    : `${base}/v2/ does not answer, so none of the ${total} manifests is confirmed (first: ${last.missing[0]})`;
}

/** The address to probe for a listen address: a wildcard host is probed on loopback. */
export function probeAddress(listen: string): string {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i);
  const port = listen.slice(i + 1);
  if (host === "" || host === "0.0.0.0") return `127.0.0.1:${port}`;
  if (host === "[::]") return `[::1]:${port}`;
  return listen;
}
