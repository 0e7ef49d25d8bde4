/**
 * A small CBOR codec (RFC 8949) for agentproto's CBOR sequences (RFC 8742), byte-compatible with
 * fxamacker/cbor's `CanonicalEncOptions()` for everything these frames contain.
 *
 * Why not cbor-x (already in the workspace): checked against cbor-x 1.x, its default and
 * `useRecords: false` encoders tag a plain `Uint8Array` (tag 64, `d840…`), write every object
 * header as a 16-bit map length (`b90003`), keep insertion order instead of sorting keys, and
 * encode integers from 2^32 up as float64 (`fb…`); its decoder turns every 64-bit integer into a
 * `bigint`, even 1. None of that is byte-exact with Go, and an incremental item-boundary scanner
 * that enforces a size cap before allocating has to exist anyway, so the whole codec is here,
 * doing only what the wire needs.
 *
 * Encoding: shortest integer heads, definite lengths, map keys sorted length-first then bytewise
 * (RFC 7049 canonical; for the text keys used here the same as RFC 8949 bytewise order), byte
 * strings for `Uint8Array`/`Buffer`, text for strings, `bigint` for integers beyond 2^53.
 * Floats are not used by agentproto and are refused on encode.
 *
 * Decoding: integers come back as `number` when safe and as `bigint` otherwise; byte strings as
 * `Buffer` copies; maps as `Map` (no prototype pitfalls, any key type); indefinite lengths are
 * accepted; tags become {@link CborTag}, unassigned simple values {@link CborSimple}.
 */
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import { byteStringViews, type InternalDecodeOptions } from './internal.js';

/** A tagged item (major type 6) as decoded. agentproto frames never carry tags. */
export class CborTag {
  constructor(
    readonly tag: number | bigint,
    readonly value: CborValue,
  ) {}
}

/** A simple value other than false/true/null/undefined (major type 7, 0–19 and 32–255). */
export class CborSimple {
  constructor(readonly value: number) {}
}

/** What {@link decodeCbor} returns. */
export type CborValue =
  | number
  | bigint
  | string
  | Uint8Array
  | boolean
  | null
  | undefined
  | CborValue[]
  | Map<CborValue, CborValue>
  | CborTag
  | CborSimple;

/** What {@link encodeCbor} accepts: plain objects are maps with text keys (`undefined` members are skipped). */
export type CborEncodable =
  | number
  | bigint
  | string
  | Uint8Array
  | boolean
  | null
  | undefined
  | CborTag
  | CborSimple
  | readonly CborEncodable[]
  | ReadonlyMap<CborEncodable, CborEncodable>
  | { readonly [key: string]: CborEncodable };

/** The default largest item the sequence decoder accepts: 1 MiB of payload plus headroom for keys and headers. */
export const DEFAULT_MAX_ITEM_SIZE = 1024 * 1024 + 64 * 1024;
/** The default deepest nesting of arrays, maps and tags; the same as fxamacker's default MaxNestedLevels. */
export const DEFAULT_MAX_DEPTH = 32;

/** Limits of a {@link CborSequenceDecoder} (and of {@link decodeCbor}). */
export interface CborDecodeOptions {
  /** Largest encoded item in bytes, checked against declared lengths before anything is buffered. */
  maxItemSize?: number;
  /** Deepest nesting of arrays, maps and tags. */
  maxDepth?: number;
}

function invalid(problem: string): AgentProtocolError {
  return new AgentProtocolError(ErrorCode.InvalidMessage, `invalid CBOR: ${problem}`);
}

function tooLarge(limit: number, what: string): AgentProtocolError {
  return new AgentProtocolError(
    ErrorCode.MessageTooLarge,
    `CBOR item too large: ${what} exceeds the limit of ${limit} bytes`,
  );
}

