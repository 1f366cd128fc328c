/**
 * isoload: makes the container images carried on an install ISO pullable on
 * the first host at boot, offline. `deno run -A main.ts <command>` behaves
 * exactly like the compiled `isoload <command>`.
 */
import { runCli } from "./src/cli.ts";

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}
