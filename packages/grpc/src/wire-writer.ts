/**
 * Writing primitives of the one-pass encoders (fast-paths.ts): one message at a time is
 * written into a shared slab — begin it with {@link beginMessage} (given an upper bound of
 * its size), write its bytes with the functions below, take it with {@link endMessage}.
 * Bytes are as protobufjs writes them. Not reentrant: nothing here awaits or calls back.
 */
import { BAIL } from './wire-bail.js';

/** The largest uint32; larger numbers need {@link u64}. */
const MAX_U32 = 0xffff_ffff;

/** Encoded messages are views into 64 KiB slabs that are written once, never reused. */
const SLAB_SIZE = 64 * 1024;
let slab = Buffer.allocUnsafe(SLAB_SIZE);
/** next free offset in `slab` */
let slabAt = 0;
/** the buffer and position of the message being written */
let out: Buffer = slab;
let pos = 0;

/** Starts a message of at most `bound` bytes; returns its start offset in `out`. */
export function beginMessage(bound: number): number {
  if (bound > SLAB_SIZE >>> 2) {
    out = Buffer.allocUnsafe(bound);
    pos = 0;
    return 0;
  }
  if (SLAB_SIZE - slabAt < bound) {
    slab = Buffer.allocUnsafe(SLAB_SIZE);
    slabAt = 0;
  }
  out = slab;
  pos = slabAt;
  return pos;
}

/** Ends the message begun at `start`: its bytes (a view; a misjudged room bails). */
export function endMessage(start: number): Buffer {
  if (pos > out.length) throw BAIL; // the room was misjudged: never hand out a cut message
  const bytes = out.subarray(start, pos);
  if (out === slab) slabAt = (pos + 7) & ~7;
  return bytes;
}

/** Bytes of the varint of a uint32 `v`. */
function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x20_0000 ? 3 : v < 0x1000_0000 ? 4 : 5;
}

/** A varint of an integer in 0 … 2^32-1. */
export function u32(v: number): void {
  while (v > 127) {
    out[pos++] = (v & 127) | 128;
    v >>>= 7;
  }
  out[pos++] = v;
}

/** A varint of a safe non-negative integer (uint64 as protobufjs writes a number). */
export function u64(v: number): void {
  while (v > MAX_U32) {
    out[pos++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  u32(v);
}

/** One byte: a tag, or a length known to fit in one byte. */
export function byte(b: number): void {
  out[pos++] = b;
}

/** A 32-bit float, little-endian (a `fixed32`-wire float field's value). */
export function float32(v: number): void {
  pos = out.writeFloatLE(v, pos);
}

/**
 * A length-prefixed string, bytes as protobufjs writes them: its own UTF-8 loop below 40
 * UTF-16 units (a lone surrogate becomes 3 bytes of itself), Buffer#write from 40 on.
 */
export function str(s: string): void {
  const n = s.length;
  if (n < 40) {
    const lenAt = pos;
    // from ~24 units Buffer#write beats the loop; it wrote the same bytes if they were all ASCII
    if (n >= 24 && out.write(s, pos + 1) === n) {
      out[lenAt] = n;
      pos += n + 1;
      return;
    }
    let p = pos + 1; // < 40 units are < 120 bytes: a one-byte length
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        out[p++] = c;
      } else if (c < 0x800) {
        out[p++] = (c >> 6) | 192;
        out[p++] = (c & 63) | 128;
      } else if ((c & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        c = 0x10000 + ((c & 0x3ff) << 10) + (s.charCodeAt(++i) & 0x3ff);
        out[p++] = (c >> 18) | 240;
        out[p++] = ((c >> 12) & 63) | 128;
        out[p++] = ((c >> 6) & 63) | 128;
        out[p++] = (c & 63) | 128;
      } else {
        out[p++] = (c >> 12) | 224;
        out[p++] = ((c >> 6) & 63) | 128;
        out[p++] = (c & 63) | 128;
      }
    }
    out[lenAt] = p - lenAt - 1;
    pos = p;
    return;
  }
  const reserved = varintSize(n); // right for ASCII; moved below otherwise
  const len = out.write(s, pos + reserved);
  const size = varintSize(len);
  if (size !== reserved) out.copyWithin(pos + size, pos + reserved, pos + reserved + len);
  u32(len);
  pos += len;
}

/** Reserves the length of a nested message; returns where it goes. */
export function openNested(): number {
  return pos++;
}

/** Writes the nested message's length (moving its bytes when the length needs > 1 byte). */
export function closeNested(lenAt: number): void {
  const len = pos - lenAt - 1;
  if (len < 0x80) {
    out[lenAt] = len;
    return;
  }
  const size = varintSize(len);
  out.copyWithin(lenAt + size, lenAt + 1, pos);
  pos = lenAt;
  u32(len);
  pos += len;
}

/** Room for a string field: tag, length and up to 3 bytes per UTF-16 unit (+ a nested header). */
export function strRoom(v: unknown): number {
  if (typeof v !== 'string') throw BAIL;
  return 3 * v.length + 16;
}

/** An integer {@link u32} can write. */
export function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_U32;
}

/** An integer {@link u64} can write. */
export function isU64(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
