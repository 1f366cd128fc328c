/**
 * Errors isoload callers catch, each with the exit code the CLI gives it.
 * Exit codes are part of the contract (README "Exit codes"): keep them stable.
 */

/** Stable process exit codes. */
export const ExitCode = {
  ok: 0,
  /** A bug: an error isoload did not expect. */
  internal: 1,
  /** Bad command line. */
  usage: 2,
  /** The archive or directory given is unreadable, malformed or does not verify. */
  badInput: 3,
  /** A registries.conf or other configuration file is malformed or would become invalid. */
  badConfig: 4,
  /** The host failed us: a tool missing or failing, disk full, the registry died. */
  environment: 5,
  /** A wait ran out of time: the registry never became ready. */
  timeout: 6,
  /** Another isoload run holds the data directory. */
  busy: 7,
  /** Stopped by SIGTERM or SIGINT. */
  interrupted: 130,
} as const;

/** Base of every error isoload reports as one line and a stable exit code. */
export class IsoloadError extends Error {
  /** The process exit code for this error. */
  readonly exitCode: number;
  constructor(message: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** The command line is wrong; the CLI prints a help hint and exits 2. */
export class UsageError extends IsoloadError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.usage, options);
  }
}

/** The input (archive, directory, records) is malformed or does not verify. */
export class InputError extends IsoloadError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.badInput, options);
  }
}

/** A configuration file is malformed, or the change would make it invalid. */
export class ConfigError extends IsoloadError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.badConfig, options);
  }
}

/** The environment failed: a tool, the disk, the registry process. */
export class EnvironmentError extends IsoloadError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.environment, options);
  }
}

/**
 * The data directory's filesystem cannot take the data: it is full, or it is
 * RAM-backed past the safe share of memory. Trying again without freeing space
 * fails the same way, so a serve that copies in the background keeps serving
 * rather than restarting into the same failure.
 */
export class NoRoomError extends EnvironmentError {}

/** Whether `err` or any error in its chain of causes is a `cls`. */
export function causedBy(err: unknown, cls: abstract new (...args: never[]) => Error): boolean {
  let cur = err;
  while (cur instanceof Error) {
    if (cur instanceof cls) return true;
    cur = (cur as Error).cause;
  }
  return false;
}

/** Waiting for readiness ran out of time. */
export class TimeoutError extends IsoloadError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.timeout, options);
  }
}

/** Another run holds the lock. */
export class BusyError extends IsoloadError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.busy, options);
  }
}

/** One line describing an error and its causes, for logs and stderr. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && depth < 5; depth++) {
    const msg = cur instanceof Error ? cur.message : String(cur);
    if (msg && !parts.some((p) => p.includes(msg))) parts.push(msg);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(": ").replaceAll("\n", " ");
}

/** Maps an OS error to our classes: ENOSPC and friends are the host's fault. */
export function wrapFsError(action: string, err: unknown): IsoloadError {
  if (err instanceof IsoloadError) return err;
  const code = (err as { code?: string })?.code ?? "";
  const name = (err as Error)?.name ?? "";
  if (code === "ENOSPC" || /No space left/i.test(String((err as Error)?.message))) {
    return new NoRoomError(`Cannot ${action}: no space left on device`, { cause: err });
  }
  if (name === "PermissionDenied" || code === "EACCES" || code === "EPERM") {
    return new EnvironmentError(`Cannot ${action}: permission denied`, { cause: err });
  }
  return new EnvironmentError(`Cannot ${action}`, { cause: err });
}
