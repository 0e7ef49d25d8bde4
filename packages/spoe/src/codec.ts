/**
 * SPOP (HAProxy's Stream Processing Offload Protocol, doc/SPOE.txt section 3) as
 * bytes: varints, typed data, frames and their payloads. Written from the
 * specification; every reader checks bounds before it reads, and every failure
 * is a {@link SpopError} carrying the SPOP status code an AGENT-DISCONNECT reports.
 */
import { AgentProtocolError, ErrorCode } from '@picket/protocol';

/** Frame types (SPOE.txt 3.2.2). */
export const SpopFrameType = {
  /** a continuation fragment of a fragmented payload */
  Unset: 0,
  HaproxyHello: 1,
  HaproxyDisconnect: 2,
  Notify: 3,
  AgentHello: 101,
  AgentDisconnect: 102,
  Ack: 103,
} as const;

/** Frame flags (SPOE.txt 3.2, a 32-bit field in network byte order). */
export const SpopFrameFlag = {
  /** the final (or only) fragment of a payload */
  Fin: 0x1,
  /** the processing of the frame must be cancelled */
  Abort: 0x2,
} as const;

/** Typed-data type ids (SPOE.txt 3.1): the high 4 bits hold flags, the low 4 the type. */
export const SpopDataType = {
  Null: 0,
  Bool: 1,
  Int32: 2,
  Uint32: 3,
  Int64: 4,
  Uint64: 5,
  Ipv4: 6,
  Ipv6: 7,
  String: 8,
  Binary: 9,
} as const;

/** Status codes of HAPROXY-DISCONNECT / AGENT-DISCONNECT (SPOE.txt 3.5). */
export const SpopStatus = {
  Normal: 0,
  IoError: 1,
  Timeout: 2,
  TooBig: 3,
  Invalid: 4,
  NoVersion: 5,
  NoMaxFrameSize: 6,
  NoCapabilities: 7,
  BadVersion: 8,
  BadFrameSize: 9,
  FragmentationNotSupported: 10,
  InterlacedFrames: 11,
  FrameIdNotFound: 12,
  ResourceError: 13,
  Unknown: 99,
} as const;

/** The description SPOE.txt gives each status code. */
export const SPOP_STATUS_TEXT: Readonly<Record<number, string>> = {
  0: 'normal (no error occurred)',
  1: 'I/O error',
  2: 'a timeout occurred',
  3: 'frame is too big',
  4: 'invalid frame received',
  5: 'version value not found',
  6: 'max-frame-size value not found',
  7: 'capabilities value not found',
  8: 'unsupported version',
  9: 'max-frame-size too big or too small',
  10: 'payload fragmentation is not supported',
  11: 'invalid interlaced frames',
  12: 'frame-id not found',
  13: 'resource allocation error',
  99: 'an unknown error occurred',
};

/** Variable scopes of the set-var / unset-var actions (SPOE.txt 3.4). */
export const SpopVarScope = {
  proc: 0,
  sess: 1,
  txn: 2,
  req: 3,
  res: 4,
} as const;
export type SpopVarScopeName = keyof typeof SpopVarScope;

/** Action types (SPOE.txt 3.4). */
export const SpopActionType = { SetVar: 1, UnsetVar: 2 } as const;

/** The smallest max-frame-size a peer may announce (SPOE.txt 3.2). */
export const SPOP_MIN_FRAME_SIZE = 256;

/** One value of typed data. 64-bit integers are bigints; addresses are text. */
export type SpopValue =
  | { type: 'null' }
  | { type: 'bool'; value: boolean }
  | { type: 'int32'; value: number }
  | { type: 'uint32'; value: number }
  | { type: 'int64'; value: bigint }
  | { type: 'uint64'; value: bigint }
  | { type: 'ipv4'; value: string }
  | { type: 'ipv6'; value: string }
  | { type: 'string'; value: string }
  | { type: 'binary'; value: Uint8Array };