function checkLimit(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Encoder

const MAX_U64 = (1n << 64n) - 1n;
const textEncoder = new TextEncoder();

/** Byte strings at least this long are copied once, straight into the result (see {@link Writer}). */
const BY_REFERENCE = 256;

/**
 * Collects one item's bytes. Heads and short strings go into a scratch buffer that is reused
 * across calls; long byte strings are only referenced until {@link result} copies everything
 * into one buffer of the exact size, so a 32 KiB payload is copied once and nothing is
 * copied again while growing.
 */
class Writer {
  buf: Uint8Array;
  view: DataView;
  len = 0;
  /** Long byte strings: `at` is the scratch offset they follow. */
  private refs: { at: number; bytes: Uint8Array }[] = [];
  private refBytes = 0;
  busy = false;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  reset(): void {
    this.len = 0;
    this.refBytes = 0;
    if (this.refs.length > 0) this.refs = [];
  }

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }

  bytes(b: Uint8Array): void {
    if (b.length >= BY_REFERENCE) {
      this.refs.push({ at: this.len, bytes: b });
      this.refBytes += b.length;
      return;
    }
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** A head (major type + argument) in its shortest form. */
  head(major: number, arg: number | bigint): void {
    const m = major << 5;
    if (typeof arg === 'bigint') {
      if (arg <= 0xffffffffn) {
        this.head(major, Number(arg));
        return;
      }
      this.ensure(9);
      this.buf[this.len] = m | 27;
      this.view.setBigUint64(this.len + 1, arg);
      this.len += 9;
      return;
    }
    if (arg < 24) {
      this.byte(m | arg);
    } else if (arg <= 0xff) {
      this.ensure(2);
      this.buf[this.len] = m | 24;
      this.buf[this.len + 1] = arg;
      this.len += 2;
    } else if (arg <= 0xffff) {
      this.ensure(3);
      this.buf[this.len] = m | 25;
      this.view.setUint16(this.len + 1, arg);
      this.len += 3;
    } else if (arg <= 0xffffffff) {
      this.ensure(5);
      this.buf[this.len] = m | 26;
      this.view.setUint32(this.len + 1, arg);
      this.len += 5;
    } else {
      this.head(major, BigInt(arg));
    }
  }

  /**
   * The item in a fresh array of exactly its size; `pooled`: a Buffer, small ones cut from
   * Node's shared pool (what a stream write wants: it converts anything else to a Buffer).
   */
  result(pooled = false): Uint8Array {
    const size = this.len + this.refBytes;
    if (this.refs.length === 0 && !pooled) return this.buf.slice(0, this.len);
    const out = pooled ? Buffer.allocUnsafe(size) : new Uint8Array(size);
    let from = 0;
    let to = 0;
    for (const r of this.refs) {
      out.set(this.buf.subarray(from, r.at), to);
      to += r.at - from;
      from = r.at;
      out.set(r.bytes, to);
      to += r.bytes.length;
    }
    out.set(this.buf.subarray(from, this.len), to);
    return out;
  }

  /**
   * The item as consecutive pieces: the long byte strings themselves (not copied) between
   * copies of the rest (small, from Node's buffer pool).
   */
  parts(): Uint8Array[] {
    const own = Buffer.allocUnsafe(this.len);
    own.set(this.buf.subarray(0, this.len));
    const out: Uint8Array[] = [];
    let from = 0;
    for (const r of this.refs) {
      if (r.at > from) out.push(own.subarray(from, r.at));
      out.push(r.bytes);
      from = r.at;
    }
    if (this.len > from) out.push(own.subarray(from, this.len));
    return out;
  }
}

/** The scratch writer, reused unless an encode is already using it (key encoding nests). */
const shared = new Writer(1024);

function encodeInteger(w: Writer, value: number | bigint): void {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(
        `cannot encode ${value}: agentproto carries integers only (use a bigint beyond 2^53)`,
      );
    }
    if (value >= 0) w.head(0, value);
    else w.head(1, -1 - value);
    return;
  }
  if (value >= 0n) {
    if (value > MAX_U64) throw new RangeError(`cannot encode ${value}: above 2^64-1`);
    w.head(0, value);
  } else {
    const n = -1n - value;
    if (n > MAX_U64) throw new RangeError(`cannot encode ${value}: below -2^64`);
    w.head(1, n);
  }
}

/** RFC 7049 canonical order: shorter encoded key first, then bytewise. */
function compareKeys(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  }
  return 0;
}

/** Encoded short text keys: frames use a few dozen distinct ones, over and over. */
const keyCache = new Map<string, Uint8Array>();

function encodeKey(k: CborEncodable, depth: number): Uint8Array {
  if (typeof k !== 'string' || k.length > 24) return encodeCborAt(k, depth);
  let b = keyCache.get(k);
  if (b === undefined) {
    b = encodeCborAt(k, depth);
    if (keyCache.size < 512) keyCache.set(k, b);
  }
  return b;
}

