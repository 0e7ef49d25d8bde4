/** Structured context attached to a log line (connection id, agent id, correlation id …). */
export type LogFields = Record<string, unknown>;

/**
 * The logging surface every picket UDS component writes to. Plug in pino, winston,
 * console or a test collector; each method takes a message and optional fields.
 */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

function format(message: string, fields?: LogFields): string {
  if (fields === undefined) return `[picket/uds] ${message}`;
  let extra: string;
  try {
    extra = JSON.stringify(fields, (_k, v: unknown) =>
      v instanceof Error ? `${v.name}: ${v.message}` : v,
    );
  } catch {
    extra = '{…}';
  }
  return `[picket/uds] ${message} ${extra}`;
}

const noop = (): void => {};

/** Drops everything. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/**
 * The default: debug and info are dropped (they are per-request chatter), warnings
 * and errors go to `console.warn` / `console.error`, so a misbehaving peer is never silent.
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
