/**
 * Reading primitives of the one-pass decoders (fast-paths.ts): one message at a time —
 * {@link beginRead}, read fields with the functions below (each given the end of the
 * message it is inside, bailing rather than reading past it), {@link endRead}. Values are
 * as protobufjs reads them. Also the cache of short strings that recur between requests.
 */
import { BAIL } from './wire-bail.js';

const EMPTY = Buffer.alloc(0);
/** the message being read and the read position */
let inp: Buffer = EMPTY;
let at = 0;

/** Starts reading `b` at offset 0. */
export function beginRead(b: Buffer): void {
  inp = b;
  at = 0;
}

/** Lets go of the message read (so the reader holds no frame's memory). */
export function endRead(): void {
  inp = EMPTY;
}

/** The read position. */
export function position(): number {
  return at;
}

/** Moves the read position to `p` (within what was checked against the message's end). */
export function seek(p: number): void {
  at = p;
}

/** Whether unread bytes remain before `end`. */
export function more(end: number): boolean {
  return at < end;
}

/** A little-endian 32-bit float (a `fixed32`-wire float field's value). */
export function readFloat32(end: number): number {
  if (at + 4 > end) throw BAIL;
  const v = inp.readFloatLE(at);
  at += 4;
  return v;
}

/** Node's Buffer has the undocumented `utf8Slice`, a little cheaper than toString. */
interface Utf8SliceBuffer {
  utf8Slice?(start: number, end: number): string;
}

/** A varint of at most 32 bits (else bail). */
export function readVarint32(end: number): number {
  let v = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (at >= end) throw BAIL;
    const b = inp[at++] as number;
    if (shift === 28) {
      if (b > 15) throw BAIL; // beyond 32 bits: the general reader decides
      return (v | (b << 28)) >>> 0;
    }
    v |= (b & 127) << shift;
    if (b < 128) return v >>> 0;
  }
  throw BAIL;
}

/** Skips a varint of up to 64 bits. */
export function skipVarint64(end: number): void {
  for (let i = 0; i < 10; i++) {
    if (at >= end) throw BAIL;
    if ((inp[at++] as number) < 128) return;
  }
  throw BAIL;
}

/** The end of a nested message starting here. */
export function readNestedEnd(end: number): number {
  const len = readVarint32(end);
  const e = at + len;
  if (e > end) throw BAIL;
  return e;
}

/** A length-prefixed UTF-8 string. */
export function readStr(end: number): string {
  const e = readNestedEnd(end);
  const start = at;
  at = e;
  return start === e ? '' : utf8(start, e);
}

/** UTF-8 text of `inp[start, end)`, decoded as protobufjs decodes it (invalid bytes → U+FFFD). */
export function utf8(start: number, end: number): string {
  const b = inp as Buffer & Utf8SliceBuffer;
  return b.utf8Slice ? b.utf8Slice(start, end) : b.toString('utf8', start, end);
}

/**
 * Recently seen short ASCII strings of the kinds that repeat from request to request
 * (header names, method, protocol, TLS and route names), so the same string object
 * comes back instead of a new one: no UTF-8 decoding, and a header name that is already
 * a known property key. Direct-mapped by a hash of the bytes; a miss just replaces.
 */
const RECURRING = new Array<string | undefined>(512);
const MAX_RECURRING_LENGTH = 48;

/** A length-prefixed string, from the recurring-string cache when seen before (see above). */
export function readRecurring(end: number): string {
  const len = readVarint32(end);
  const start = at;
  const e = start + len;
  if (e > end) throw BAIL;
  if (len === 0) return '';
  if (len > MAX_RECURRING_LENGTH) {
    at = e;
    return utf8(start, e);
  }
  let h = len;
  let high = 0;
  for (let i = start; i < e; i++) {
    const b = inp[i] as number;
    high |= b;
    h = (Math.imul(h, 31) + b) | 0;
  }
  const slot = (h ^ (h >>> 9)) & 511;
  const known = RECURRING[slot];
  if (known !== undefined && known.length === len) {
    let same = true;
    for (let i = 0; i < len; i++) {
      if (known.charCodeAt(i) !== inp[start + i]) {
        same = false;
        break;
      }
    }
    if (same) {
      at = e;
      return known;
    }
  }
  at = e;
  if (high >= 0x80) return utf8(start, e);
  const s = inp.toString('latin1', start, e); // ASCII: the same string, decoded cheaper
  RECURRING[slot] = s;
  return s;
}

/** A uint64 varint as protobufjs reads it (a Long) and `num` turns it into a number. */
export function readU64(end: number): number {
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < 4; i++) {
    if (at >= end) throw BAIL;
    const b = inp[at++] as number;
    lo = (lo | ((b & 127) << (i * 7))) >>> 0;
    if (b < 128) return lo;
  }
  if (at >= end) throw BAIL;
  let b = inp[at++] as number;
  lo = (lo | ((b & 127) << 28)) >>> 0;
  hi = ((b & 127) >> 4) >>> 0;
  if (b < 128) return hi * 4294967296 + lo;
  for (let i = 0; i < 5; i++) {
    if (at >= end) throw BAIL;
    b = inp[at++] as number;
    hi = (hi | ((b & 127) << (i * 7 + 3))) >>> 0;
    if (b < 128) return hi * 4294967296 + lo;
  }
  throw BAIL;
}