/** A decoding (or encoding) failure, with the status code to disconnect with. */
export class SpopError extends AgentProtocolError {
  /** the SPOP status code ({@link SpopStatus}) */
  readonly status: number;
  constructor(status: number, message: string) {
    super(
      status === SpopStatus.TooBig ? ErrorCode.MessageTooLarge : ErrorCode.InvalidMessage,
      message,
    );
    this.status = status;
  }
}

const invalid = (message: string): SpopError => new SpopError(SpopStatus.Invalid, message);

// ------------------------------------------------------------------ varints

const MAX_U64 = (1n << 64n) - 1n;

/**
 * Encodes an unsigned integer in SPOP's varint ("peers") encoding: below 240 one
 * byte; else the low 4 bits go with 0xF0, then 7 bits per byte with the high bit
 * marking "more". Up to 2^64 - 1.
 */
export function encodeVarint(value: number | bigint): Uint8Array {
  let v = BigInt(value);
  if (v < 0n || v > MAX_U64) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `varint out of range: ${String(value)} (0 to 2^64-1)`,
    );
  }
  if (v < 240n) return Uint8Array.of(Number(v));
  const out = [Number((v | 0xf0n) & 0xffn)];
  v = (v - 240n) >> 4n;
  while (v >= 128n) {
    out.push(Number((v | 0x80n) & 0xffn));
    v = (v - 128n) >> 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

/** Writes a varint of a safe integer without going through BigInt (the hot path). */
function pushVarint(out: number[], value: number): void {
  if (value < 240) {
    out.push(value);
    return;
  }
  out.push((value % 16) | 0xf0);
  let v = Math.floor((value - 240) / 16);
  while (v >= 128) {
    out.push((v % 128) | 0x80);
    v = Math.floor((v - 128) / 128);
  }
  out.push(v);
}

/** Reads SPOP data from a byte array, refusing to read past its end. */
export class SpopReader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    pos = 0,
    /** what is being read, for error messages */
    readonly what = 'frame',
  ) {
    this.pos = pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, item: string): void {
    if (this.remaining < n) {
      throw invalid(`${this.what}: truncated ${item} at byte ${this.pos}`);
    }
  }

  u8(item = 'byte'): number {
    this.need(1, item);
    return this.buf[this.pos++] as number;
  }

  u32(item = 'u32'): number {
    this.need(4, item);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return (
      (((b[p] as number) << 24) |
        ((b[p + 1] as number) << 16) |
        ((b[p + 2] as number) << 8) |
        (b[p + 3] as number)) >>>
      0
    );
  }

  /** A varint as a bigint (any value up to 2^64 - 1). */
  varintBig(item = 'varint'): bigint {
    const start = this.pos;
    const first = this.u8(item);
    if (first < 240) return BigInt(first);
    let r = BigInt(first);
    let shift = 4n;
    for (;;) {
      if (this.pos - start >= 10) {
        throw invalid(`${this.what}: ${item} at byte ${start} is longer than 10 bytes`);
      }
      const b = this.u8(item);
      r += BigInt(b) << shift;
      shift += 7n;
      if (b < 128) break;
    }
    if (r > MAX_U64) throw invalid(`${this.what}: ${item} at byte ${start} exceeds 64 bits`);
    return r;
  }

  /** A varint that must fit a safe integer (lengths, ids). */
  varint(item = 'varint'): number {
    const start = this.pos;
    const first = this.u8(item);
    if (first < 240) return first;
    // up to 7 bytes stay below 2^53 (4 + 6 * 7 = 46 bits plus the offsets)
    let r = first;
    let scale = 16;
    for (let i = 1; ; i++) {
      if (i > 7) {
        this.pos = start;
        const big = this.varintBig(item);
        if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw invalid(`${this.what}: ${item} at byte ${start} is too large (${big})`);
        }
        return Number(big);
      }
      const b = this.u8(item);
      r += b * scale;
      scale *= 128;
      if (b < 128) return r;
    }
  }

  bytes(n: number, item = 'bytes'): Uint8Array {
    this.need(n, item);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** `<LENGTH:varint><BYTES>` (names and strings, without a type byte). */
  buffer(item = 'string'): Uint8Array {
    const start = this.pos;
    const n = this.varint(`${item} length`);
    if (n > this.remaining) {
      throw invalid(
        `${this.what}: ${item} at byte ${start} announces ${n} bytes, ${this.remaining} remain`,
      );
    }
    return this.bytes(n, item);
  }

  string(item = 'string'): string {
    return utf8.decode(this.buffer(item));
  }

  /** One TYPED-DATA value. */
  typed(item = 'value'): SpopValue {
    const start = this.pos;
    const tf = this.u8(`${item} type`);
    const type = tf & 0x0f;
    switch (type) {
      case SpopDataType.Null:
        return { type: 'null' };
      case SpopDataType.Bool:
        return { type: 'bool', value: (tf & 0x10) !== 0 };
      case SpopDataType.Int32: {
        // HAProxy widens a signed value to 64 bits; a 32-bit two's complement is read too
        const raw = this.varintBig(item);
        const v = raw <= 0xffffffffn ? BigInt.asIntN(32, raw) : BigInt.asIntN(64, raw);
        if (v < -0x80000000n || v > 0x7fffffffn) {
          throw invalid(`${this.what}: int32 ${item} at byte ${start} is out of range (${v})`);
        }
        return { type: 'int32', value: Number(v) };
      }
      case SpopDataType.Uint32: {
        const v = this.varintBig(item);
        if (v > 0xffffffffn) {
          throw invalid(`${this.what}: uint32 ${item} at byte ${start} is out of range (${v})`);
        }
        return { type: 'uint32', value: Number(v) };
      }
      case SpopDataType.Int64:
        return { type: 'int64', value: BigInt.asIntN(64, this.varintBig(item)) };
      case SpopDataType.Uint64:
        return { type: 'uint64', value: this.varintBig(item) };
      case SpopDataType.Ipv4:
        return { type: 'ipv4', value: Array.from(this.bytes(4, 'ipv4')).join('.') };
      case SpopDataType.Ipv6:
        return { type: 'ipv6', value: formatIpv6(this.bytes(16, 'ipv6')) };
      case SpopDataType.String:
        return { type: 'string', value: this.string(item) };
      case SpopDataType.Binary:
        return { type: 'binary', value: this.buffer(item) };
      default:
        throw invalid(`${this.what}: unknown data type ${type} for ${item} at byte ${start}`);
    }
  }
}

