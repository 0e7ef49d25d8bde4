/**
 * A fast path for reading MessagePack payloads. It understands the shapes
 * protocol messages use (maps with string keys, arrays, strings, `bin`,
 * integers, floats, nil, booleans) and produces exactly the values
 * @msgpack/msgpack's decoder (as configured in codec.ts) produces for them.
 * Anything else — extension types, non-string keys, invalid UTF-8, a leading
 * BOM, truncated or trailing bytes, very deep nesting — makes it give up and
 * return {@link FALLBACK}, so the reference decoder decides those inputs (and
 * words every error) exactly as before.
 *
 * One deliberate difference: a `__proto__` map key (a legal HTTP header name, or
 * a key in `routing_metadata`) becomes an own entry here, where @msgpack/msgpack
 * refuses the whole payload — which would leave the message unanswerable.
 */

import {
  type AgentResponse,
  type AuditMetadata,
  type BodyMutation,
  type Decision,
  type HeaderOp,
  headerMap,
  putOwn,
  type RequestHeadersEvent,
  type RequestMetadata,
} from '@picket/protocol';

/** Returned when the fast path declines an input; decode it with the reference decoder. */
export const FALLBACK: unique symbol = Symbol('msgpack-fallback');

/** Internal signal to unwind on an input the fast path leaves to the reference decoder. */
const BAIL = new Error('fall back to the reference msgpack decoder');

/** Deeper nesting is left to the reference decoder (which uses an explicit stack). */
const MAX_FAST_DEPTH = 64;
/** Map keys up to this many bytes are interned (they repeat in every message). */
const MAX_CACHED_KEY = 32;
/** Slots of the key cache (a power of two); a slot holds the last key that hashed to it. */
const KEY_CACHE_SLOTS = 4096;

type Slice = (this: Uint8Array, start: number, end: number) => string;
const utf8Slice = (Buffer.prototype as unknown as { utf8Slice: Slice }).utf8Slice;
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice: Slice }).latin1Slice;

const keyCache = new Array<string | undefined>(KEY_CACHE_SLOTS).fill(undefined);

/** Keys remembered per position (the n-th key of a message), for {@link Reader.key}'s first guess. */
const PREDICTED_KEYS = 128;

/**
 * The keys of the last message of one kind, by position. A proxy writes every
 * message of a kind with the same keys in the same order, so comparing the bytes
 * with the key seen at the same position usually settles a key in one pass,
 * without hashing it. One list per kind: their key sequences differ.
 */
type KeyTrail = (string | undefined)[];
const newTrail = (): KeyTrail => new Array<string | undefined>(PREDICTED_KEYS).fill(undefined);
const REQUEST_HEADERS_KEYS = newTrail();
const AGENT_RESPONSE_KEYS = newTrail();
const ANY_KEYS = newTrail();

/**
 * The engine's interned copy of `s` (what a property name becomes). Cached keys are
 * interned once so that the `switch`es on them and the property stores with them
 * compare pointers instead of characters.
 */
function internalized(s: string): string {
  const o: Record<string, number> = {};
  o[s] = 0;
  for (const k in o) return k;
  return s;
}

class Reader {
  bytes: Uint8Array = new Uint8Array(0);
  /** made on first use: most messages hold no float or wide integer */
  view: DataView | undefined = undefined;
  pos = 0;
  end = 0;
  /** keys of the last message of this kind, by position; `keyIndex` counts this message's keys */
  trail: KeyTrail = ANY_KEYS;
  keyIndex = 0;

  /** Starts reading `bytes`, guessing keys from `trail`. */
  begin(bytes: Uint8Array, trail: KeyTrail): void {
    this.bytes = bytes;
    this.view = undefined;
    this.pos = 0;
    this.end = bytes.length;
    this.trail = trail;
    this.keyIndex = 0;
  }

  dv(): DataView {
    let v = this.view;
    if (v === undefined) {
      const b = this.bytes;
      v = new DataView(b.buffer, b.byteOffset, b.byteLength);
      this.view = v;
    }
    return v;
  }

