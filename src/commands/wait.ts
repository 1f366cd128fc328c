/** `isoload wait`: until host0's registry serves every expected manifest, or a timeout. */
import { installedCa } from "../host/ca_install.ts";
import { TimeoutError } from "../util/errors.ts";
import type { Expected } from "../host/expect.ts";
import { formatDuration, type Logger } from "../util/log.ts";
import { describeProbe, expectedManifests, waitUntilServed } from "../server/readiness.ts";

/** Options of `isoload wait`. */
export interface WaitOptions {
  mirror: string;
  /** Where a CA installed by registries-conf is looked for when the list carries none. */
  certsDir: string;
  timeoutMs: number;
}

/** Waits; resolves once everything is served, throws TimeoutError naming what is missing. */
export async function waitForRegistry(expected: Expected, opts: WaitOptions, log: Logger): Promise<void> {
  const ca = expected.ca ?? await installedCa(opts.certsDir, opts.mirror);
  const base = `${ca ? "https" : "http"}://${opts.mirror}`;
  const client = ca ? Deno.createHttpClient({ caCerts: [ca] }) : undefined;
  const manifests = expectedManifests(expected.images);
  log.info(
    `Waiting for ${base} to serve ${manifests.length} manifests of ${expected.images.length} images (timeout ${
      formatDuration(opts.timeoutMs)
    })`,
  );
  try {
    const outcome = await waitUntilServed(base, manifests, {
      timeoutMs: opts.timeoutMs,
      client,
      report: (last) => log.progress(`Waiting for ${base}: ${describeProbe(base, last, manifests.length)}`),
    });
    log.endProgress();
    if (!outcome.ready) {
      throw new TimeoutError(
        `Cannot wait for ${base}: not ready after ${formatDuration(outcome.waitedMs)}: ${
          describeProbe(base, outcome.last, manifests.length)
        }`,
      );
    }
    log.info(`${base} serves all ${manifests.length} manifests (after ${formatDuration(outcome.waitedMs)})`);
  } finally {
    client?.close();
  }
}
