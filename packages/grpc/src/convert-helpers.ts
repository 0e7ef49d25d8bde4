/** Converters (see convert.ts): small shared helpers (bytes, headers, timestamps, JSON text). */
import { type Headers, headerMap, putOwn } from '@picket/protocol';
import type { IHeader } from './proto.js';

// ---------------------------------------------------------------- small helpers

/** A plain Uint8Array view (protobufjs hands out Buffers that share the frame's memory). */
export function bytes(b: Uint8Array | null | undefined): Uint8Array {
  if (!b) return new Uint8Array(0);
  return Buffer.isBuffer(b) ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : b;
}

/** Headers map → repeated Header, one entry per value, in map order. */
export function headersToProto(h: Headers | null | undefined): IHeader[] {
  const out: IHeader[] = [];
  if (!h) return out;
  for (const name of Object.keys(h)) {
    const values = h[name];
    if (!values) continue;
    for (const value of values) out.push(header(name, value));
  }
  return out;
}

/** repeated Header → headers map (values of a repeated name collected in order). */
export function headersFromProto(list: readonly IHeader[] | null | undefined): Headers {
  const out: Headers = headerMap();
  if (!list) return out;
  for (let i = 0; i < list.length; i++) {
    const h = list[i] as IHeader;
    addHeader(out, h.name ?? '', h.value ?? '');
  }
  return out;
}

/**
 * Adds a header value. Names are whatever the peer sent: `constructor`, `toString` or
 * `__proto__` must become own entries like any other, not reach Object.prototype.
 */
export function addHeader(out: Headers, name: string, value: string): void {
  const prev = out[name];
  if (prev !== undefined && Object.hasOwn(out, name)) prev.push(value);
  else putOwn(out, name, [value]);
}

export function header(name: string, value: string): IHeader {
  const h: IHeader = {};
  if (name) h.name = name;
  if (value) h.value = value;
  return h;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})$/;
const EPOCH_MS = /^\d{1,16}$/;

/**
 * The metadata `timestamp` as epoch ms: RFC 3339 text is parsed (Rust sends "now"
 * instead; the event's own time is more useful), a decimal string (from a gRPC hop) is
 * taken as is, anything else falls back to now.
 */
export function timestampToMs(ts: string | null | undefined, now = Date.now()): number {
  if (ts) {
    if ((typeof ts !== 'string' || ts.length <= 16) && EPOCH_MS.test(ts)) return Number(ts);
    if (RFC3339.test(ts)) {
      // the pattern allows a space only between date and time (index 10)
      const ms = Date.parse(ts.charCodeAt(10) === 32 ? ts.replace(' ', 'T') : ts);
      if (Number.isFinite(ms) && ms >= 0) return ms;
    }
  }
  return now;
}

/** JSON text of any value; `undefined` / unserialisable values become `null`. */
export function jsonText(v: unknown): string {
  // numbers and booleans print as JSON.stringify prints them (non-finite numbers as null)
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  try {
    return JSON.stringify(v) ?? 'null';
  } catch {
    return 'null';
  }
}

/** JSON.parse when it parses, else the raw text (Rust agents send JSON text, others may not). */
export function parseJsonLoose(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function strMap(m: { [k: string]: string } | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (m) for (const k of Object.keys(m)) putOwn(out, k, m[k] ?? '');
  return out;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
