/**
 * Messages for people and journald: one line each, on stderr, no colour or
 * escape codes unless stderr is a terminal. Results go to stdout.
 */

/** Structured facts a progress line carries, for --log-format json. */
export interface ProgressFields {
  done: number;
  total: number;
  percent: number;
  ratePerSec?: number;
  etaSec?: number;
  current?: string;
}

/** Where isoload's messages go. */
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  /** A progress line: rewritten in place on a TTY, printed as-is otherwise. */
  progress(msg: string, fields?: ProgressFields): void;
  /** Ends a live progress line so the next message starts clean. */
  endProgress(): void;
  /** The final error of a command, with its exit code. */
  error(msg: string, exitCode: number): void;
}

const enc = new TextEncoder();

/** How lines are written: for people (text) or for machines (one JSON object a line). */
export type LogFormat = "text" | "json";

/**
 * The logger for the console; `quiet` keeps only warnings and errors. Text on
 * a TTY rewrites one live progress line; text elsewhere (journald) and JSON
 * never carry escape codes.
 */
export function consoleLogger(quiet = false, format: LogFormat = "text", command = ""): Logger {
  const tty = format === "text" && Deno.stderr.isTerminal();
  let live = false;
  const write = (s: string) => Deno.stderr.writeSync(enc.encode(s));
  const json = (level: string, msg: string, extra: Record<string, unknown> = {}) =>
    write(JSON.stringify({ time: new Date().toISOString(), level, command, msg, ...extra }) + "\n");
  const endProgress = () => {
    if (live) write("\n");
    live = false;
  };
  return {
    info(msg) {
      if (quiet) return;
      endProgress();
      if (format === "json") json("info", msg);
      else write(`${msg}\n`);
    },
    warn(msg) {
      endProgress();
      if (format === "json") json("warning", msg);
      else write(`warning: ${msg}\n`);
    },
    progress(msg, fields) {
      if (quiet) return;
      if (format === "json") json("progress", msg, fields ? { progress: fields } : {});
      else if (tty) {
        write(`\r\x1b[2K${msg}`);
        live = true;
      } else write(`${msg}\n`);
    },
    endProgress,
    error(msg, exitCode) {
      endProgress();
      if (format === "json") json("error", msg, { exitCode });
      else write(`${command ? `isoload ${command}: ` : "isoload: "}${msg}\n`);
    },
  };
}

/** "1.5 GB" style sizes (decimal units, as disks are sold). */
export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

/** "3.2s" / "2m05s". */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/**
 * How long work runs before it reports progress: 1 s, so short work prints only its summary.
 * ISOLOAD_PROGRESS_AFTER_MS changes it, so the tests of progress lines do not depend on how fast a load is.
 */
function quietStartMs(): number {
  const text = Deno.env.get("ISOLOAD_PROGRESS_AFTER_MS");
  const ms = Number(text);
  return text && Number.isFinite(ms) && ms >= 0 ? ms : 1000;
}

/**
 * Throttled progress for a byte count: at most one line per `everyMs`
 * (plain output also every 10%), with rate and ETA.
 */
export function byteProgress(log: Logger, label: string, total: number, everyMs = 5000): (done: number, what: string) => void {
  const start = performance.now();
  const quietMs = quietStartMs();
  let lastAt = 0;
  let lastPct = -10;
  const tty = Deno.stderr.isTerminal();
  return (done, what) => {
    const now = performance.now();
    const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
    // Short work gets no progress at all: the summary line says enough.
    if (now - start < quietMs) return;
    const due = tty ? now - lastAt >= 200 : now - lastAt >= everyMs || pct >= lastPct + 10;
    if (!due && done < total) return;
    if (done >= total && lastPct >= 100) return;
    lastAt = now;
    lastPct = pct;
    const secs = (now - start) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const eta = rate > 0 && total > done ? ` ETA ${formatDuration(((total - done) / rate) * 1000)}` : "";
    const current = what.replace(/^(.*\/)?(blobs\/sha256\/)([0-9a-f]{12})[0-9a-f]{52}/, "$2$3…");
    log.progress(
      `${label}: ${pct}% ${formatBytes(done)}/${formatBytes(total)} ${formatBytes(rate)}/s${eta}${current ? ` ${current}` : ""}`,
      {
        done,
        total,
        percent: pct,
        ratePerSec: Math.round(rate),
        etaSec: rate > 0 ? Math.round((total - done) / rate) : undefined,
        current: what || undefined,
      },
    );
  };
}