function encodeMap(w: Writer, entries: Array<[CborEncodable, CborEncodable]>, depth: number): void {
  const encoded = entries.map(([k, v]) => ({ key: encodeKey(k, depth + 1), value: v }));
  encoded.sort((a, b) => compareKeys(a.key, b.key));
  for (let i = 1; i < encoded.length; i++) {
    if (compareKeys(encoded[i - 1]?.key as Uint8Array, encoded[i]?.key as Uint8Array) === 0) {
      throw new RangeError('cannot encode a map with a duplicate key');
    }
  }
  w.head(5, encoded.length);
  for (const e of encoded) {
    w.bytes(e.key);
    encodeInto(w, e.value, depth + 1);
  }
}

function encodeInto(w: Writer, value: CborEncodable, depth: number): void {
  if (depth > DEFAULT_MAX_DEPTH) {
    throw new RangeError(`cannot encode: nested deeper than ${DEFAULT_MAX_DEPTH} levels`);
  }
  switch (typeof value) {
    case 'number':
    case 'bigint':
      encodeInteger(w, value);
      return;
    case 'string': {
      const b = textEncoder.encode(value);
      w.head(3, b.length);
      w.bytes(b);
      return;
    }
    case 'boolean':
      w.byte(value ? 0xf5 : 0xf4);
      return;
    case 'undefined':
      w.byte(0xf7);
      return;
    case 'object':
      break;
    default:
      throw new RangeError(`cannot encode a ${typeof value} as CBOR`);
  }
  if (value === null) {
    w.byte(0xf6);
  } else if (value instanceof Uint8Array) {
    w.head(2, value.length);
    w.bytes(value);
  } else if (Array.isArray(value)) {
    w.head(4, value.length);
    for (const item of value as readonly CborEncodable[]) encodeInto(w, item, depth + 1);
  } else if (value instanceof CborTag) {
    const tag = value.tag;
    if (
      typeof tag === 'number' ? !Number.isSafeInteger(tag) || tag < 0 : tag < 0n || tag > MAX_U64
    ) {
      throw new RangeError(`cannot encode tag number ${tag}`);
    }
    w.head(6, tag);
    encodeInto(w, value.value, depth + 1);
  } else if (value instanceof CborSimple) {
    const v = value.value;
    if (!Number.isInteger(v) || v < 0 || v > 255 || (v >= 24 && v < 32)) {
      throw new RangeError(`cannot encode simple value ${v}`);
    }
    w.head(7, v);
  } else if (value instanceof Map) {
    encodeMap(w, [...(value as ReadonlyMap<CborEncodable, CborEncodable>)], depth);
  } else if (ArrayBuffer.isView(value)) {
    throw new RangeError('cannot encode a typed array other than Uint8Array');
  } else {
    const entries: Array<[CborEncodable, CborEncodable]> = [];
    for (const [k, v] of Object.entries(value as { [key: string]: CborEncodable })) {
      if (v !== undefined) entries.push([k, v]);
    }
    encodeMap(w, entries, depth);
  }
}

function encodeCborAt(value: CborEncodable, depth: number, as?: 'buffer'): Uint8Array;
function encodeCborAt(value: CborEncodable, depth: number, as: 'parts'): Uint8Array[];
function encodeCborAt(
  value: CborEncodable,
  depth: number,
  as?: 'parts' | 'buffer',
): Uint8Array | Uint8Array[] {
  const w = shared.busy ? new Writer(64) : shared;
  w.busy = true;
  w.reset();
  try {
    encodeInto(w, value, depth);
    return as === 'parts' ? w.parts() : w.result(as === 'buffer');
  } finally {
    w.busy = false;
    w.reset(); // drop references to the caller's byte strings
    // a scratch buffer grown by one huge item is not kept
    if (w === shared && w.buf.length > 64 * 1024) {
      w.buf = new Uint8Array(1024);
      w.view = new DataView(w.buf.buffer);
    }
  }
}

/**
 * Encodes one value as one canonical CBOR item. Throws a `RangeError` for values CBOR (or this
 * subset) cannot carry: non-integer numbers, integers outside ±2^64, functions, symbols.
 */
export function encodeCbor(value: CborEncodable): Uint8Array {
  return encodeCborAt(value, 0);
}

