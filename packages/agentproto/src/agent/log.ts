/**
 * In-band agent logs: a picket Logger whose lines become Log frames (`{lvl, msg, a}`), so the
 * agent's stdout stays a pure protocol channel (spec §2.2, §2.3 step 2).
 */
import type { LogFields, Logger } from '@picket/protocol';
import { FrameType } from '../frames.js';
import type { Mux } from '../mux.js';

/** Go `slog` levels (the `lvl` field). */
export const SlogLevel = { Trace: -8, Debug: -4, Info: 0, Warn: 4, Error: 8 } as const;

function attrValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Error) return v.message;
  if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** `fields` as the wire's `k=v` strings. */
export function logAttrs(fields: LogFields | undefined): string[] | undefined {
  if (fields === undefined) return undefined;
  const out = Object.entries(fields).map(([k, v]) => `${k}=${attrValue(v)}`);
  return out.length === 0 ? undefined : out;
}

/** A Logger that sends every line as a Log frame on `mux` (best effort: a dead peer drops it). */
export function muxLogger(mux: Mux): Logger {
  const log = (lvl: number, msg: string, fields?: LogFields) => {
    const a = logAttrs(fields);
    mux
      .send({ t: FrameType.Log, l: a === undefined ? { lvl, msg } : { lvl, msg, a } })
      .catch(() => {
        // the local side is gone; nobody is left to read it
      });
  };
  return {
    debug: (m, f) => log(SlogLevel.Debug, m, f),
    info: (m, f) => log(SlogLevel.Info, m, f),
    warn: (m, f) => log(SlogLevel.Warn, m, f),
    error: (m, f) => log(SlogLevel.Error, m, f),
  };
}
