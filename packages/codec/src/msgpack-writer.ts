/**
 * A small MessagePack writer for protocol messages. @msgpack/msgpack cannot
 * write one float32 field inside an otherwise float64 document (Rust's f32
 * `confidence` is `ca …`), nor mix positional arrays and maps under our
 * control, so messages are written here; arbitrary values use the same
 * smallest-encoding rules as rmp-serde and @msgpack/msgpack.
 */
import { cannotEncode } from './errors.js';

const MAX_DEPTH = 512;

/** Marks a number that must be written as float64 (`cb`), as Rust writes its `f64` fields. */
export class F64 {
  constructor(readonly value: number) {}
}

/** Bytes of a fresh output slab; many messages are written one after another into it. */
const SLAB_SIZE = 32 * 1024;

/**
 * Writes the `n` chars of `s` as bytes at `at` and returns whether they were all ASCII (only
 * then are the bytes its UTF-8). Two chars a step, checked once at the end: ~18 % faster
 * than a char at a time with a test each.
 */
function asciiInto(buf: Buffer, at: number, s: string, n: number): boolean {
  let any = 0;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const a = s.charCodeAt(i);
    const b = s.charCodeAt(i + 1);
    any |= a | b;
    buf[at + i] = a;
    buf[at + i + 1] = b;
  }
  if (i < n) {
    const a = s.charCodeAt(i);
    any |= a;
    buf[at + i] = a;
  }
  return any < 0x80;
}

type Utf8Write = (this: Buffer, s: string, offset: number) => number;
/** Buffer's native UTF-8 writer without `write()`'s argument juggling (present since Node 0.x). */
const utf8Write: Utf8Write =
  (Buffer.prototype as unknown as { utf8Write?: Utf8Write }).utf8Write ??
  function (this: Buffer, s: string, offset: number): number {
    return this.write(s, offset, 'utf8');
  };

/**
 * Writes messages back to back into a slab and hands each one out as a view
 * (no copy): {@link finish} returns the bytes since the last `finish`/`reset`
 * and never writes over them again. A message that outgrows the slab moves to
 * a bigger one; a full slab is simply replaced (views keep the old one alive
 * until they are dropped).
 */
export class MsgpackWriter {
  private buf: Buffer;
  private view: DataView;
  /** start of the message being written */
  private start = 0;
  private pos = 0;

  constructor(initialSize = SLAB_SIZE) {
    this.buf = Buffer.allocUnsafe(initialSize);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  /** Starts a new message, dropping anything written since the last {@link finish}. */
  reset(): this {
    this.pos = this.start;
    return this;
  }

  /** Drops a buffer grown past `max` bytes (a one-off huge message should not pin memory). */
  shrink(max: number, size = SLAB_SIZE): void {
    if (this.buf.length <= max) return;
    this.setBuffer(Buffer.allocUnsafe(size));
    this.start = 0;
    this.pos = 0;
  }

  /** The bytes written since {@link reset}, as a plain Uint8Array view the writer never touches again. */
  finish(): Uint8Array {
    const b = this.buf;
    const out = new Uint8Array(b.buffer, b.byteOffset + this.start, this.pos - this.start);
    this.start = this.pos;
    return out;
  }

  private setBuffer(b: Buffer): void {
    this.buf = b;
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  private ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    // Move the message being written to a new slab (earlier messages stay where their views are).
    const used = this.pos - this.start;
    // Grow with what is already written (amortised for many small writes), but size a big
    // single write (a body chunk) to itself: doubling the slab would allocate twice the body.
    const size = Math.max(SLAB_SIZE, 2 * used + n + SLAB_SIZE / 8);
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, this.start, this.pos);
    this.setBuffer(next);
    this.start = 0;
    this.pos = used;
  }