  value(depth: number): unknown {
    const b = this.u8();
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b < 0x90) return this.map(b - 0x80, depth);
    if (b < 0xa0) return this.array(b - 0x90, depth);
    if (b < 0xc0) return this.str(b - 0xa0);
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.bin(this.u8());
      case 0xc5:
        return this.bin(this.u16());
      case 0xc6:
        return this.bin(this.u32());
      case 0xca: {
        this.need(4);
        const v = this.dv().getFloat32(this.pos);
        this.pos += 4;
        return v;
      }
      case 0xcb: {
        this.need(8);
        const v = this.dv().getFloat64(this.pos);
        this.pos += 8;
        return v;
      }
      case 0xcc:
        return this.u8();
      case 0xcd:
        return this.u16();
      case 0xce:
        return this.u32();
      case 0xcf: {
        this.need(8);
        const v = this.dv().getUint32(this.pos) * 4294967296 + this.dv().getUint32(this.pos + 4);
        this.pos += 8;
        return v;
      }
      case 0xd0: {
        this.need(1);
        return this.dv().getInt8(this.pos++);
      }
      case 0xd1: {
        this.need(2);
        const v = this.dv().getInt16(this.pos);
        this.pos += 2;
        return v;
      }
      case 0xd2: {
        this.need(4);
        const v = this.dv().getInt32(this.pos);
        this.pos += 4;
        return v;
      }
      case 0xd3: {
        this.need(8);
        const v = this.dv().getInt32(this.pos) * 4294967296 + this.dv().getUint32(this.pos + 4);
        this.pos += 8;
        return v;
      }
      case 0xd9:
        return this.str(this.u8());
      case 0xda:
        return this.str(this.u16());
      case 0xdb:
        return this.str(this.u32());
      case 0xdc:
        return this.array(this.u16(), depth);
      case 0xdd:
        return this.array(this.u32(), depth);
      case 0xde:
        return this.map(this.u16(), depth);
      case 0xdf:
        return this.map(this.u32(), depth);
      default:
        // 0xc1 (never used) and every extension type
        throw BAIL;
    }
  }

  need(n: number): void {
    if (this.pos + n > this.end) throw BAIL;
  }

  u8(): number {
    if (this.pos >= this.end) throw BAIL;
    return this.bytes[this.pos++] as number;
  }

  u16(): number {
    this.need(2);
    const b = this.bytes;
    const p = this.pos;
    this.pos = p + 2;
    return ((b[p] as number) << 8) | (b[p + 1] as number);
  }

  u32(): number {
    this.need(4);
    const v = this.dv().getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  bin(n: number): Uint8Array {
    this.need(n);
    const start = this.pos;
    this.pos += n;
    return this.bytes.subarray(start, start + n);
  }

  str(n: number): string {
    this.need(n);
    const start = this.pos;
    const end = start + n;
    this.pos = end;
    if (n === 0) return '';
    const bytes = this.bytes;
    // short values: cheaper in JS than a native call
    if (n <= 8) return shortAscii(bytes, start, n) ?? this.utf8(start, end);
    return this.utf8(start, end);
  }

  /** UTF-8 text; declines anything whose reference decoding could differ (invalid bytes, BOM). */
  utf8(start: number, end: number): string {
    const bytes = this.bytes;
    let any = 0;
    let i = start;
    // eight bytes a step: most of a message is header values
    for (; i + 8 <= end; i += 8) {
      any |=
        (bytes[i] as number) |
        (bytes[i + 1] as number) |
        (bytes[i + 2] as number) |
        (bytes[i + 3] as number) |
        (bytes[i + 4] as number) |
        (bytes[i + 5] as number) |
        (bytes[i + 6] as number) |
        (bytes[i + 7] as number);
    }
    for (; i < end; i++) any |= bytes[i] as number;
    // ASCII (nearly every header): latin1 decodes it the same, with no checks to make after
    if (any < 0x80) return latin1Slice.call(bytes, start, end);
    const s = utf8Slice.call(bytes, start, end);
    if (s.charCodeAt(0) === 0xfeff || s.indexOf('\ufffd') !== -1) throw BAIL;
    return s;
  }

  /** A map key: ASCII keys up to 32 bytes come from a cache, the rest are decoded. */
  key(): string {
    const n = this.strHeader(); // non-string keys: the reference decoder's rules apply
    this.need(n);
    const start = this.pos;
    const end = start + n;
    const at = this.keyIndex++;
    const guess = at < PREDICTED_KEYS ? this.trail[at] : undefined;
    if (guess !== undefined && sameAscii(guess, this.bytes, start, end)) {
      this.pos = end;
      return guess;
    }
    let key: string | undefined;
    if (n <= MAX_CACHED_KEY) {
      const bytes = this.bytes;
      let h = n;
      let ascii = true;
      for (let i = start; i < end; i++) {
        const c = bytes[i] as number;
        if (c >= 0x80) {
          ascii = false;
          break;
        }
        h = Math.imul(h ^ c, 0x01000193);
      }
      if (ascii) {
        const slot = h & (KEY_CACHE_SLOTS - 1);
        key = keyCache[slot];
        if (key === undefined || !sameAscii(key, bytes, start, end)) {
          key = internalized(latin1Slice.call(bytes, start, end));
          keyCache[slot] = key;
        }
        if (at < PREDICTED_KEYS) this.trail[at] = key;
        this.pos = end;
      }
    }
    if (key === undefined) key = this.str(n);
    return key;
  }

  array(n: number, depth: number): unknown[] {
    // every element takes at least one byte: a larger count is truncated input
    if (n > this.end - this.pos || depth >= MAX_FAST_DEPTH) throw BAIL;
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  /**
   * Steps over one value without building it: what the reader ignores (the
   * top-level `correlation_id` Rust and picket add, unknown fields). It declines
   * exactly what {@link value} declines, so ignoring a field never lets through
   * bytes the reference decoder would judge differently.
   */
  skip(depth: number): void {
    const b = this.u8();
    if (b < 0x80 || b >= 0xe0) return;
    if (b < 0x90) this.skipEntries(b - 0x80, 2, depth);
    else if (b < 0xa0) this.skipEntries(b - 0x90, 1, depth);
    else if (b < 0xc0) this.skipStr(b - 0xa0);
    else this.skipTagged(b, depth);
  }

  /** The rest of {@link skip}: values that start with a type byte (0xc0–0xdf). */
  private skipTagged(b: number, depth: number): void {
    switch (b) {
      case 0xc0:
      case 0xc2:
      case 0xc3:
        break;
      case 0xc4:
        this.advance(this.u8());
        break;
      case 0xc5:
        this.advance(this.u16());
        break;
      case 0xc6:
        this.advance(this.u32());
        break;
      case 0xcc:
      case 0xd0:
        this.advance(1);
        break;
      case 0xcd:
      case 0xd1:
        this.advance(2);
        break;
      case 0xca:
      case 0xce:
      case 0xd2:
        this.advance(4);
        break;
      case 0xcb:
      case 0xcf:
      case 0xd3:
        this.advance(8);
        break;
      case 0xd9:
        this.skipStr(this.u8());
        break;
      case 0xda:
        this.skipStr(this.u16());
        break;
      case 0xdb:
        this.skipStr(this.u32());
        break;
      case 0xdc:
        this.skipEntries(this.u16(), 1, depth);
        break;
      case 0xdd:
        this.skipEntries(this.u32(), 1, depth);
        break;
      case 0xde:
        this.skipEntries(this.u16(), 2, depth);
        break;
      case 0xdf:
        this.skipEntries(this.u32(), 2, depth);
        break;
      default:
        // 0xc1 (never used) and every extension type
        throw BAIL;
    }
  }

  private advance(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /** An ASCII string is stepped over; anything else is decoded, so bad UTF-8 still declines. */
  private skipStr(n: number): void {
    this.need(n);
    const bytes = this.bytes;
    const end = this.pos + n;
    let any = 0;
    for (let i = this.pos; i < end; i++) any |= bytes[i] as number;
    if (any >= 0x80) this.utf8(this.pos, end);
    this.pos = end;
  }

  /** `n` array elements (`per` 1) or map entries (`per` 2: a string key, then a value). */
  private skipEntries(n: number, per: 1 | 2, depth: number): void {
    if (n * per > this.end - this.pos || depth >= MAX_FAST_DEPTH) throw BAIL;
    for (let i = 0; i < n; i++) {
      if (per === 2) this.skipStr(this.strHeader()); // a key: a string, as {@link key} requires
      this.skip(depth + 1);
    }
  }

  /** The element count of a map header, or BAIL for anything else. */
  mapHeader(): number {
    const b = this.u8();
    let n: number;
    if (b >= 0x80 && b < 0x90) n = b - 0x80;
    else if (b === 0xde) n = this.u16();
    else if (b === 0xdf) n = this.u32();
    else throw BAIL;
    if (n * 2 > this.end - this.pos) throw BAIL;
    return n;
  }

  /** The element count of an array header, or BAIL for anything else. */
  arrayHeader(): number {
    const b = this.u8();
    let n: number;
    if (b >= 0x90 && b < 0xa0) n = b - 0x90;
    else if (b === 0xdc) n = this.u16();
    else if (b === 0xdd) n = this.u32();
    else throw BAIL;
    if (n > this.end - this.pos) throw BAIL;
    return n;
  }

  /** Consumes a nil if one is next. */
  nil(): boolean {
    if (this.pos < this.end && this.bytes[this.pos] === 0xc0) {
      this.pos++;
      return true;
    }
    return false;
  }

  /** An unsigned integer up to `max`. */
  uint(max: number): number {
    const v = this.value(2);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw BAIL;
    return v;
  }

  /** `str` → `str` map as a fresh object. */
  textMap(): Record<string, string> {
    const out: Record<string, string> = {};
    for (let i = this.mapHeader(); i > 0; i--) {
      const k = this.key();
      putOwn(out, k, this.text());
    }
    return out;
  }

  /** A value that must be a msgpack `str`. */
  text(): string {
    return this.str(this.strHeader());
  }

  /** The byte length of the `str` header next, or BAIL for anything else. */
  strHeader(): number {
    const b = this.u8();
    if (b >= 0xa0 && b < 0xc0) return b - 0xa0;
    if (b === 0xd9) return this.u8();
    if (b === 0xda) return this.u16();
    if (b === 0xdb) return this.u32();
    throw BAIL;
  }

  /** A `str` or nil (null). */
  optText(): string | null {
    if (this.pos < this.end && this.bytes[this.pos] === 0xc0) {
      this.pos++;
      return null;
    }
    return this.text();
  }

  /**
   * A `str` or nil for a field that rarely changes between messages (server name,
   * protocol, TLS, route): the last ASCII value seen in `slot` is reused when the
   * bytes match it, instead of decoding a fresh copy.
   */
  optSteadyText(slot: number): string | null {
    if (this.pos < this.end && this.bytes[this.pos] === 0xc0) {
      this.pos++;
      return null;
    }
    const n = this.strHeader();
    this.need(n);
    const start = this.pos;
    const last = steadyValues[slot];
    if (last !== undefined && sameAscii(last, this.bytes, start, start + n)) {
      this.pos = start + n;
      return last;
    }
    const s = this.str(n);
    // only ASCII is compared byte for byte (valid UTF-8 of n chars in n bytes is ASCII)
    steadyValues[slot] = s.length === n ? s : undefined;
    return s;
  }

  /** An array of `str` (or nil: empty) read like keys: guessed from the last message, cached. */
  optKeyList(): string[] {
    if (this.nil()) return [];
    const n = this.arrayHeader();
    const out = new Array<string>(n);
    for (let i = 0; i < n; i++) out[i] = this.key();
    return out;
  }

  /** An array of `str`. */
  textList(): string[] {
    const b = this.u8();
    let n: number;
    if (b >= 0x90 && b < 0xa0) n = b - 0x90;
    else if (b === 0xdc) n = this.u16();
    else if (b === 0xdd) n = this.u32();
    else throw BAIL;
    if (n > this.end - this.pos) throw BAIL;
    if (n === 1) return [this.text()]; // most header values: a literal is the cheapest array
    const out = new Array<string>(n);
    for (let i = 0; i < n; i++) out[i] = this.text();
    return out;
  }

  map(n: number, depth: number): Record<string, unknown> {
    if (n * 2 > this.end - this.pos || depth >= MAX_FAST_DEPTH) throw BAIL;
    const out: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const k = this.key();
      putOwn(out, k, this.value(depth + 1));
    }
    return out;
  }
}

const fromCharCode = String.fromCharCode;

/**
 * The `n` (1–8) bytes at `start` as a string when they are ASCII, else undefined. One call
 * with every char: a string built char by char costs a string per char (~2× slower).
 */
function shortAscii(b: Uint8Array, start: number, n: number): string | undefined {
  const c0 = b[start] as number;
  if (n === 1) return c0 < 0x80 ? fromCharCode(c0) : undefined;
  const c1 = b[start + 1] as number;
  if (n === 2) return (c0 | c1) < 0x80 ? fromCharCode(c0, c1) : undefined;
  const c2 = b[start + 2] as number;
  if (n === 3) return (c0 | c1 | c2) < 0x80 ? fromCharCode(c0, c1, c2) : undefined;
  const c3 = b[start + 3] as number;
  const any = c0 | c1 | c2 | c3;
  if (n === 4) return any < 0x80 ? fromCharCode(c0, c1, c2, c3) : undefined;
  const c4 = b[start + 4] as number;
  if (n === 5) return (any | c4) < 0x80 ? fromCharCode(c0, c1, c2, c3, c4) : undefined;
  const c5 = b[start + 5] as number;
  if (n === 6) return (any | c4 | c5) < 0x80 ? fromCharCode(c0, c1, c2, c3, c4, c5) : undefined;
  const c6 = b[start + 6] as number;
  if (n === 7) {
    return (any | c4 | c5 | c6) < 0x80 ? fromCharCode(c0, c1, c2, c3, c4, c5, c6) : undefined;
  }
  const c7 = b[start + 7] as number;
  return (any | c4 | c5 | c6 | c7) < 0x80
    ? fromCharCode(c0, c1, c2, c3, c4, c5, c6, c7)
    : undefined;
}

function sameAscii(s: string, bytes: Uint8Array, start: number, end: number): boolean {
  if (s.length !== end - start) return false;
  for (let i = start; i < end; i++) if (s.charCodeAt(i - start) !== bytes[i]) return false;
  return true;
}

const reader = new Reader();
let busy = false;

/**
 * Decodes one complete msgpack value from `bytes`, or returns {@link FALLBACK}
 * when the input is anything but a well-formed value of the common shapes.
 */
export function readMsgpackFast(bytes: Uint8Array): unknown {
  if (busy || !(bytes instanceof Uint8Array)) return FALLBACK;
  busy = true;
  const r = reader;
  try {
    r.begin(bytes, ANY_KEYS);
    const value = r.value(0);
    return r.pos === r.end ? value : FALLBACK;
  } catch {
    // BAIL, or anything unexpected: the reference decoder gets the final word
    return FALLBACK;
  } finally {
    r.bytes = EMPTY;
    r.view = undefined;
    busy = false;
  }
}

/**
 * RequestHeaders as picket and Rust proxies write it (maps, `str` fields, header
 * values as arrays of `str`), decoded and validated in one pass. The result is
 * exactly what `parseRequestHeadersEvent(decode(bytes))` returns; anything else
 * — arrays for structs, `bin` text, a repeated field, a missing one, a port out
 * of range — returns {@link FALLBACK} and takes the generic path, which also
 * words every error.
 */
export function readRequestHeadersFast(bytes: Uint8Array): RequestHeadersEvent | typeof FALLBACK {
  if (busy || !(bytes instanceof Uint8Array)) return FALLBACK;
  busy = true;
  const r = reader;
  try {
    r.begin(bytes, REQUEST_HEADERS_KEYS);
    let metadata: RequestMetadata | undefined;
    let method: string | undefined;
    let uri: string | undefined;
    let headers: Record<string, string[]> | undefined;
    for (let i = r.mapHeader(); i > 0; i--) {
      const k = r.key();
      switch (k) {
        case 'metadata':
          if (metadata !== undefined) throw BAIL;
          metadata = readMetadata(r);
          break;
        case 'method':
          if (method !== undefined) throw BAIL;
          method = r.text();
          break;
        case 'uri':
          if (uri !== undefined) throw BAIL;
          uri = r.text();
          break;
        case 'headers': {
          if (headers !== undefined) throw BAIL;
          const h = headerMap();
          for (let j = r.mapHeader(); j > 0; j--) {
            const name = r.key();
            // cached keys are interned: for them this compare is a pointer test
            if (name === '__proto__') putOwn(h, name, r.textList());
            else h[name] = r.textList();
          }
          headers = h;
          break;
        }
        default:
          // the top-level correlation_id Rust adds, and anything unknown: ignored
          r.skip(1);
      }
    }
    if (
      r.pos !== r.end ||
      metadata === undefined ||
      method === undefined ||
      uri === undefined ||
      headers === undefined
    ) {
      return FALLBACK;
    }
    return { metadata, method, uri, headers };
  } catch {
    return FALLBACK;
  } finally {
    r.bytes = EMPTY;
    r.view = undefined;
    busy = false;
  }
}

const MISSING = undefined;

/** Slots of the steady metadata fields (see `optSteadyText`). */
const SERVER_NAME = 0;
const PROTOCOL = 1;
const TLS_VERSION = 2;
const TLS_CIPHER = 3;
const ROUTE_ID = 4;
const UPSTREAM_ID = 5;
/** The last value of each steady metadata field, by slot. */
const steadyValues = new Array<string | undefined>(UPSTREAM_ID + 1).fill(undefined);

function readMetadata(r: Reader): RequestMetadata {
  let correlationId: string | undefined;
  let requestId: string | undefined;
  let clientIp: string | undefined;
  let clientPort: number | undefined;
  let serverName: string | null | undefined;
  let protocol: string | undefined;
  let tlsVersion: string | null | undefined;
  let tlsCipher: string | null | undefined;
  let routeId: string | null | undefined;
  let upstreamId: string | null | undefined;
  let timestamp: string | undefined;
  let traceparent: string | null | undefined;
  for (let i = r.mapHeader(); i > 0; i--) {
    const k = r.key();
    switch (k) {
      case 'correlation_id':
        if (correlationId !== MISSING) throw BAIL;
        correlationId = r.text();
        break;
      case 'request_id':
        if (requestId !== MISSING) throw BAIL;
        requestId = r.text();
        break;
      case 'client_ip':
        if (clientIp !== MISSING) throw BAIL;
        clientIp = r.text();
        break;
      case 'client_port': {
        if (clientPort !== MISSING) throw BAIL;
        const v = r.value(2);
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff) throw BAIL;
        clientPort = v;
        break;
      }
      case 'server_name':
        if (serverName !== MISSING) throw BAIL;
        serverName = r.optSteadyText(SERVER_NAME);
        break;
      case 'protocol':
        if (protocol !== MISSING) throw BAIL;
        {
          const p = r.optSteadyText(PROTOCOL);
          if (p === null) throw BAIL; // nil: the reference path words it
          protocol = p;
        }
        break;
      case 'tls_version':
        if (tlsVersion !== MISSING) throw BAIL;
        tlsVersion = r.optSteadyText(TLS_VERSION);
        break;
      case 'tls_cipher':
        if (tlsCipher !== MISSING) throw BAIL;
        tlsCipher = r.optSteadyText(TLS_CIPHER);
        break;
      case 'route_id':
        if (routeId !== MISSING) throw BAIL;
        routeId = r.optSteadyText(ROUTE_ID);
        break;
      case 'upstream_id':
        if (upstreamId !== MISSING) throw BAIL;
        upstreamId = r.optSteadyText(UPSTREAM_ID);
        break;
      case 'timestamp':
        if (timestamp !== MISSING) throw BAIL;
        timestamp = r.text();
        break;
      case 'traceparent':
        if (traceparent !== MISSING) throw BAIL;
        traceparent = r.optText();
        break;
      default:
        r.skip(2);
    }
  }
  if (
    correlationId === MISSING ||
    requestId === MISSING ||
    clientIp === MISSING ||
    clientPort === MISSING ||
    protocol === MISSING ||
    timestamp === MISSING
  ) {
    throw BAIL;
  }
  const m: RequestMetadata = {
    correlation_id: correlationId,
    request_id: requestId,
    client_ip: clientIp,
    client_port: clientPort,
    server_name: serverName ?? null,
    protocol,
    tls_version: tlsVersion ?? null,
    tls_cipher: tlsCipher ?? null,
    route_id: routeId ?? null,
    upstream_id: upstreamId ?? null,
    timestamp,
  };
  if (traceparent != null) m.traceparent = traceparent;
  return m;
}

