import type { LogFields, Logger } from '@picket/uds';

function format(message: string, fields?: LogFields): string {
  if (fields === undefined) return `[picket/reverse] ${message}`;
  let extra: string;
  try {
    extra = JSON.stringify(fields, (_k, v: unknown) =>
      v instanceof Error ? `${v.name}: ${v.message}` : v,
    );
  } catch {
    extra = '{…}';
  }
  return `[picket/reverse] ${message} ${extra}`;
}

const noop = (): void => {};

/**
 * The default logger of this package: debug and info are dropped, warnings and
 * errors go to the console, so a refused registration or a lost proxy is never silent.
 */
export const defaultLogger: Logger = {
  debug: noop,
  info: noop,
  warn: (m, f) => console.warn(format(m, f)),
  error: (m, f) => console.error(format(m, f)),
};
