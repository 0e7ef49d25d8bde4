/** Structured fields attached to a log line (connection id, agent id, reason …). */
export type LogFields = Record<string, unknown>;

/**
 * The logger the v1 server, client and transport write to; the same shape as
 * the other picket transports' (plug in pino, console or a test collector).
 */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

function format(message: string, fields?: LogFields): string {
  if (fields === undefined) return `[picket/v1] ${message}`;
  let extra: string;
  try {
    extra = JSON.stringify(fields, (_k, v: unknown) =>
      v instanceof Error ? `${v.name}: ${v.message}` : v,
    );
  } catch {
    extra = '{…}';
  }
  return `[picket/v1] ${message} ${extra}`;
}

const noop = (): void => {};

/** Drops everything. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/**
 * The server's default: debug and info dropped, warnings and errors to the
 * console, so a connection closed for bad input is never silent.
 */
export const defaultLogger: Logger = {
  debug: noop,
  info: noop,
  warn: (m, f) => console.warn(format(m, f)),
  error: (m, f) => console.error(format(m, f)),
};

/** Everything to the console (handy while developing an agent). */
export const consoleLogger: Logger = {
  debug: (m, f) => console.debug(format(m, f)),
  info: (m, f) => console.info(format(m, f)),
  warn: (m, f) => console.warn(format(m, f)),
  error: (m, f) => console.error(format(m, f)),
};
