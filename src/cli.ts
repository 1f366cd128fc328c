/**
 * The command line: common options, help rendering, parsing and dispatch.
 * Each command's options, help, usage rules (`parse`) and run live in its own
 * file under commands/; commands never see the argument parser.
 */
import { parseArgs } from "node:util";
import type { Command, OptionSpec, Values } from "./commands/_command.ts";
import { inspectCommand } from "./commands/inspect.ts";
import { loadCommand } from "./commands/load.ts";
import { machineConfigsCommand } from "./commands/machine_configs.ts";
import { mirrorConfigCommand } from "./commands/mirror_config.ts";
import { registriesConfCommand } from "./commands/registries_conf.ts";
import { serveCommand } from "./commands/serve.ts";
import { statusCommand } from "./commands/status.ts";
import { tlsCommand } from "./commands/tls.ts";
import { unitsCommand } from "./commands/units.ts";
import { verifyCommand } from "./commands/verify.ts";
import { waitCommand } from "./commands/wait.ts";
import { describeError, ExitCode, IsoloadError, UsageError } from "./util/errors.ts";
import { consoleLogger, type Logger } from "./util/log.ts";

/** Options every command takes. */
const COMMON: Record<string, OptionSpec> = {
  quiet: { type: "boolean", short: "q", help: "Print only warnings and errors." },
  "log-format": { type: "string", arg: "FORMAT", default: "text", help: "text, or json: one JSON object a line on stderr." },
  help: { type: "boolean", short: "h", help: "Show this help." },
};

/** The commands, in the order help lists them. */
// deno-lint-ignore no-explicit-any
export const COMMANDS: Record<string, Command<any>> = {
  inspect: inspectCommand,
  load: loadCommand,
  serve: serveCommand,
  "registries-conf": registriesConfCommand,
  wait: waitCommand,
  tls: tlsCommand,
  units: unitsCommand,
  status: statusCommand,
  verify: verifyCommand,
  "mirror-config": mirrorConfigCommand,
  "machine-configs": machineConfigsCommand,
};

function optionHelp(name: string, o: OptionSpec): string {
  const flag = `${o.short ? `-${o.short}, ` : ""}--${name}${o.arg ? ` ${o.arg}` : ""}`;
  const def = o.default ? ` (default: ${o.default})` : "";
  return `  ${flag.padEnd(28)} ${o.help}${def}`;
}

/** The help text of one command. */
export function commandHelp(name: string): string {
  const c = COMMANDS[name];
  return [
    `isoload ${name}: ${c.summary}`,
    "",
    `Usage: ${c.usage}`,
    "",
    c.description,
    "",
    "Options:",
    ...Object.entries({ ...c.options, ...COMMON }).map(([n, o]) => optionHelp(n, o)),
    "",
    "Examples:",
    ...c.examples.map((e) => `  ${e}`),
    "",
  ].join("\n");
}

/** The top-level help text. */
export function mainHelp(): string {
  return [
    "isoload: make the container images of an install ISO pullable on every host that boots it, offline.",
    "",
    "Usage: isoload <command> [options]",
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(15)} ${c.summary}`),
    "",
    "Run 'isoload <command> --help' for a command's options.",
    "",
    "Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input, 4 bad configuration file, 5 host failure",
    "(tool, disk, registry), 6 timeout, 7 data directory busy, 130 interrupted.",
    "",
    "Example:",
    "  isoload load mirror_000001.tar --data-dir /var/lib/isoload && isoload serve --data-dir /var/lib/isoload --registry-command /usr/bin/docker-registry",
    "",
  ].join("\n");
}

function out(text: string, err = false): void {
  (err ? Deno.stderr : Deno.stdout).writeSync(new TextEncoder().encode(text));
}

/** A command line parsed: the command's typed options and the common ones. */
export interface ParsedCommandLine<O = unknown> {
  options: O;
  quiet: boolean;
  logFormat: "text" | "json";
}

/**
 * Parses one command's arguments and applies every usage rule (the command's
 * `parse`), before any work: a UsageError, "help", or the options to run with.
 */
export function parseCommandLine(name: string, args: string[]): ParsedCommandLine | "help" {
  const cmd = COMMANDS[name];
  if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {};
  for (const [n, o] of Object.entries({ ...cmd.options, ...COMMON })) {
    options[n] = { type: o.type, multiple: o.multiple === true, ...(o.short ? { short: o.short } : {}) };
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    // node:util's messages run on ("To specify a positional argument…"): the first sentence is the cause.
    throw new UsageError((e as Error).message.split("\n")[0].split(". ")[0]);
  }
  const values = parsed.values as Values;
  if (values.help) return "help";
  if (cmd.positionals >= 0 && parsed.positionals.length !== cmd.positionals) {
    throw new UsageError(
      cmd.positionals
        ? `expected ${cmd.positionals} argument (SOURCE), got ${parsed.positionals.length}`
        : `unexpected argument ${JSON.stringify(parsed.positionals[0])}`,
    );
  }
  const logFormat = values["log-format"] ?? "text";
  if (logFormat !== "text" && logFormat !== "json") {
    throw new UsageError(`--log-format must be text or json, got ${JSON.stringify(logFormat)}`);
  }
  return { options: cmd.parse(values, parsed.positionals), quiet: values.quiet === true, logFormat };
}

/** Runs the CLI and returns the exit code. */
export async function runCli(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    if (name === "help" && rest[0] && COMMANDS[rest[0]]) out(commandHelp(rest[0]));
    else out(mainHelp());
    return name ? ExitCode.ok : ExitCode.usage;
  }
  if (name === "--version") {
    out("isoload 0.1.0\n");
    return ExitCode.ok;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    out(`isoload: unknown command ${JSON.stringify(name)}\nRun 'isoload --help' for the list of commands.\n`, true);
    return ExitCode.usage;
  }
  // Until the options are parsed, a --log-format json anywhere still gets JSON errors.
  const early = rest.some((a, i) => a === "--log-format=json" || (a === "--log-format" && rest[i + 1] === "json")) ? "json" : "text";
  let log: Logger = consoleLogger(false, early, name);
  try {
    const parsed = parseCommandLine(name, rest);
    if (parsed === "help") {
      out(commandHelp(name));
      return ExitCode.ok;
    }
    log = consoleLogger(parsed.quiet, parsed.logFormat, name);
    const opts = parsed.options;
    return await cmd.run(opts, log);
  } catch (e) {
    if (e instanceof UsageError) {
      log.error(e.message, e.exitCode);
      if (early === "text") out(`Usage: ${cmd.usage}\nRun 'isoload ${name} --help' for details.\n`, true);
      return e.exitCode;
    }
    if (e instanceof IsoloadError) {
      log.error(describeError(e), e.exitCode);
      return e.exitCode;
    }
    log.error(`internal error: ${describeError(e)}`, ExitCode.internal);
    if (Deno.env.get("ISOLOAD_DEBUG")) console.error(e);
    return ExitCode.internal;
  }
}
