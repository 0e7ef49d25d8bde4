/**
 * Small HTTP helpers: header maps, hop-by-hop stripping, header ops,
 * traceparent, client address, timestamps.
 */
import { randomFillSync } from 'node:crypto';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { type HeaderOp, type Headers, headerMap, putOwn } from '@picket/protocol';

/** Connection-level headers that are never forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

// Header names come from clients and agents: every write goes through `putOwn` and every
// read through `own`, so names like `__proto__` or `constructor` stay plain entries.

/** The values of header `name`, when the map has it as its own entry. */
function own(h: Headers, name: string): string[] | undefined {
  return Object.hasOwn(h, name) ? h[name] : undefined;
}

// The per-request loops below go over Object.keys (one array) rather than Object.entries
// (an array per header as well): these maps are copied on every request.

/** A deep copy of a header map. */
export function cloneHeaders(h: Headers): Headers {
  const out: Headers = headerMap();
  for (const k of Object.keys(h)) putOwn(out, k, [...(h[k] as string[])]);
  return out;
}

/** Node/undici header object → protocol header map (lower-case names, every value a list). */
export function toHeaderMap(h: Record<string, string | string[] | undefined>): Headers {
  const out: Headers = headerMap();
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    putOwn(out, k.toLowerCase(), Array.isArray(v) ? [...v] : [v]);
  }
  return out;
}

/**
 * Names a peer's `Connection` header may not declare hop-by-hop: the message
 * framing (the engine frames each hop itself), Host, and what the engine adds.
 */
function protectedName(name: string): boolean {
  return (
    name === 'host' ||
    name === 'content-length' ||
    name === 'transfer-encoding' ||
    name === 'traceparent' ||
    name === 'x-request-id' ||
    name.startsWith('x-forwarded-')
  );
}

/**
 * A peer's header object (Node's or undici's) → a protocol header map in one pass: names
 * lower-cased, every value a list, hop-by-hop headers and those the `Connection` header
 * names (except protected ones) removed. Apply it to what a peer sent, before the engine or
 * an agent adds anything, so a peer can only remove its own headers. Value lists are the
 * source's own arrays where it had them (the engine replaces a list, never edits it).
 */
export function stripHopByHop(h: Record<string, string | string[] | undefined>): Headers {
  const out: Headers = headerMap(); // a request's 20-odd headers stay a fast object
  let connection: string[] | undefined;
  for (const key of Object.keys(h)) {
    const v = h[key];
    if (v === undefined) continue;
    const k = key.toLowerCase();
    const values = Array.isArray(v) ? v : [v];
    if (HOP_BY_HOP.has(k)) {
      if (k === 'connection') connection = connection ? [...connection, ...values] : values;
    } else putOwn(out, k, values);
  }
  // the Connection header names headers that are its sender's own hop-by-hop fields
  for (const v of connection ?? []) {
    for (const token of v.split(',')) {
      const name = token.trim().toLowerCase();
      if (!protectedName(name) && Object.hasOwn(out, name)) delete out[name];
    }
  }
  return out;
}

/**
 * Drops the fixed hop-by-hop names (an agent may have set one) in place; `Connection` tokens
 * are not read (they would name what the engine and agents added).
 */
export function dropHopByHopFields(h: Headers): void {
  for (const k of HOP_BY_HOP) if (Object.hasOwn(h, k)) delete h[k];
}

/** Sets or removes `content-length`: the engine, not a header op, decides the framing. */
export function setContentLength(h: Headers, length: string | undefined): void {
  if (length === undefined) delete h['content-length'];
  else h['content-length'] = [length];
}

/** Whether a header name/value pair may be written (no CR/LF, a token name). */
export function validHeader(name: string, value?: string): boolean {
  try {
    validateHeaderName(name);
    if (value !== undefined) validateHeaderValue(name, value);
    return true;
  } catch {
    return false;
  }
}

/**
 * Applies agent header ops in order: `set` replaces every value, `add`
 * appends one, `remove` deletes. Names are case-insensitive. Ops with an
 * invalid name or value are skipped and reported through `onInvalid`.
 */
export function applyHeaderOps(
  h: Headers,
  ops: readonly HeaderOp[],
  onInvalid?: (op: HeaderOp) => void,
): void {
  for (const op of ops) {
    if ('set' in op) {
      const { name, value } = op.set;
      if (!validHeader(name, value)) onInvalid?.(op);
      else putOwn(h, name.toLowerCase(), [value]);
    } else if ('add' in op) {
      const { name, value } = op.add;
      if (!validHeader(name, value)) onInvalid?.(op);
      else {
        const key = name.toLowerCase();
        putOwn(h, key, [...(own(h, key) ?? []), value]);
      }
    } else if ('remove' in op) {
      if (!validHeader(op.remove.name)) onInvalid?.(op);
      else delete h[op.remove.name.toLowerCase()];
    }
  }
}

/**
 * Header map → the flat object Node's `writeHead` / undici take. Hop-by-hop names (an agent
 * may have set one) are left out; `Connection` tokens are not read.
 */
export function toOutgoing(h: Headers): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k of Object.keys(h)) {
    const v = h[k] as string[];
    if (v.length === 0 || HOP_BY_HOP.has(k)) continue;
    // Node and undici only accept one value for these
    putOwn(out, k, v.length === 1 || k === 'content-length' || k === 'host' ? (v[0] as string) : v);
  }
  return out;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Validates a W3C `traceparent` (version 00 layout; `ff` version and all-zero
 * ids are invalid). Returns the normalised value or undefined.
 */
export function parseTraceparent(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  const m = TRACEPARENT.exec(v);
  if (!m) return undefined;
  if (m[1] === 'ff' || /^0+$/.test(m[2] as string) || /^0+$/.test(m[3] as string)) return undefined;
  return v;
}

// Entropy for traceparents, drawn 4 KiB at a time: one randomFillSync per ~170 requests
// instead of two trips into OpenSSL per request (as randomUUID batches its own).
const ENTROPY = Buffer.alloc(4096);
let entropyUsed = ENTROPY.length;

/** A fresh sampled traceparent: `00-<trace id>-<span id>-01` (16 + 8 random bytes). */
export function newTraceparent(): string {
  if (entropyUsed + 24 > ENTROPY.length) {
    randomFillSync(ENTROPY);
    entropyUsed = 0;
  }
  const hex = ENTROPY.toString('hex', entropyUsed, entropyUsed + 24);
  entropyUsed += 24;
  return `00-${hex.slice(0, 32)}-${hex.slice(32)}-01`;
}

/** The client address without the IPv4-mapped IPv6 prefix. */
export function normaliseIp(ip: string | undefined): string {
  if (!ip) return '';
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? (m[1] as string) : ip;
}

/** First address of an `X-Forwarded-For`-style list (`a, b, c` ⇒ `a`), or undefined. */
export function firstForwardedAddress(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  const first = v?.split(',')[0]?.trim();
  return first ? normaliseIp(first) : undefined;
}

let nowSecond = -1;
let nowPrefix = '';

/**
 * RFC 3339 timestamp with a `+00:00` offset, as the Rust proxy's chrono `to_rfc3339()` writes
 * it; without `date`, now (the date and time up to the second are formatted once per second).
 */
export function rfc3339(date?: Date): string {
  if (date !== undefined) return `${date.toISOString().slice(0, -1)}+00:00`;
  const ms = Date.now();
  const second = Math.floor(ms / 1000);
  if (second !== nowSecond) {
    nowSecond = second;
    nowPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  return `${nowPrefix}.${String(ms - second * 1000).padStart(3, '0')}+00:00`;
}