  private u8(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  private head8(marker: number, n: number): void {
    this.ensure(2);
    this.buf[this.pos++] = marker;
    this.buf[this.pos++] = n;
  }
  private head16(marker: number, n: number): void {
    this.ensure(3);
    this.buf[this.pos++] = marker;
    this.view.setUint16(this.pos, n);
    this.pos += 2;
  }
  private head32(marker: number, n: number): void {
    this.ensure(5);
    this.buf[this.pos++] = marker;
    this.view.setUint32(this.pos, n);
    this.pos += 4;
  }

  nil(): void {
    this.u8(0xc0);
  }

  bool(v: boolean): void {
    this.u8(v ? 0xc3 : 0xc2);
  }

  /** Smallest encoding for a safe integer: positive/negative fixint, then u8…u64 / i8…i64. */
  int(n: number): void {
    if (n >= 0) {
      if (n < 0x80) this.u8(n);
      else if (n < 0x100) this.head8(0xcc, n);
      else if (n < 0x10000) this.head16(0xcd, n);
      else if (n < 0x100000000) this.head32(0xce, n);
      else {
        this.ensure(9);
        this.buf[this.pos++] = 0xcf;
        this.view.setBigUint64(this.pos, BigInt(n));
        this.pos += 8;
      }
    } else if (n >= -32) {
      this.u8(n & 0xff);
    } else if (n >= -0x80) {
      this.head8(0xd0, n & 0xff);
    } else if (n >= -0x8000) {
      this.ensure(3);
      this.buf[this.pos++] = 0xd1;
      this.view.setInt16(this.pos, n);
      this.pos += 2;
    } else if (n >= -0x80000000) {
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
  }

  bigint(n: bigint): void {
    if (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)) {
      this.int(Number(n));
      return;
    }
    if (n > 0xffffffffffffffffn || n < -0x8000000000000000n) {
      throw cannotEncode('bigint', `${n} does not fit in 64 bits`);
    }
    this.ensure(9);
    if (n > 0n) {
      this.buf[this.pos++] = 0xcf;
      this.view.setBigUint64(this.pos, n);
    } else {
      this.buf[this.pos++] = 0xd3;
      this.view.setBigInt64(this.pos, n);
    }
    this.pos += 8;
  }

  /** `ca` + IEEE float32 (Rust `f32` fields). */
  f32(x: number): void {
    this.ensure(5);
    this.buf[this.pos++] = 0xca;
    this.view.setFloat32(this.pos, x);
    this.pos += 4;
  }

  /** `cb` + IEEE float64 (Rust `f64` fields, and non-integral JS numbers). */
  f64(x: number): void {
    this.ensure(9);
    this.buf[this.pos++] = 0xcb;
    this.view.setFloat64(this.pos, x);
    this.pos += 8;
  }

  /** A JS number: integer encoding when it is a safe integer (-0 becomes 0, as in JSON), float64 otherwise. */
  number(x: number): void {
    if (Number.isSafeInteger(x)) this.int(x);
    else this.f64(x);
  }

  str(s: string): void {
    const n = s.length;
    // short ASCII text (field names, ids, header names) is written in JS: a native call
    // costs more below 32 chars (at 64 or 128 it is a wash); other text is written again below
    if (n < 32) {
      this.ensure(1 + n);
      const at = this.pos + 1;
      this.buf[at - 1] = 0xa0 | n;
      if (asciiInto(this.buf, at, s, n)) {
        this.pos = at + n;
        return;
      }
    }
    if (n < 32) {
      // short and not ASCII
      const len = Buffer.byteLength(s, 'utf8');
      if (len < 32) this.u8(0xa0 | len);
      else this.head8(0xd9, len);
      this.ensure(len);
      this.buf.write(s, this.pos, len, 'utf8');
      this.pos += len;
      return;
    }
    // At least 32 bytes, so never a fixstr. Guess the header from the length in
    // UTF-16 units (right for ASCII), write the text once, and move it in the
    // rare case that its UTF-8 form needs a bigger header.
    const guess = n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
    this.ensure(5 + n * 3);
    const at = this.pos;
    const len = utf8Write.call(this.buf, s, at + guess);
    const head = len < 0x100 ? 2 : len < 0x10000 ? 3 : 5;
    if (head !== guess) this.buf.copyWithin(at + head, at + guess, at + guess + len);
    if (head === 2) this.head8(0xd9, len);
    else if (head === 3) this.head16(0xda, len);
    else this.head32(0xdb, len);
    this.pos += len;
  }

  /** Bytes copied as they are: msgpack encoded once and written into many messages (keys). */
  raw(bytes: Uint8Array): void {
    const n = bytes.length;
    this.ensure(n);
    const buf = this.buf;
    const at = this.pos;
    // a short copy in JS beats a native call; two bytes a step
    let i = 0;
    for (; i + 1 < n; i += 2) {
      buf[at + i] = bytes[i] as number;
      buf[at + i + 1] = bytes[i + 1] as number;
    }
    if (i < n) buf[at + i] = bytes[i] as number;
    this.pos = at + n;
  }

  bin(b: Uint8Array): void {
    const len = b.byteLength;
    if (len < 0x100) this.head8(0xc4, len);
    else if (len < 0x10000) this.head16(0xc5, len);
    else this.head32(0xc6, len);
    this.ensure(len);
    this.buf.set(b, this.pos);
    this.pos += len;
  }

  array(n: number): void {
    if (n < 16) this.u8(0x90 | n);
    else if (n < 0x10000) this.head16(0xdc, n);
    else this.head32(0xdd, n);
  }

  map(n: number): void {
    if (n < 16) this.u8(0x80 | n);
    else if (n < 0x10000) this.head16(0xde, n);
    else this.head32(0xdf, n);
  }

  strArray(items: readonly string[]): void {
    this.array(items.length);
    for (const s of items) this.str(s);
  }

  /**
   * Any JSON-like value: null/undefined ⇒ nil, numbers, bigints, strings,
   * Uint8Array ⇒ bin, arrays, Maps with string keys and plain objects ⇒ maps
   * (keys whose value is `undefined` are left out, as JSON.stringify does);
   * objects with `toJSON` are written as its result.
   */
  value(v: unknown, depth = 0): void {
    switch (typeof v) {
      case 'string':
        this.str(v);
        return;
      case 'number':
        this.number(v);
        return;
      case 'boolean':
        this.bool(v);
        return;
      case 'bigint':
        this.bigint(v);
        return;
      case 'undefined':
        this.nil();
        return;
      case 'object':
        this.object(v, depth);
        return;
      default:
        throw cannotEncode('value', `a ${typeof v} cannot be written as msgpack`);
    }
  }

  private object(v: object | null, depth: number): void {
    if (v === null) {
      this.nil();
    } else if (depth >= MAX_DEPTH) {
      throw cannotEncode('value', `nesting deeper than ${MAX_DEPTH} (cyclic value?)`);
    } else if (v instanceof Uint8Array) {
      this.bin(v);
    } else if (v instanceof F64) {
      this.f64(v.value);
    } else if (Array.isArray(v)) {
      this.array(v.length);
      for (const item of v) this.value(item, depth + 1);
    } else if (v instanceof Map) {
      this.map(v.size);
      for (const [k, item] of v) {
        if (typeof k !== 'string') throw cannotEncode('value', 'Map keys must be strings');
        this.str(k);
        this.value(item, depth + 1);
      }
    } else if (typeof (v as { toJSON?: unknown }).toJSON === 'function') {
      this.value((v as { toJSON(): unknown }).toJSON(), depth + 1);
    } else {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      let count = 0;
      for (const k of keys) if (o[k] !== undefined) count++;
      this.map(count);
      for (const k of keys) {
        const item = o[k];
        if (item === undefined) continue;
        this.str(k);
        this.value(item, depth + 1);
      }
    }
  }
}

/** `s` as a msgpack `str`, encoded once (see {@link MsgpackWriter.raw}). */
export function encodedStr(s: string): Uint8Array {
  const w = new MsgpackWriter(16 + 3 * s.length);
  w.str(s);
  return w.finish().slice();
}