/**
 * AgentResponse in the layout picket and Rust agents write in msgpack (rmp-serde:
 * a 10-element array, variants as single-key maps), decoded and validated in one
 * pass: exactly what `parseAgentResponse(decode(bytes))` returns (before the f32
 * normalisation of `confidence`, which the caller applies as before). Map-shaped
 * or short responses, redirect/challenge decisions, WebSocket decisions and
 * anything odd return {@link FALLBACK}.
 */
export function readAgentResponseFast(bytes: Uint8Array): AgentResponse | typeof FALLBACK {
  if (busy || !(bytes instanceof Uint8Array)) return FALLBACK;
  busy = true;
  const r = reader;
  try {
    r.begin(bytes, AGENT_RESPONSE_KEYS);
    if (r.arrayHeader() !== 10) return FALLBACK;
    const version = r.uint(0xffffffff);
    const decision = readDecision(r);
    const requestHeaders = readHeaderOps(r);
    const responseHeaders = readHeaderOps(r);
    const routingMetadata = r.nil() ? {} : r.textMap();
    const audit = readAudit(r);
    let needsMore = false;
    if (!r.nil()) {
      const v = r.value(1);
      if (typeof v !== 'boolean') throw BAIL;
      needsMore = v;
    }
    const requestBodyMutation = readBodyMutation(r);
    const responseBodyMutation = readBodyMutation(r);
    if (!r.nil()) throw BAIL; // websocket_decision: the generic path
    if (r.pos !== r.end) return FALLBACK;
    return {
      version,
      decision,
      request_headers: requestHeaders,
      response_headers: responseHeaders,
      routing_metadata: routingMetadata,
      audit,
      needs_more: needsMore,
      request_body_mutation: requestBodyMutation,
      response_body_mutation: responseBodyMutation,
      websocket_decision: null,
    };
  } catch {
    return FALLBACK;
  } finally {
    r.bytes = EMPTY;
    r.view = undefined;
    busy = false;
  }
}

