/**
 * The slice of MessagePack prox's payloads use, read and written by hand so the decoder can be
 * as lenient as vmihailenco/msgpack v5 (every integer width, nil as a zero value, `str` and `bin`
 * interchangeable, struct maps or positional arrays, trailing bytes ignored) while the writer
 * stays strict and compact. Internal to the wire layer.
 */
import { AgentProtocolError, ErrorCode, putOwn } from '@picket/protocol';

/** Deeper nesting than any prox payload has; refused before it can exhaust the stack. */
const MAX_DEPTH = 32;

const utf8 = new TextDecoder('utf-8');

function invalid(message: string): AgentProtocolError {
  return new AgentProtocolError(ErrorCode.InvalidMessage, message);
}

/** Reads one MessagePack value at a time from `bytes`; every error names the field. */
export class MsgpackReader {
  private readonly view: DataView;
  pos = 0;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.bytes.length) {
      throw invalid(`${what}: payload truncated (needs ${n} more bytes at offset ${this.pos})`);
    }
  }

  private u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++] as number;
  }

  private uint(size: 1 | 2 | 4, what: string): number {
    this.need(size, what);
    const p = this.pos;
    this.pos += size;
    if (size === 1) return this.view.getUint8(p);
    if (size === 2) return this.view.getUint16(p);
    return this.view.getUint32(p);
  }

  /** The next code byte, without consuming it. */
  peek(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos] as number;
  }

  /** Consumes a nil if one is next. */
  nil(what: string): boolean {
    if (this.peek(what) !== 0xc0) return false;
    this.pos++;
    return true;
  }

  /**
   * Any integer encoding (fixint, cc…cf, d0…d3) or nil (0), as Go's int decoder: a bigint
   * when a 64-bit value is outside the safe integer range.
   */
  intOrBig(what: string): number | bigint {
    const c = this.u8(what);
    if (c <= 0x7f) return c;
    if (c >= 0xe0) return c - 0x100;
    const p = this.pos;
    switch (c) {
      case 0xc0:
        return 0;
      case 0xcc:
        return this.uint(1, what);
      case 0xcd:
        return this.uint(2, what);
      case 0xce:
        return this.uint(4, what);
      case 0xd0:
        this.need(1, what);
        this.pos += 1;
        return this.view.getInt8(p);
      case 0xd1:
        this.need(2, what);
        this.pos += 2;
        return this.view.getInt16(p);
      case 0xd2:
        this.need(4, what);
        this.pos += 4;
        return this.view.getInt32(p);
      case 0xcf:
      case 0xd3: {
        this.need(8, what);
        this.pos += 8;
        const big = c === 0xcf ? this.view.getBigUint64(p) : this.view.getBigInt64(p);
        const n = Number(big);
        return Number.isSafeInteger(n) ? n : big;
      }
      default:
        throw invalid(`${what}: expected an integer, got ${describeCode(c)}`);
    }
  }

  /** An integer as a JS number; a 64-bit value outside ±2^53 is a clear error, never rounded. */
  int(what: string): number {
    const v = this.intOrBig(what);
    if (typeof v === 'bigint') {
      throw invalid(`${what}: integer ${v} is outside the range picket reads exactly (±2^53)`);
    }
    return v;
  }

  /** Go's uint8 field: any integer, truncated to its low 8 bits (300 → 44, -1 → 255). */
  uint8(what: string): number {
    const v = this.intOrBig(what);
    return typeof v === 'bigint' ? Number(BigInt.asUintN(8, v)) : ((v % 256) + 256) % 256;
  }

  /** float64 field: `ca`/`cb`, any integer (v5.4.1 accepts those) or nil (0). */
  float(what: string): number {
    const c = this.peek(what);
    if (c === 0xca || c === 0xcb) {
      this.pos++;
      const size = c === 0xca ? 4 : 8;
      this.need(size, what);
      const p = this.pos;
      this.pos += size;
      return size === 4 ? this.view.getFloat32(p) : this.view.getFloat64(p);
    }
    return Number(this.intOrBig(what));
  }

  /** bool field: true, false or nil (false). */
  bool(what: string): boolean {
    const c = this.u8(what);
    if (c === 0xc3) return true;
    if (c === 0xc2 || c === 0xc0) return false;
    throw invalid(`${what}: expected a boolean, got ${describeCode(c)}`);
  }

  /** Length of a `str` or `bin` (Go reads both into strings and byte slices); -1 for nil. */
  private rawLength(what: string): number {
    const c = this.u8(what);
    if (c >= 0xa0 && c <= 0xbf) return c - 0xa0;
    switch (c) {
      case 0xc0:
        return -1;
      case 0xd9:
      case 0xc4:
        return this.uint(1, what);
      case 0xda:
      case 0xc5:
        return this.uint(2, what);
      case 0xdb:
      case 0xc6:
        return this.uint(4, what);
      default:
        throw invalid(`${what}: expected a string or bytes, got ${describeCode(c)}`);
    }
  }

  /** The raw bytes of a `str`/`bin` (a copy), or undefined for nil. */
  bytesOrNil(what: string): Uint8Array | undefined {
    const n = this.rawLength(what);
    if (n < 0) return undefined;
    this.need(n, what);
    const out = this.bytes.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** string field: `str` or `bin` as UTF-8 (invalid sequences become U+FFFD), nil → "". */
  string(what: string): string {
    const n = this.rawLength(what);
    if (n <= 0) return '';
    this.need(n, what);
    const s = utf8.decode(this.bytes.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }

  /** A container header: its kind and entry count (checked against the bytes left). */
  container(what: string): { kind: 'map' | 'array' | 'nil'; count: number } {
    const c = this.u8(what);
    let kind: 'map' | 'array';
    let count: number;
    if (c >= 0x80 && c <= 0x8f) [kind, count] = ['map', c - 0x80];
    else if (c >= 0x90 && c <= 0x9f) [kind, count] = ['array', c - 0x90];
    else if (c === 0xde || c === 0xdf) [kind, count] = ['map', this.uint(c === 0xde ? 2 : 4, what)];
    else if (c === 0xdc || c === 0xdd) {
      [kind, count] = ['array', this.uint(c === 0xdc ? 2 : 4, what)];
    } else if (c === 0xc0) return { kind: 'nil', count: 0 };
    else throw invalid(`${what}: expected a map or an array, got ${describeCode(c)}`);
    // Every entry takes at least one byte: a count beyond the bytes left is a lie.
    const minBytes = kind === 'map' ? count * 2 : count;
    if (minBytes > this.bytes.length - this.pos) {
      throw invalid(`${what}: ${kind} of ${count} entries does not fit in the payload`);
    }
    return { kind, count };
  }

  /** map[string]string: nil → {}, keys and values `str`/`bin`/nil. */
  stringMap(what: string): Record<string, string> {
    const out: Record<string, string> = {};
    const { kind, count } = this.container(what);
    if (kind === 'nil') return out;
    if (kind !== 'map') throw invalid(`${what}: expected a map, got an array`);
    for (let i = 0; i < count; i++) {
      const key = this.string(`${what} key`);
      putOwn(out, key, this.string(`${what}[${JSON.stringify(key)}]`));
    }
    return out;
  }

  /** []string: nil → []. */
  stringList(what: string): string[] {
    const { kind, count } = this.container(what);
    if (kind === 'nil') return [];
    if (kind !== 'array') throw invalid(`${what}: expected an array, got a map`);
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(this.string(`${what}[${i}]`));
    return out;
  }

  /**
   * A Go struct: a map with string keys (unknown keys skipped, the last duplicate wins), a
   * positional array in field order (as the Go decoder accepts), or nil (all zero values).
   * `fields` maps each wire key, in Go field order, to the function reading its value.
   */
  struct(what: string, fields: Record<string, (r: MsgpackReader) => void>, depth = 0): void {
    if (depth > MAX_DEPTH) throw invalid(`${what}: nested too deeply`);
    const { kind, count } = this.container(what);
    if (kind === 'nil') return;
    if (kind === 'array') {
      const readers = Object.values(fields);
      for (let i = 0; i < count; i++) {
        const read = readers[i];
        if (read === undefined) this.skip(what, depth + 1);
        else read(this);
      }
      return;
    }
    for (let i = 0; i < count; i++) {
      const key = this.string(`${what} key`);
      const read = Object.hasOwn(fields, key) ? fields[key] : undefined;
      if (read === undefined) this.skip(`${what}.${key}`, depth + 1);
      else read(this);
    }
  }

  /** Skips one value of any type (unknown keys and extra array entries). */
  skip(what: string, depth = 0): void {
    if (depth > MAX_DEPTH) throw invalid(`${what}: nested too deeply`);
    const c = this.peek(what);
    if (c <= 0x7f || c >= 0xe0 || c === 0xc0 || c === 0xc2 || c === 0xc3) {
      this.pos++;
      return;
    }
    if ((c >= 0xa0 && c <= 0xbf) || (c >= 0xc4 && c <= 0xc6) || (c >= 0xd9 && c <= 0xdb)) {
      this.bytesOrNil(what);
      return;
    }
    if ((c >= 0x80 && c <= 0x9f) || (c >= 0xdc && c <= 0xdf)) {
      const { kind, count } = this.container(what);
      const n = kind === 'map' ? count * 2 : count;
      for (let i = 0; i < n; i++) this.skip(what, depth + 1);
      return;
    }
    this.pos++;
    const fixed: Record<number, number> = {
      202: 4,
      203: 8,
      204: 1,
      205: 2,
      206: 4,
      207: 8,
      208: 1,
      209: 2,
      210: 4,
      211: 8,
      212: 2,
      213: 3,
      214: 5,
      215: 9,
      216: 17,
    };
    let size = fixed[c];
    if (size === undefined && c >= 0xc7 && c <= 0xc9) {
      // ext 8/16/32: length, type byte, data
      size = this.uint(c === 0xc7 ? 1 : c === 0xc8 ? 2 : 4, what) + 1;
    }
    if (size === undefined) throw invalid(`${what}: ${describeCode(c)} is not MessagePack`);
    this.need(size, what);
    this.pos += size;
  }
}

function describeCode(c: number): string {
  if (c === 0xc1) return 'the unused code 0xc1';
  if ((c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb)) return 'a string';
  if (c >= 0xc4 && c <= 0xc6) return 'bytes';
  if ((c >= 0x80 && c <= 0x8f) || c === 0xde || c === 0xdf) return 'a map';
  if ((c >= 0x90 && c <= 0x9f) || c === 0xdc || c === 0xdd) return 'an array';
  if (c === 0xca || c === 0xcb) return 'a float';
  if (c === 0xc2 || c === 0xc3) return 'a boolean';
  if (c === 0xc0) return 'nil';
  if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3)) return 'an integer';
  return `code 0x${c.toString(16).padStart(2, '0')}`;
}