/**
 * Package-private (not exported from index.ts): {@link encodeCbor}'s bytes as pieces whose
 * concatenation is the item, byte strings of 256 bytes and more being the caller's own arrays
 * (so they must not change until the pieces are written).
 */
export function encodeCborParts(value: CborEncodable): Uint8Array[] {
  return encodeCborAt(value, 0, 'parts');
}

/** Package-private: {@link encodeCbor} into a `Buffer` (small ones from Node's pool), for a stream. */
export function encodeCborBuffer(value: CborEncodable): Buffer {
  return encodeCborAt(value, 0, 'buffer') as Buffer;
}

// ---------------------------------------------------------------------------------------------
// Decoding one complete item

const textDecoder = new TextDecoder('utf-8', { fatal: true });

function headSize(ib: number): number {
  const major = ib >> 5;
  const ai = ib & 31;
  if (ai < 24) return 1;
  if (ai === 24) return 2;
  if (ai === 25) return 3;
  if (ai === 26) return 5;
  if (ai === 27) return 9;
  if (ai === 31) {
    if (major === 0 || major === 1 || major === 6) {
      throw invalid(`indefinite length is not allowed for major type ${major} (byte 0x${hex(ib)})`);
    }
    return 1;
  }
  throw invalid(`reserved additional info ${ai} in byte 0x${hex(ib)}`);
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}

function readArg(bytes: Uint8Array, view: DataView, pos: number, ai: number): number | bigint {
  if (ai < 24) return ai;
  if (ai === 24) return bytes[pos + 1] as number;
  if (ai === 25) return view.getUint16(pos + 1);
  if (ai === 26) return view.getUint32(pos + 1);
  const v = view.getBigUint64(pos + 1);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function halfToNumber(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * 2 ** -14 * (mant / 1024);
  if (exp === 31) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + mant / 1024);
}

/** Decodes from a buffer known to hold at least one complete, well-formed item (or throws). */
class ItemReader {
  private readonly view: DataView;
  pos = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly maxDepth: number,
    /** byte strings as views of `bytes` (see internal.ts) instead of copies */
    private readonly views = false,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.length) {
      throw invalid(`truncated item: needs ${this.pos + n} bytes, has ${this.bytes.length}`);
    }
  }

  private length(arg: number | bigint): number {
    if (typeof arg === 'bigint' || arg > this.bytes.length - this.pos) {
      throw invalid(`declared length ${arg} runs past the end of the item`);
    }
    return arg;
  }

  private string(major: number, ai: number, arg: number | bigint): Uint8Array {
    if (ai !== 31) {
      const n = this.length(arg);
      const out = this.bytes.subarray(this.pos, this.pos + n);
      this.pos += n;
      return out;
    }
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      this.need(1);
      const ib = this.bytes[this.pos] as number;
      if (ib === 0xff) {
        this.pos++;
        break;
      }
      if (ib >> 5 !== major || (ib & 31) === 31) {
        throw invalid(
          `chunk of an indefinite-length ${major === 2 ? 'byte' : 'text'} string must be a definite string of the same type (byte 0x${hex(ib)})`,
        );
      }
      const size = headSize(ib);
      this.need(size);
      const n = this.length(readArg(this.bytes, this.view, this.pos, ib & 31));
      this.pos += size;
      const chunk = this.bytes.subarray(this.pos, this.pos + n);
      this.pos += n;
      if (major === 3) this.text(chunk); // every chunk must be valid UTF-8 on its own
      parts.push(chunk);
      total += n;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  private text(b: Uint8Array): string {
    try {
      return textDecoder.decode(b);
    } catch {
      throw invalid('text string is not valid UTF-8');
    }
  }

  read(depth: number): CborValue {
    this.need(1);
    const start = this.pos;
    const ib = this.bytes[start] as number;
    const major = ib >> 5;
    const ai = ib & 31;
    if (ib === 0xff) throw invalid('unexpected break (0xff) outside an indefinite-length item');
    const size = headSize(ib);
    this.need(size);
    const arg = ai === 31 ? 0 : readArg(this.bytes, this.view, start, ai);
    this.pos += size;
    switch (major) {
      case 0:
        return arg;
      case 1:
        if (typeof arg === 'number' && arg < Number.MAX_SAFE_INTEGER) return -1 - arg;
        return -1n - BigInt(arg);
      case 2: {
        const b = this.string(2, ai, arg);
        // an indefinite-length string is already a fresh concatenation
        if (this.views || ai === 31) return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
        return Buffer.from(b);
      }
      case 3:
        return this.text(this.string(3, ai, arg));
      case 4: {
        if (depth >= this.maxDepth) throw invalid(`nested deeper than ${this.maxDepth} levels`);
        const out: CborValue[] = [];
        if (ai === 31) {
          while (!this.atBreak()) out.push(this.read(depth + 1));
        } else {
          const n = this.length(arg);
          for (let i = 0; i < n; i++) out.push(this.read(depth + 1));
        }
        return out;
      }
      case 5: {
        if (depth >= this.maxDepth) throw invalid(`nested deeper than ${this.maxDepth} levels`);
        const out = new Map<CborValue, CborValue>();
        if (ai === 31) {
          while (!this.atBreak()) out.set(this.read(depth + 1), this.read(depth + 1));
        } else {
          const n = this.length(arg);
          for (let i = 0; i < n; i++) out.set(this.read(depth + 1), this.read(depth + 1));
        }
        return out;
      }
      case 6:
        if (depth >= this.maxDepth) throw invalid(`nested deeper than ${this.maxDepth} levels`);
        return new CborTag(arg, this.read(depth + 1));
      default:
        return this.simple(ai, arg as number, start);
    }
  }

  private simple(ai: number, arg: number, start: number): CborValue {
    if (ai === 25) return halfToNumber(arg);
    if (ai === 26) return this.view.getFloat32(start + 1);
    if (ai === 27) return this.view.getFloat64(start + 1);
    if (ai === 24 && arg < 32) throw invalid(`two-byte simple value ${arg} must be 32 or more`);
    if (arg === 20) return false;
    if (arg === 21) return true;
    if (arg === 22) return null;
    if (arg === 23) return undefined;
    return new CborSimple(arg);
  }

  private atBreak(): boolean {
    this.need(1);
    if (this.bytes[this.pos] === 0xff) {
      this.pos++;
      return true;
    }
    return false;
  }
}

