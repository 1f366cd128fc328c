/** Running the host's tools (skopeo, podman) with clear errors when they fail or are missing. */
import { EnvironmentError } from "./errors.ts";

/** Output of a finished tool run. */
export interface ToolResult {
  code: number;
  stdout: string;
  /** stdout as bytes, for output that is hashed (a manifest). */
  stdoutBytes: Uint8Array;
  stderr: string;
}

/** Runs a tool to completion; throws EnvironmentError when it cannot be started. */
export async function runTool(cmd: string, args: string[], env?: Record<string, string>, signal?: AbortSignal): Promise<ToolResult> {
  let out: Deno.CommandOutput;
  try {
    // An aborted signal sends the tool SIGTERM.
    out = await new Deno.Command(cmd, { args, env, stdin: "null", stdout: "piped", stderr: "piped", signal }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new EnvironmentError(`Cannot run ${cmd}: it is not installed (not found in PATH)`);
    throw new EnvironmentError(`Cannot run ${cmd}`, { cause: e });
  }
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stdoutBytes: out.stdout, stderr: dec.decode(out.stderr) };
}

/** The last meaningful line of a tool's stderr, for one-line messages. */
export function lastLine(text: string): string {
  const lines = text.trim().split("\n").map((l) => l.trim()).filter(Boolean);
  return (lines.at(-1) ?? "").replace(/^time="[^"]*" level=\w+ msg=/, "");
}