const utf8Encoder = new TextEncoder();

/** A scratch buffer shared by writers one after the other (finish() copies out of it). */
let scratch: Uint8Array | undefined = new Uint8Array(4096);

/** Compact MessagePack writer (smallest integer and length encodings, float64 for floats). */
export class MsgpackWriter {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;
  private shared: boolean;

  constructor() {
    // the scratch buffer when no other writer holds it (writers do not nest, but may)
    this.shared = scratch !== undefined;
    this.buf = scratch ?? new Uint8Array(256);
    scratch = undefined;
    this.view = new DataView(this.buf.buffer);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  private byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  private sized(code: number, size: 1 | 2 | 4, n: number): void {
    this.ensure(1 + size);
    this.buf[this.pos++] = code;
    if (size === 1) this.view.setUint8(this.pos, n);
    else if (size === 2) this.view.setUint16(this.pos, n);
    else this.view.setUint32(this.pos, n);
    this.pos += size;
  }

  nil(): this {
    this.byte(0xc0);
    return this;
  }

  bool(v: boolean): this {
    this.byte(v ? 0xc3 : 0xc2);
    return this;
  }

  /** A safe integer in its smallest encoding (as @msgpack/msgpack and Go's `int` fields). */
  int(n: number): this {
    if (n >= 0) {
      if (n <= 0x7f) this.byte(n);
      else if (n <= 0xff) this.sized(0xcc, 1, n);
      else if (n <= 0xffff) this.sized(0xcd, 2, n);
      else if (n <= 0xffff_ffff) this.sized(0xce, 4, n);
      else {
        this.ensure(9);
        this.buf[this.pos++] = 0xcf;
        this.view.setBigUint64(this.pos, BigInt(n));
        this.pos += 8;
      }
    } else if (n >= -32) this.byte(n + 0x100);
    else if (n >= -0x80) {
      this.ensure(2);
      this.buf[this.pos++] = 0xd0;
      this.view.setInt8(this.pos++, n);
    } else if (n >= -0x8000) {
      this.ensure(3);
      this.buf[this.pos++] = 0xd1;
      this.view.setInt16(this.pos, n);
      this.pos += 2;
    } else if (n >= -0x8000_0000) {
      this.ensure(5);
      this.buf[this.pos++] = 0xd2;
      this.view.setInt32(this.pos, n);
      this.pos += 4;
    } else {
      this.ensure(9);
      this.buf[this.pos++] = 0xd3;
      this.view.setBigInt64(this.pos, BigInt(n));
      this.pos += 8;
    }
    return this;
  }

  /** float64 (`cb`), what Go writes for a float64 field. */
  float64(n: number): this {
    this.ensure(9);
    this.buf[this.pos++] = 0xcb;
    this.view.setFloat64(this.pos, n);
    this.pos += 8;
    return this;
  }

  str(s: string): this {
    const len = s.length;
    // ASCII (header names and values, paths, addresses): one byte per char, written in place
    this.ensure(5 + len);
    const start = this.pos + (len <= 31 ? 1 : len <= 0xff ? 2 : len <= 0xffff ? 3 : 5);
    const buf = this.buf;
    let i = 0;
    for (; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[start + i] = c;
    }
    if (i === len) {
      this.strHead(len);
      this.pos += len;
      return this;
    }
    const bytes = utf8Encoder.encode(s);
    this.strHead(bytes.length);
    this.raw(bytes);
    return this;
  }

  private strHead(n: number): void {
    if (n <= 31) this.byte(0xa0 + n);
    else if (n <= 0xff) this.sized(0xd9, 1, n);
    else if (n <= 0xffff) this.sized(0xda, 2, n);
    else this.sized(0xdb, 4, n);
  }

  bin(bytes: Uint8Array): this {
    const n = bytes.length;
    if (n <= 0xff) this.sized(0xc4, 1, n);
    else if (n <= 0xffff) this.sized(0xc5, 2, n);
    else this.sized(0xc6, 4, n);
    this.raw(bytes);
    return this;
  }

  mapHeader(n: number): this {
    if (n <= 15) this.byte(0x80 + n);
    else if (n <= 0xffff) this.sized(0xde, 2, n);
    else this.sized(0xdf, 4, n);
    return this;
  }

  arrayHeader(n: number): this {
    if (n <= 15) this.byte(0x90 + n);
    else if (n <= 0xffff) this.sized(0xdc, 2, n);
    else this.sized(0xdd, 4, n);
    return this;
  }

  stringMap(m: Record<string, string>): this {
    const keys = Object.keys(m);
    this.mapHeader(keys.length);
    for (const k of keys) this.str(k).str(m[k] as string);
    return this;
  }

  stringList(list: readonly string[]): this {
    this.arrayHeader(list.length);
    for (const s of list) this.str(s);
    return this;
  }

  private raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** The bytes written so far (a copy owned by the caller); the writer is done after it. */
  finish(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.release();
    return out;
  }

  /** Gives the scratch buffer back (finish() does; call it when an encode is abandoned). */
  release(): void {
    if (!this.shared) return;
    this.shared = false;
    // unless one huge payload grew it
    if (this.buf.length <= 64 * 1024) scratch = this.buf;
    this.buf = new Uint8Array(0);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }
}
