/**
 * A logger that fits every picket package's logger shape (`{ debug, info, warn, error }
 * (message, fields?)`) and keeps only what the harness needs, so a run of 100 000 cases
 * does not grow the heap it is measuring: counters per level, a bounded ring of recent
 * lines for diagnostics, and a callback that lets each target classify lines (e.g. "this
 * is a close reason for connection X").
 */

/** Severity of a log line. */
export type Level = 'debug' | 'info' | 'warn' | 'error';

/** One captured line. */
export interface LogEntry {
  level: Level;
  message: string;
  fields?: Record<string, unknown>;
}

/** The logger plus what it captured. */
export interface CaptureLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** lines per level */
  readonly counts: Record<Level, number>;
  /** the last `ringSize` lines */
  recent(): LogEntry[];
  /** lines that contained a forbidden string (e.g. a secret token) */
  readonly leaks: LogEntry[];
}

/** Options of {@link captureLogger}. */
export interface CaptureLoggerOptions {
  /** called for every line, before it goes into the ring */
  onEntry?: (entry: LogEntry) => void;
  /** how many recent lines to keep; default 200 */
  ringSize?: number;
  /** strings that must never appear in a log line (checked on the serialised line) */
  forbidden?: readonly string[];
  /** also print lines at or above this level to stderr */
  echo?: Level;
}

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Serialises a line the way a JSON log shipper would (errors as their message). */
export function renderEntry(e: LogEntry): string {
  let fields = '';
  if (e.fields !== undefined) {
    try {
      fields = ` ${JSON.stringify(e.fields, (_k, v: unknown) =>
        v instanceof Error ? `${v.name}: ${v.message}` : typeof v === 'bigint' ? String(v) : v,
      )}`;
    } catch {
      fields = ' {…}';
    }
  }
  return `${e.level} ${e.message}${fields}`;
}

/** Creates a {@link CaptureLogger}. */
export function captureLogger(options: CaptureLoggerOptions = {}): CaptureLogger {
  const ringSize = options.ringSize ?? 200;
  const ring: LogEntry[] = [];
  const counts: Record<Level, number> = { debug: 0, info: 0, warn: 0, error: 0 };
  const leaks: LogEntry[] = [];
  const forbidden = options.forbidden ?? [];
  const at =
    (level: Level) =>
    (message: string, fields?: Record<string, unknown>): void => {
      const entry: LogEntry =
        fields === undefined ? { level, message } : { level, message, fields };
      counts[level]++;
      if (forbidden.length > 0) {
        const text = renderEntry(entry);
        if (forbidden.some((s) => text.includes(s)) && leaks.length < 100) leaks.push(entry);
      }
      options.onEntry?.(entry);
      if (options.echo !== undefined && ORDER[level] >= ORDER[options.echo]) {
        process.stderr.write(`${renderEntry(entry)}\n`);
      }
      ring.push(entry);
      if (ring.length > ringSize) ring.shift();
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    counts,
    recent: () => [...ring],
    leaks,
  };
}
