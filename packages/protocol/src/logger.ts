/** Structured context attached to a log line (connection id, agent id, reason …). */
export type LogFields = Record<string, unknown>;

/**
 * The logging surface every picket component writes to. Plug in pino, winston,
 * `console` or a test collector; each method takes a message and optional fields.
 */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

function format(component: string, message: string, fields?: LogFields): string {
  if (fields === undefined) return `[${component}] ${message}`;
  let extra: string;
  try {
    extra = JSON.stringify(fields, (_k, v: unknown) =>
      v instanceof Error ? `${v.name}: ${v.message}` : v,
    );
  } catch {
    extra = '{…}';
  }
  return `[${component}] ${message} ${extra}`;
}

const noop = (): void => {};

/** Drops everything. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/**
 * A console logger tagged `[component]`. By default debug and info are dropped
 * (per-request chatter) while warnings and errors reach the console, so a
 * misbehaving peer is never silent; `{ verbose: true }` prints everything.
 */
export function createConsoleLogger(component: string, o: { verbose?: boolean } = {}): Logger {
  return {
    debug: o.verbose ? (m, f) => console.debug(format(component, m, f)) : noop,
    info: o.verbose ? (m, f) => console.info(format(component, m, f)) : noop,
    warn: (m, f) => console.warn(format(component, m, f)),
    error: (m, f) => console.error(format(component, m, f)),
  };
}