function readDecision(r: Reader): Decision {
  if (r.pos < r.end && (r.bytes[r.pos] as number) >> 5 === 0x5) {
    // fixstr: only "allow" carries no fields (compared as bytes, no string made)
    if (r.key() === 'allow') return 'allow';
    throw BAIL;
  }
  if (r.mapHeader() !== 1 || r.key() !== 'block' || r.arrayHeader() !== 3) throw BAIL;
  const status = r.uint(0xffff);
  const body = r.optText();
  const headers = r.nil() ? null : r.textMap();
  return { block: { status, body, headers } };
}

function readHeaderOps(r: Reader): HeaderOp[] {
  if (r.nil()) return [];
  const n = r.arrayHeader();
  const ops = new Array<HeaderOp>(n);
  for (let i = 0; i < n; i++) {
    if (r.mapHeader() !== 1) throw BAIL;
    const kind = r.key();
    if (kind === 'set' || kind === 'add') {
      if (r.arrayHeader() !== 2) throw BAIL;
      // names repeat from answer to answer: read like keys (guessed, cached)
      const nv = { name: r.key(), value: r.text() };
      ops[i] = kind === 'set' ? { set: nv } : { add: nv };
    } else if (kind === 'remove') {
      if (r.arrayHeader() !== 1) throw BAIL;
      ops[i] = { remove: { name: r.key() } };
    } else {
      throw BAIL;
    }
  }
  return ops;
}

