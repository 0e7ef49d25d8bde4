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

/**
 * Characters that can forge or disguise a log line when a peer smuggles them in:
 * C0 controls (line breaks, ESC for terminal sequences), DEL, C1 controls
 * (0x85 is a line break, 0x9b a CSI), the Unicode line/paragraph separators and
 * the bidi overrides/isolates/marks that reorder what a reader sees.
 */
const UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** {@link UNSAFE} but C0: what JSON.stringify leaves raw (its C0 outside strings is indentation). */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const SHORT: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function hex(c: string, width: number): string {
  return c.charCodeAt(0).toString(16).padStart(width, '0');
}

/**
 * `text` made safe for one log line: every character of {@link UNSAFE}'s kind
 * becomes a visible escape (`\n`, `\x1b`, `\x9b`, `\u2028`), everything else
 * is kept. Backslashes are kept too, so escaping twice changes nothing and a
 * sink can escape whatever a call site already did; a peer can write the two
 * characters `\n` but never a line break.
 */
export function escapeForLog(text: string): string {
  return text.replace(
    UNSAFE,
    (c) => SHORT[c] ?? (c < '\u0100' ? `\\x${hex(c, 2)}` : `\\u${hex(c, 4)}`),
  );
}

/**
 * `value` as JSON for a log or a terminal (one line unless `indent` is given):
 * errors become `Name: message`, and the characters JSON.stringify leaves raw
 * (DEL, C1, separators, bidi) are written as `\uXXXX`, so the text stays valid
 * JSON. `{…}` if it cannot be serialised (a cycle, a BigInt).
 */
export function jsonForLog(value: unknown, indent?: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(
      value,
      (_k, v: unknown) => (v instanceof Error ? `${v.name}: ${v.message}` : v),
      indent,
    );
  } catch {
    return '{…}';
  }
  return (json ?? 'undefined').replace(UNSAFE_IN_JSON, (c) => `\\u${hex(c, 4)}`);
}

/** The console logger's line; the message and fields are escaped here, at the sink, so no call site can forget. */
function format(component: string, message: string, fields?: LogFields): string {
  const line = `[${component}] ${escapeForLog(message)}`;
  return fields === undefined ? line : `${line} ${jsonForLog(fields)}`;
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