/**
 * Decodes exactly one CBOR item that fills `bytes` (trailing bytes are an error). Errors are
 * {@link AgentProtocolError}s with code `INVALID_MESSAGE` (or `MESSAGE_TOO_LARGE`).
 */
export function decodeCbor(bytes: Uint8Array, options?: CborDecodeOptions): CborValue {
  const maxItem = checkLimit('maxItemSize', options?.maxItemSize, Number.MAX_SAFE_INTEGER);
  const maxDepth = checkLimit('maxDepth', options?.maxDepth, DEFAULT_MAX_DEPTH);
  if (bytes.length === 0) throw invalid('empty input');
  if (bytes.length > maxItem) throw tooLarge(maxItem, `${bytes.length} bytes`);
  // Scan first: it checks structure, lengths and depth without allocating.
  const scanner = new CborSequenceDecoder({ maxItemSize: maxItem, maxDepth });
  const end = scanner.scanOne(bytes);
  if (end !== bytes.length) {
    throw invalid(
      end < 0 ? 'truncated item' : `${bytes.length - end} trailing bytes after the item`,
    );
  }
  return new ItemReader(
    bytes,
    maxDepth,
    (options as InternalDecodeOptions)?.[byteStringViews],
  ).read(0);
}

/**
 * Package-private: {@link decodeCbor} for one item a {@link CborSequenceDecoder} with the same
 * limits has already scanned (`pushRaw`), so its structure, sizes and depth are not checked twice.
 */
export function decodeScannedCbor(item: Uint8Array, maxDepth: number, views: boolean): CborValue {
  return new ItemReader(item, maxDepth, views).read(0);
}

// ---------------------------------------------------------------------------------------------
// The incremental sequence decoder

/** One open container while scanning: items left, or -1 (indefinite) with a count for maps. */
interface Open {
  left: number;
  /** 'm' indefinite map (needs an even count), 's' indefinite string (chunks of `major` only) */
  kind: 'a' | 'm' | 's' | 't';
  major: number;
  count: number;
}

