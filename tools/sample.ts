/**
 * The main job on a built-in sample: make a small payload (an OCI layout
 * archive of runnable busybox images), load it, serve it with isoload's
 * built-in registry, pull an image by its source name through the written
 * registries.conf with skopeo, and say what happened. Nothing outside a temp dir.
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import { buildSampleLayout, tarDirectory } from "./payload.ts";
import { waitForV2 } from "./registry_process.ts";

const root = new URL("..", import.meta.url).pathname;
const work = await Deno.makeTempDir({ prefix: "isoload-sample-" });
const say = (s: string) => console.log(`sample: ${s}`);

async function isoload(args: string[], background = false) {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--unstable-net", join(root, "main.ts"), ...args],
    stdout: "inherit",
    stderr: "inherit",
  });
  if (background) return cmd.spawn();
  const out = await cmd.output();
  if (!out.success) throw new Error(`isoload ${args[0]} failed with exit ${out.code}`);
}

let registry: Deno.ChildProcess | undefined;
try {
  say(`building a sample payload in ${work}`);
  const fixture = await buildSampleLayout(join(work, "layout"), work);
  const archive = join(work, "sample-oci.tar");
  await tarDirectory(fixture.dir, archive);
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const data = join(work, "data");
  const conf = join(work, "registries.conf");

  say("$ isoload inspect sample-oci.tar");
  await isoload(["inspect", archive]);
  say("$ isoload load sample-oci.tar");
  await isoload(["load", archive, "--data-dir", data, "--mirror", `127.0.0.1:${port}`, "--registries-conf", conf]);
  say("$ isoload serve --data-dir data (the built-in registry, in the background)");
  registry = await isoload(["serve", "--data-dir", data, "--listen", `127.0.0.1:${port}`], true) as Deno.ChildProcess;
  await waitForV2(`127.0.0.1:${port}`, 30_000);
  await new Promise((r) => setTimeout(r, 500));
  const img = fixture.images[0];
  const ref = `${img.source}@${img.digest}`;
  say(`$ skopeo --registries-conf registries.conf copy docker://${ref} dir:pulled`);
  const pull = await new Deno.Command("skopeo", {
    args: ["--registries-conf", conf, "copy", "--quiet", `docker://${ref}`, `dir:${join(work, "pulled")}`],
  }).output();
  if (!pull.success) throw new Error(`skopeo failed: ${new TextDecoder().decode(pull.stderr)}`);
  const got = `sha256:${createHash("sha256").update(await Deno.readFile(join(work, "pulled", "manifest.json"))).digest("hex")}`;
  if (got !== img.digest) throw new Error(`digest mismatch: pulled ${got}, expected ${img.digest}`);
  say(`pulled ${ref} through 127.0.0.1:${port} with no route to quay.io; manifest digest matches.`);
  say("the registries.conf that made it work:");
  console.log((await Deno.readTextFile(conf)).split("\n").slice(0, 12).join("\n"));
  say("OK");
} catch (e) {
  console.error(`sample: FAILED: ${(e as Error).message}`);
  Deno.exitCode = 1;
} finally {
  if (registry) {
    registry.kill("SIGTERM");
    await registry.status;
  }
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
