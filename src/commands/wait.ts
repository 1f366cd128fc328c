/** `isoload wait`: until host0's registry serves every expected manifest, or a timeout. */
import { installedCa } from "../host/ca_install.ts";
import { ExitCode, TimeoutError } from "../util/errors.ts";
import { type Command, expectFrom, parseDuration, parseHostPort, required, str } from "./_command.ts";
import { DEFAULT_CERTS_DIR } from "../host/ca_install.ts";
import { type Expected, type ExpectFrom, readExpected } from "../host/expect.ts";
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

/** What `isoload wait` was asked. */
export interface WaitCliOptions extends WaitOptions {
  from: ExpectFrom;
}

/** `isoload wait --mirror HOST:PORT (--data-dir DIR | --expect FILE)`. */
export const waitCommand: Command<WaitCliOptions> = {
  summary: "Wait until host0's registry serves every expected image",
  usage: "isoload wait --mirror HOST:PORT (--data-dir DIR | --expect FILE) [--certs-dir DIR] [--timeout DURATION]",
  description: "Probes the registry at HOST:PORT until /v2/ answers and every expected manifest (each image, and each\n" +
    "platform manifest of an index) is served by digest; prints progress while waiting. Exits 0 when all are\n" +
    "served, 6 on timeout naming what was missing. Uses HTTPS when the list carries the registry's CA or one is\n" +
    "installed in --certs-dir, plain HTTP otherwise.",
  options: {
    mirror: { type: "string", arg: "HOST:PORT", help: "Address of host0's registry." },
    "data-dir": { type: "string", arg: "DIR", help: "host0's data directory (on host0 itself)." },
    expect: { type: "string", arg: "FILE", help: "The image list exported from host0 (isoload inspect --json DIR)." },
    "certs-dir": { type: "string", arg: "DIR", default: DEFAULT_CERTS_DIR, help: "Where a CA installed by registries-conf is found." },
    timeout: { type: "string", arg: "DURATION", default: "30m", help: "How long to wait (90s, 5m, 1h, …)." },
  },
  examples: [
    "isoload wait --mirror 192.168.111.20:22625 --expect /etc/isoload/images.json --timeout 1h",
    "isoload wait --mirror 127.0.0.1:22625 --data-dir /var/lib/isoload --timeout 2m",
  ],
  positionals: 0,
  parse(v) {
    const from = expectFrom(v);
    return {
      from,
      mirror: parseHostPort(required(v, "mirror"), "--mirror"),
      certsDir: str(v, "certs-dir") ?? DEFAULT_CERTS_DIR,
      timeoutMs: parseDuration(str(v, "timeout") ?? "30m", "--timeout"),
    };
  },
  async run(o, log) {
    await waitForRegistry(await readExpected(o.from, "wait for the registry"), o, log);
    return ExitCode.ok;
  },
};