/**
 * Splits a CBOR sequence arriving in arbitrary chunks into complete items and decodes them.
 *
 * It scans each byte once, remembering only the open containers, so feeding a 1 MiB item a byte
 * at a time costs the same as feeding it at once. The size cap is checked against each declared
 * length before the bytes are waited for, and against the bytes actually received, so a peer can
 * never make it buffer more than `maxItemSize` (the default is {@link DEFAULT_MAX_ITEM_SIZE}).
 * After an error the decoder stays failed: a byte stream cannot be resynchronised.
 */
export class CborSequenceDecoder {
  readonly maxItemSize: number;
  readonly maxDepth: number;
  private stack: Open[] = [];
  private inItem = false;
  private itemBytes = 0;
  private skip = 0;
  private readonly headBuf = new Uint8Array(9);
  private readonly headView = new DataView(this.headBuf.buffer);
  private headGot = 0;
  private headNeed = 0;
  private pieces: Uint8Array[] = [];
  private failed: AgentProtocolError | undefined;

  constructor(options?: CborDecodeOptions) {
    this.maxItemSize = checkLimit('maxItemSize', options?.maxItemSize, DEFAULT_MAX_ITEM_SIZE);
    this.maxDepth = checkLimit('maxDepth', options?.maxDepth, DEFAULT_MAX_DEPTH);
  }

  /** The error this decoder failed with, if it did (thrown again by every later call). */
  get failure(): AgentProtocolError | undefined {
    return this.failed;
  }

  /** Bytes of an unfinished item held right now (never more than `maxItemSize`). */
  get bufferedBytes(): number {
    return this.inItem ? this.itemBytes : 0;
  }

  /**
   * Feeds a chunk; returns the items it completed, in order (possibly none). When the chunk holds
   * good items followed by a bad one, the good items are returned and the error is thrown by the
   * next call (`push` or `end`), so nothing sent before the fault is lost.
   */
  push(chunk: Uint8Array): CborValue[] {
    const out: CborValue[] = [];
    for (const raw of this.pushRaw(chunk)) {
      try {
        out.push(new ItemReader(raw, this.maxDepth).read(0));
      } catch (err) {
        this.failed = AgentProtocolError.from(err, ErrorCode.InvalidMessage, 'invalid CBOR');
        this.pieces = [];
        if (out.length === 0) throw this.failed;
        break;
      }
    }
    return out;
  }

  /**
   * Feeds a chunk; returns the encoded bytes of each item it completed (views into `chunk` when an
   * item lies within it, copies otherwise), with the same error rule as {@link push}.
   */
  pushRaw(chunk: Uint8Array): Uint8Array[] {
    if (this.failed) throw this.failed;
    const out: Uint8Array[] = [];
    let from = 0;
    try {
      while (from < chunk.length) {
        const start = from;
        const end = this.scan(chunk, from);
        if (end < 0) {
          this.pieces.push(chunk.subarray(start));
          break;
        }
        if (this.pieces.length === 0) {
          out.push(chunk.subarray(start, end));
        } else {
          this.pieces.push(chunk.subarray(start, end));
          out.push(concat(this.pieces, this.itemBytes));
          this.pieces = [];
        }
        this.reset();
        from = end;
      }
    } catch (err) {
      this.failed = AgentProtocolError.from(err, ErrorCode.InvalidMessage, 'invalid CBOR');
      this.pieces = [];
      this.reset();
      if (out.length === 0) throw this.failed;
    }
    return out;
  }

