/** A writable Debian docker-registry on a free loopback port, for fixtures and benchmarks. */
import { join } from "node:path";

/** Polls `http://HOST:PORT/v2/` until it answers 200, for at most `timeoutMs`. */
export async function waitForV2(hostPort: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://${hostPort}/v2/`);
      await r.body?.cancel();
      if (r.ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`registry at ${hostPort} did not answer /v2/`);
}

/** A running registry; stop() ends it. */
export interface WritableRegistry {
  port: number;
  stop(): Promise<void>;
}

/** Starts `docker-registry serve` over `root` (writable, unlike isoload's). */
export async function startWritableRegistry(root: string, work: string): Promise<WritableRegistry> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const cfg = join(work, `registry-${port}.yml`);
  await Deno.writeTextFile(
    cfg,
    `version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: "${root}"}}\nhttp: {addr: "127.0.0.1:${port}"}\n`,
  );
  const child = new Deno.Command("docker-registry", { args: ["serve", cfg], stdout: "null", stderr: "null" }).spawn();
  await waitForV2(`127.0.0.1:${port}`);
  return {
    port,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}