function readAudit(r: Reader): AuditMetadata {
  if (r.nil()) return { tags: [], rule_ids: [], confidence: null, reason_codes: [], custom: {} };
  if (r.arrayHeader() !== 5) throw BAIL;
  // tags, rule ids and reason codes come from an agent's fixed vocabulary: read like keys
  const tags = r.optKeyList();
  const ruleIds = r.optKeyList();
  let confidence: number | null = null;
  if (!r.nil()) {
    const v = r.value(2);
    if (typeof v !== 'number' || Number.isNaN(v)) throw BAIL;
    confidence = v;
  }
  const reasonCodes = r.optKeyList();
  let custom: Record<string, unknown> = {};
  if (!r.nil()) {
    const b = r.bytes[r.pos] as number;
    // a map (a fresh object, as parseAudit's copy would be); anything else: generic path
    if (!((b >= 0x80 && b < 0x90) || b === 0xde || b === 0xdf)) throw BAIL;
    custom = r.value(2) as Record<string, unknown>;
  }
  return { tags, rule_ids: ruleIds, confidence, reason_codes: reasonCodes, custom };
}

function readBodyMutation(r: Reader): BodyMutation | null {
  if (r.nil()) return null;
  if (r.arrayHeader() !== 2) throw BAIL;
  const data = r.optText();
  const chunkIndex = r.uint(0xffffffff);
  return { data, chunk_index: chunkIndex };
}

const EMPTY = new Uint8Array(0);