  /**
   * Declares the end of the stream. Throws a clear error if it ended in the middle of an item
   * (`INVALID_MESSAGE`, "truncated"); returns quietly at an item boundary.
   */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.inItem) {
      const held = this.itemBytes;
      this.failed = invalid(
        `stream ended in the middle of an item (truncated after ${held} byte${held === 1 ? '' : 's'}${this.headGot ? ', inside a head' : this.skip ? `, ${this.skip} string bytes missing` : ''})`,
      );
      this.pieces = [];
      throw this.failed;
    }
  }

  /** For {@link decodeCbor}: the end offset of the first item, or -1 when it is incomplete. */
  scanOne(bytes: Uint8Array): number {
    const end = this.scan(bytes, 0);
    this.reset();
    return end;
  }

  private reset(): void {
    this.stack = [];
    this.inItem = false;
    this.itemBytes = 0;
    this.skip = 0;
    this.headGot = 0;
  }

  private grow(n: number): void {
    this.itemBytes += n;
    if (this.itemBytes > this.maxItemSize) {
      throw tooLarge(this.maxItemSize, `more than ${this.maxItemSize} bytes received for one item`);
    }
  }

  /** Scans from `pos`; returns the offset just past the completed item, or -1 when it needs more. */
  private scan(b: Uint8Array, pos: number): number {
    let p = pos;
    this.inItem = true;
    while (p < b.length) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, b.length - p);
        this.skip -= take;
        p += take;
        this.itemBytes += take; // already counted against the cap when the length was declared
        if (this.skip > 0) return -1;
        if (this.done()) return p;
        continue;
      }
      if (this.headGot === 0) this.headNeed = headSize(b[p] as number);
      const take = Math.min(this.headNeed - this.headGot, b.length - p);
      this.headBuf.set(b.subarray(p, p + take), this.headGot);
      this.headGot += take;
      p += take;
      this.grow(take);
      if (this.headGot < this.headNeed) return -1;
      this.headGot = 0;
      if (this.head() && this.done()) return p;
    }
    return -1;
  }

  /** Handles a complete head; returns true when it completed a leaf or a container. */
  private head(): boolean {
    const ib = this.headBuf[0] as number;
    const major = ib >> 5;
    const ai = ib & 31;
    const top = this.stack[this.stack.length - 1];
    if (ib === 0xff) {
      if (!top || top.left !== -1) {
        throw invalid('unexpected break (0xff) outside an indefinite-length item');
      }
      if (top.kind === 'm' && top.count % 2 !== 0) {
        throw invalid('indefinite-length map ended after a key without a value');
      }
      this.stack.pop();
      return true;
    }
    if (top?.kind === 's' && (major !== top.major || ai === 31)) {
      throw invalid(
        `chunk of an indefinite-length string must be a definite string of the same type (byte 0x${hex(ib)})`,
      );
    }
    if (major === 7 && ai === 24 && (this.headBuf[1] as number) < 32) {
      throw invalid(`two-byte simple value ${this.headBuf[1]} must be 32 or more`);
    }
    const arg = ai === 31 ? -1 : readArg(this.headBuf, this.headView, 0, ai);
    const room = this.maxItemSize - this.itemBytes;
    switch (major) {
      case 2:
      case 3:
        if (ai === 31) return this.open({ left: -1, kind: 's', major, count: 0 });
        if (typeof arg === 'bigint' || arg > room) {
          throw tooLarge(this.maxItemSize, `a declared string length of ${arg} bytes`);
        }
        this.skip = arg as number;
        return this.skip === 0;
      case 4:
      case 5: {
        if (ai === 31)
          return this.open({ left: -1, kind: major === 4 ? 'a' : 'm', major, count: 0 });
        // every element takes at least one byte, so a count beyond the room left cannot fit
        const items =
          typeof arg === 'bigint' ? Number.POSITIVE_INFINITY : arg * (major === 5 ? 2 : 1);
        if (items > room) {
          throw tooLarge(
            this.maxItemSize,
            `a declared ${major === 4 ? 'array' : 'map'} of ${arg} entries`,
          );
        }
        if (items === 0) return true;
        return this.open({ left: items, kind: 'a', major, count: 0 });
      }
      case 6:
        return this.open({ left: 1, kind: 't', major, count: 0 });
      default:
        return true;
    }
  }

  private open(o: Open): false {
    if (this.stack.length >= this.maxDepth)
      throw invalid(`nested deeper than ${this.maxDepth} levels`);
    this.stack.push(o);
    return false;
  }

  /** A child finished: count it in the open containers; true when the whole item is complete. */
  private done(): boolean {
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top) return true;
      if (top.left === -1) {
        top.count++;
        return false;
      }
      top.left--;
      if (top.left > 0) return false;
      this.stack.pop();
    }
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Decodes a whole CBOR sequence held in memory. Throws if it ends inside an item; use a
 * {@link CborSequenceDecoder} to keep the items before a truncated tail.
 */
export function decodeCborSequence(bytes: Uint8Array, options?: CborDecodeOptions): CborValue[] {
  const d = new CborSequenceDecoder(options);
  const items = d.push(bytes);
  d.end();
  return items;
}

/** Encodes values back to back as a CBOR sequence. */
export function encodeCborSequence(values: readonly CborEncodable[]): Uint8Array {
  const parts = values.map((v) => encodeCbor(v));
  return concat(
    parts,
    parts.reduce((n, p) => n + p.length, 0),
  );
}