/** Decodes one varint at `offset`; `next` is the offset after it. */
export function decodeVarint(buf: Uint8Array, offset = 0): { value: bigint; next: number } {
  const r = new SpopReader(buf, offset, 'varint');
  const value = r.varintBig();
  return { value, next: r.pos };
}

const utf8 = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

/** RFC 5952 text of a 16-byte IPv6 address (longest run of zero groups as `::`). */
function formatIpv6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] as number) << 8) | (b[i + 1] as number));
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

function parseIpv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : 256));
  return out.every((n) => n <= 255) ? out : undefined;
}

function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0] as string);
  const tail = halves.length === 2 ? groups(halves[1] as string) : [];
  if (head === undefined || tail === undefined) return undefined;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const all = [...head, ...new Array<number>(fill).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

// ------------------------------------------------------------------ writing

/** Builds a payload byte by byte. */
export class SpopWriter {
  private readonly out: number[] = [];

  u8(v: number): this {
    this.out.push(v & 0xff);
    return this;
  }

  u32(v: number): this {
    this.out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    return this;
  }

  varint(v: number | bigint): this {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) pushVarint(this.out, v);
    else for (const b of encodeVarint(v)) this.out.push(b);
    return this;
  }

  raw(bytes: Uint8Array): this {
    for (const b of bytes) this.out.push(b);
    return this;
  }

  /** `<LENGTH:varint><BYTES>`: a name or string body without a type byte. */
  buffer(v: string | Uint8Array): this {
    const bytes = typeof v === 'string' ? utf8Encoder.encode(v) : v;
    return this.varint(bytes.length).raw(bytes);
  }

  typed(v: SpopValue): this {
    switch (v.type) {
      case 'null':
        return this.u8(SpopDataType.Null);
      case 'bool':
        return this.u8(SpopDataType.Bool | (v.value ? 0x10 : 0));
      case 'int32':
      case 'int64':
        return this.u8(SpopDataType[v.type === 'int32' ? 'Int32' : 'Int64']).varint(
          BigInt.asUintN(64, BigInt(v.value)),
        );
      case 'uint32':
      case 'uint64':
        return this.u8(SpopDataType[v.type === 'uint32' ? 'Uint32' : 'Uint64']).varint(v.value);
      case 'ipv4': {
        const b = parseIpv4(v.value);
        if (b === undefined) throw bad(`not an IPv4 address: ${JSON.stringify(v.value)}`);
        return this.u8(SpopDataType.Ipv4).raw(Uint8Array.from(b));
      }
      case 'ipv6': {
        const b = parseIpv6(v.value);
        if (b === undefined) throw bad(`not an IPv6 address: ${JSON.stringify(v.value)}`);
        return this.u8(SpopDataType.Ipv6).raw(b);
      }
      case 'string':
        return this.u8(SpopDataType.String).buffer(v.value);
      case 'binary':
        return this.u8(SpopDataType.Binary).buffer(v.value);
    }
  }

  get length(): number {
    return this.out.length;
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

const bad = (message: string) => new AgentProtocolError(ErrorCode.InvalidArgument, message);

// ------------------------------------------------------------------ frames

/** One frame, without its 4-byte length prefix. */
export interface SpopFrame {
  type: number;
  flags: number;
  streamId: number;
  frameId: number;
  payload: Uint8Array;
}

/** Decodes a frame (the bytes after its length prefix): type, flags, ids, payload. */
export function decodeFrame(frame: Uint8Array): SpopFrame {
  // TYPE + FLAGS + two one-byte varints at least (SPOE.txt 3.2)
  if (frame.length < 7) throw invalid(`frame of ${frame.length} bytes is shorter than 7`);
  const r = new SpopReader(frame);
  const type = r.u8('frame type');
  const flags = r.u32('flags');
  const streamId = r.varint('stream-id');
  const frameId = r.varint('frame-id');
  return { type, flags, streamId, frameId, payload: frame.subarray(r.pos) };
}

/** Encodes a frame with its 4-byte big-endian length prefix. */
export function encodeFrame(f: {
  type: number;
  flags?: number;
  streamId?: number;
  frameId?: number;
  payload?: Uint8Array;
}): Uint8Array {
  const head = new SpopWriter()
    .u8(f.type)
    .u32(f.flags ?? SpopFrameFlag.Fin)
    .varint(f.streamId ?? 0)
    .varint(f.frameId ?? 0)
    .bytes();
  const payload = f.payload ?? new Uint8Array(0);
  const out = new Uint8Array(4 + head.length + payload.length);
  new DataView(out.buffer).setUint32(0, head.length + payload.length);
  out.set(head, 4);
  out.set(payload, 4 + head.length);
  return out;
}

/** A KV-LIST entry. */
export type SpopKv = readonly [name: string, value: SpopValue];

/** Decodes a KV-LIST (HELLO and DISCONNECT payloads). */
export function decodeKvList(payload: Uint8Array, what = 'KV-LIST'): SpopKv[] {
  const r = new SpopReader(payload, 0, what);
  const out: SpopKv[] = [];
  while (r.remaining > 0) {
    const name = r.string('item name');
    out.push([name, r.typed(`item "${name}"`)]);
  }
  return out;
}

/** Encodes a KV-LIST. */
export function encodeKvList(items: readonly SpopKv[]): Uint8Array {
  const w = new SpopWriter();
  for (const [name, value] of items) w.buffer(name).typed(value);
  return w.bytes();
}

/** One message of a NOTIFY frame: its name and its arguments in order. */
export interface SpopMessage {
  name: string;
  args: SpopKv[];
}

/** Decodes a NOTIFY payload: `[<MESSAGE-NAME><NB-ARGS:1 byte><KV-LIST>]…`. */
export function decodeMessages(payload: Uint8Array): SpopMessage[] {
  const r = new SpopReader(payload, 0, 'NOTIFY');
  const out: SpopMessage[] = [];
  while (r.remaining > 0) {
    const name = r.string('message name');
    const n = r.u8('argument count');
    const args: SpopKv[] = [];
    for (let i = 0; i < n; i++) {
      const arg = r.string(`argument ${i} name of message "${name}"`);
      args.push([arg, r.typed(`argument "${arg}" of message "${name}"`)]);
    }
    out.push({ name, args });
  }
  return out;
}

/** Encodes a NOTIFY payload (what HAProxy sends; for tests and tools). */
export function encodeMessages(messages: readonly SpopMessage[]): Uint8Array {
  const w = new SpopWriter();
  for (const m of messages) {
    if (m.args.length > 255) throw bad(`message "${m.name}" has more than 255 arguments`);
    w.buffer(m.name).u8(m.args.length);
    for (const [name, value] of m.args) w.buffer(name).typed(value);
  }
  return w.bytes();
}

/** An action of an ACK frame. */
export type SpopAction =
  | { type: 'set-var'; scope: SpopVarScopeName; name: string; value: SpopValue }
  | { type: 'unset-var'; scope: SpopVarScopeName; name: string };

/**
 * Encodes an ACK payload: `[<ACTION-TYPE:1><NB-ARGS:1><VAR-SCOPE:1><VAR-NAME><VAR-VALUE>]…`,
 * the name as `<LENGTH:varint><BYTES>` without a type byte, as HAProxy reads it.
 */
export function encodeActions(actions: readonly SpopAction[]): Uint8Array {
  const w = new SpopWriter();
  for (const a of actions) {
    if (a.type === 'set-var') {
      w.u8(SpopActionType.SetVar).u8(3).u8(SpopVarScope[a.scope]).buffer(a.name).typed(a.value);
    } else {
      w.u8(SpopActionType.UnsetVar).u8(2).u8(SpopVarScope[a.scope]).buffer(a.name);
    }
  }
  return w.bytes();
}

const SCOPE_NAMES = Object.keys(SpopVarScope) as SpopVarScopeName[];

/** Decodes an ACK payload (what HAProxy reads; for tests and tools). */
export function decodeActions(payload: Uint8Array): SpopAction[] {
  const r = new SpopReader(payload, 0, 'ACK');
  const out: SpopAction[] = [];
  while (r.remaining > 0) {
    const type = r.u8('action type');
    const nb = r.u8('action argument count');
    const expected =
      type === SpopActionType.SetVar ? 3 : type === SpopActionType.UnsetVar ? 2 : undefined;
    if (expected === undefined) throw invalid(`ACK: unknown action type ${type}`);
    if (nb !== expected) throw invalid(`ACK: action ${type} with ${nb} arguments, not ${expected}`);
    const scope = SCOPE_NAMES[r.u8('variable scope')];
    if (scope === undefined) throw invalid('ACK: unknown variable scope');
    const name = r.string('variable name');
    out.push(
      type === SpopActionType.SetVar
        ? { type: 'set-var', scope, name, value: r.typed(`variable "${name}"`) }
        : { type: 'unset-var', scope, name },
    );
  }
  return out;
}
