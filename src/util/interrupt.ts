/**
 * SIGTERM and SIGINT during long work: the work stops at its next chunk,
 * cleans its temp file and exits 130 with a message, instead of dying with
 * the default action mid-write (systemd sends SIGTERM on stop and shutdown).
 */
import { ExitCode, IsoloadError } from "./errors.ts";

/** The work was stopped by a signal. */
export class InterruptedError extends IsoloadError {
  constructor(message: string) {
    super(message, ExitCode.interrupted);
  }
}

/** An abort signal set by SIGTERM or SIGINT while `watch` is held; `dispose` restores the default action. */
export function watchInterrupts(): { signal: AbortSignal; dispose(): void } {
  const ctl = new AbortController();
  const handlers = (["SIGTERM", "SIGINT"] as const).map((sig) => {
    const h = () => ctl.abort(sig);
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  return {
    signal: ctl.signal,
    dispose() {
      for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
    },
  };
}

/** Throws InterruptedError when `signal` was aborted; `doing` says what stops ("load X"). */
export function checkInterrupt(signal: AbortSignal | undefined, doing: string): void {
  if (signal?.aborted) {
    throw new InterruptedError(
      `Cannot ${doing}: interrupted by ${signal.reason}; nothing half-written is left, run the same command again to finish`,
    );
  }
}
