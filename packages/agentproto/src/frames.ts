/**
 * agentproto frames, file-op messages and recording records: types, and byte-exact encoders and
 * tolerant decoders (spec: shared/spec/agentproto.md).
 *
 * Encoding writes what the Go peer writes: top-level frame fields and most nested fields are
 * `omitempty` (zero values absent), the fields the spec's "Details the Go code settles" §1 lists
 * are always written (a `null` list as CBOR null), pointer payloads are written whenever set.
 * Decoding reads an absent key or `null` as the zero value, ignores unknown keys, keeps `null`
 * lists as `null` (for `ExecMsg.env` null means "inherit the agent's environment"), and rejects a
 * value of the wrong CBOR type or out of its Go type's range with an {@link AgentProtocolError}
 * (`INVALID_MESSAGE`) naming the field. Decoded optional fields are left out when zero, so
 * `decode(encode(x))` is canonical. 64-bit fields are {@link Int64}: a `number` when it is a safe
 * integer, a `bigint` beyond.
 */
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import {
  type CborDecodeOptions,
  type CborEncodable,
  CborSequenceDecoder,
  type CborValue,
  decodeCbor,
  decodeScannedCbor,
  encodeCbor,
} from './cbor.js';
import { byteStringViews, type InternalDecodeOptions } from './internal.js';

/** A Go int64/uint64 value: a `number` while it is a safe integer, a `bigint` beyond 2^53. */
export type Int64 = number | bigint;

/** Frame types (the `t` key). */
export const FrameType = {
  /** local → agent: start a command */
  Exec: 1,
  /** both ways: a chunk of a stream (`s` = fd number) */
  Data: 2,
  /** both ways: the sender closes stream `s` */
  EOF: 3,
  /** local → agent: signal the child's process group */
  Signal: 4,
  /** agent → local: the child exited; terminal, sent after all output */
  Exit: 5,
  /** agent → local: an internal error */
  Error: 6,
  /** agent → local: a structured log record */
  Log: 7,
  /** local → agent: configuration, before the mode frame */
  Config: 8,
  /** local → agent: enumerate executables on PATH */
  PathQuery: 9,
  /** agent → local: the enumeration result */
  PathInfo: 10,
  /** local → agent: a file-op request */
  FileOp: 11,
  /** agent → local: a file-op response */
  FileResp: 12,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** File-op codes, the newest numbering (Lstat at 8). */
export const FileOp = {
  Open: 1,
  Create: 2,
  OpenFile: 3,
  Close: 4,
  ReadAt: 5,
  WriteAt: 6,
  Stat: 7,
  Lstat: 8,
  ReadDir: 9,
  Mkdir: 10,
  MkdirAll: 11,
  Remove: 12,
  Rename: 13,
  Chmod: 14,
  Truncate: 15,
  Getwd: 16,
  Fsync: 17,
  Readlink: 18,
  /** p = target, np = link path */
  Symlink: 19,
  Link: 20,
  Chown: 21,
  Chtimes: 22,
  Statfs: 23,
  Fstat: 24,
  Ftruncate: 25,
} as const;
export type FileOp = (typeof FileOp)[keyof typeof FileOp];

/** The command of an Exec frame. `path` is the child's program (argv[0] is not used to find it). */
export interface ExecMsg {
  path: string;
  argv: string[] | null;
  /** `null`: the child inherits the agent's environment */
  env: string[] | null;
  cwd: string;
  /** extra fd numbers (3+) bridged as streams */
  fds?: number[];
}

/** Env filtering patterns (globs or `/regex/`). */
export interface AgentConfig {
  env_keep: string[] | null;
  env_remove: string[] | null;
}

/** A log record from the agent; `lvl` is a Go slog level (-4 debug, 0 info, 4 warn, 8 error). */
export interface LogEntry {
  lvl: number;
  msg: string;
  /** `key=value` attributes */
  a?: string[];
}

/** Directories to enumerate; none means the agent's `$PATH`. */
export interface PathQuery {
  paths?: string[];
}

export interface PathInfoEntry {
  name: string;
  path: string;
  mode: number;
  size: Int64;
  /** nanoseconds since the epoch */
  mtime?: Int64;
}

export interface PathInfo {
  /** `null` when nothing was found (as the Go agent sends it) */
  entries: PathInfoEntry[] | null;
}

export interface FileOpReq {
  /** request id, never 0 on the wire from a well-behaved client */
  id: number;
  op: number;
  p?: string;
  np?: string;
  /** open flags, the client host's O_* values */
  fl?: number;
  /** permission bits + suid/sgid/sticky */
  mo?: number;
  uid?: number;
  gid?: number;
  h?: number;
  /** offset; negative for WriteAt means "at the handle's position" */
  of?: Int64;
  sz?: Int64;
  /** atime / mtime, nanoseconds */
  at?: Int64;
  mt?: Int64;
  d?: Uint8Array;
}

/** A stat result. `m` holds Go `os.FileMode` bits (dir = 1<<31, symlink = 1<<27), not st_mode. */
export interface FileStat {
  n: string;
  s: Int64;
  m: number;
  /** mtime / atime / ctime, nanoseconds */
  t?: Int64;
  at?: Int64;
  ct?: Int64;
  uid?: number;
  gid?: number;
  nl?: number;
  rd?: number;
  bl?: Int64;
  bs?: number;
  ino?: Int64;
  /** is a directory */
  d?: boolean;
}

export interface FileStatfs {
  b?: Int64;
  bf?: Int64;
  ba?: Int64;
  f?: Int64;
  ff?: Int64;
  bs?: number;
  fr?: number;
  nl?: number;
}

export interface FileDirEntry {
  st: FileStat;
}

export interface FileOpResp {
  id: number;
  /** errno number, 0 = success */
  er?: number;
  em?: string;
  h?: number;
  d?: Uint8Array;
  /** bytes read or written */
  n?: Int64;
  eof?: boolean;
  p?: string;
  st?: FileStat;
  sf?: FileStatfs;
  en?: FileDirEntry[];
}

export interface ExecFrame {
  t: typeof FrameType.Exec;
  x?: ExecMsg;
}
export interface DataFrame {
  t: typeof FrameType.Data;
  /** fd number: 0 stdin (absent on the wire), 1 stdout, 2 stderr, 3+ extra; decoded always set */
  s?: number;
  /** decoded always set (empty when absent) */
  d: Uint8Array;
}
export interface EofFrame {
  t: typeof FrameType.EOF;
  /** absent = 0 (stdin); decoded always set */
  s?: number;
}
export interface SignalFrame {
  t: typeof FrameType.Signal;
  /** decoded always set */
  sig?: number;
}
export interface ExitFrame {
  t: typeof FrameType.Exit;
  /** the exit code; absent = 0; decoded always set */
  c?: number;
  e?: string;
}
export interface ErrorFrame {
  t: typeof FrameType.Error;
  /** decoded always set */
  e?: string;
}
export interface LogFrame {
  t: typeof FrameType.Log;
  l?: LogEntry;
}
/** A Config frame without `cfg` is not a Config (the Go agent treats it as absent). */
export interface ConfigFrame {
  t: typeof FrameType.Config;
  cfg?: AgentConfig;
}
export interface PathQueryFrame {
  t: typeof FrameType.PathQuery;
  q?: PathQuery;
}
export interface PathInfoFrame {
  t: typeof FrameType.PathInfo;
  i?: PathInfo;
}
export interface FileOpFrame {
  t: typeof FrameType.FileOp;
  fop?: FileOpReq;
}
export interface FileRespFrame {
  t: typeof FrameType.FileResp;
  frp?: FileOpResp;
}

/** Every known frame, discriminated by `t`. */
export type Frame =
  | ExecFrame
  | DataFrame
  | EofFrame
  | SignalFrame
  | ExitFrame
  | ErrorFrame
  | LogFrame
  | ConfigFrame
  | PathQueryFrame
  | PathInfoFrame
  | FileOpFrame
  | FileRespFrame;

/** A frame whose type this version does not know (receivers ignore it; `t` 0 when absent). */
export interface UnknownFrame {
  t: number;
  unknown: true;
}

/** A known frame as decoded: the scalar fields absent on the wire are filled with their zero value. */
export type InboundFrame =
  | ExecFrame
  | (DataFrame & { s: number })
  | (EofFrame & { s: number })
  | (SignalFrame & { sig: number })
  | (ExitFrame & { c: number })
  | (ErrorFrame & { e: string })
  | LogFrame
  | ConfigFrame
  | PathQueryFrame
  | PathInfoFrame
  | FileOpFrame
  | FileRespFrame;

/** What {@link decodeFrame} returns: narrow it with {@link isKnownFrame} first. */
export type DecodedFrame = InboundFrame | UnknownFrame;

export function isKnownFrame(f: DecodedFrame): f is InboundFrame;
export function isKnownFrame(f: Frame | UnknownFrame): f is Frame;
export function isKnownFrame(f: Frame | UnknownFrame): boolean {
  return !('unknown' in f);
}

// ---------------------------------------------------------------------------------------------
// Encoding

type Obj = { [key: string]: CborEncodable };

function isZero(v: unknown): boolean {
  return (
    v === undefined ||
    v === null ||
    v === 0 ||
    v === 0n ||
    v === '' ||
    v === false ||
    (v instanceof Uint8Array && v.length === 0) ||
    (Array.isArray(v) && v.length === 0)
  );
}

/** Copies `keys` of `src` that are not zero (Go `omitempty`). */
function omitEmpty(out: Obj, src: object, keys: readonly string[]): Obj {
  for (const k of keys) {
    const v = (src as Record<string, unknown>)[k];
    if (!isZero(v)) out[k] = v as CborEncodable;
  }
  return out;
}

function list<T>(v: readonly T[] | null | undefined): readonly T[] | null {
  return v ?? null;
}

function execObj(x: ExecMsg): Obj {
  return omitEmpty(
    { path: x.path ?? '', argv: list(x.argv), env: list(x.env), cwd: x.cwd ?? '' },
    x,
    ['fds'],
  );
}

function statObj(st: FileStat): Obj {
  return omitEmpty({ n: st.n ?? '', s: st.s ?? 0, m: st.m ?? 0 }, st, [
    't',
    'at',
    'ct',
    'uid',
    'gid',
    'nl',
    'rd',
    'bl',
    'bs',
    'ino',
    'd',
  ]);
}

function reqObj(r: FileOpReq): Obj {
  return omitEmpty({ id: r.id ?? 0, op: r.op ?? 0 }, r, [
    'p',
    'np',
    'fl',
    'mo',
    'uid',
    'gid',
    'h',
    'of',
    'sz',
    'at',
    'mt',
    'd',
  ]);
}

function respObj(r: FileOpResp): Obj {
  const out = omitEmpty({ id: r.id ?? 0 }, r, ['er', 'em', 'h', 'd', 'n', 'eof', 'p']);
  if (r.st) out.st = statObj(r.st);
  if (r.sf) out.sf = omitEmpty({}, r.sf, ['b', 'bf', 'ba', 'f', 'ff', 'bs', 'fr', 'nl']);
  if (r.en && r.en.length > 0) out.en = r.en.map((e) => ({ st: statObj(e.st) }));
  return out;
}

/** The Go `Frame` struct as a CBOR map (what {@link encodeFrame} writes). */
export function frameToCbor(frame: Frame | UnknownFrame): Obj {
  const f = frame as Partial<Record<string, unknown>> & { t: number };
  const out = omitEmpty({ t: f.t }, f, ['s', 'd', 'sig', 'c', 'e']);
  const x = f.x as ExecMsg | undefined;
  if (x) out.x = execObj(x);
  const l = f.l as LogEntry | undefined;
  if (l) out.l = omitEmpty({ lvl: l.lvl ?? 0, msg: l.msg ?? '' }, l, ['a']);
  const cfg = f.cfg as AgentConfig | undefined;
  if (cfg) out.cfg = { env_keep: list(cfg.env_keep), env_remove: list(cfg.env_remove) };
  const q = f.q as PathQuery | undefined;
  if (q) out.q = omitEmpty({}, q, ['paths']);
  const i = f.i as PathInfo | undefined;
  if (i) {
    out.i = {
      entries:
        i.entries?.map((e) =>
          omitEmpty(
            { name: e.name ?? '', path: e.path ?? '', mode: e.mode ?? 0, size: e.size ?? 0 },
            e,
            ['mtime'],
          ),
        ) ?? null,
    };
  }
  const fop = f.fop as FileOpReq | undefined;
  if (fop) out.fop = reqObj(fop);
  const frp = f.frp as FileOpResp | undefined;
  if (frp) out.frp = respObj(frp);
  return out;
}

/** Encodes one frame as one CBOR item, byte-exact with the Go agent. */
export function encodeFrame(frame: Frame | UnknownFrame): Uint8Array {
  return encodeCbor(frameToCbor(frame));
}

// ---------------------------------------------------------------------------------------------
// Decoding

type CMap = Map<CborValue, CborValue>;

function bad(where: string, problem: string): AgentProtocolError {
  return new AgentProtocolError(ErrorCode.InvalidMessage, `invalid ${where}: ${problem}`);
}

function describe(v: CborValue): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return 'a byte string';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Map) return 'a map';
  if (typeof v === 'object') return 'a tag or simple value';
  if (typeof v === 'number' && !Number.isInteger(v)) return 'a float';
  if (typeof v === 'number' || typeof v === 'bigint') return 'an integer';
  return `a ${typeof v === 'string' ? 'text string' : typeof v}`;
}

const MIN_I32 = -(2n ** 31n);
const MAX_I32 = 2n ** 31n - 1n;
const MIN_I64 = -(2n ** 63n);
const MAX_I64 = 2n ** 63n - 1n;
const MAX_U64 = 2n ** 64n - 1n;

/** Field readers over one decoded map; `where` names the struct in errors. */
class Fields {
  constructor(
    private readonly m: CMap,
    readonly where: string,
  ) {}

  static of(v: CborValue, where: string): Fields {
    if (!(v instanceof Map)) throw bad(where, `expected a map, got ${describe(v)}`);
    return new Fields(v, where);
  }

  /** The value, or undefined when absent or null. */
  raw(key: string): CborValue {
    const v = this.m.get(key);
    return v === null ? undefined : v;
  }

  private wrong(key: string, v: CborValue, want: string): AgentProtocolError {
    return bad(this.where, `field "${key}" must be ${want}, got ${describe(v)}`);
  }

  /** An integer in [min, max]; `wide` allows a bigint result beyond 2^53. */
  int(key: string, min: bigint, max: bigint, wide = false): Int64 {
    const v = this.raw(key);
    if (v === undefined) return 0;
    if (typeof v === 'number' && Number.isInteger(v)) {
      // a safe integer compares exactly with the bounds as doubles (no BigInt per field)
      const outside = Number.isSafeInteger(v)
        ? v < Number(min) || v > Number(max)
        : BigInt(v) < min || BigInt(v) > max;
      if (outside) throw this.range(key, v, min, max);
      return v;
    }
    if (typeof v === 'bigint') {
      if (v < min || v > max || !wide) throw this.range(key, v, min, max, wide);
      return v;
    }
    throw this.wrong(key, v, 'an integer');
  }

  private range(key: string, v: Int64, min: bigint, max: bigint, wide = true): AgentProtocolError {
    // a 64-bit value where only a JS-safe one makes sense (codes, levels, signals)
    const limit =
      wide || typeof v === 'number' ? `${min}..${max}` : `a safe integer in ${min}..${max}`;
    return bad(this.where, `field "${key}" = ${v} is out of range (${limit})`);
  }

  u8(key: string): number {
    return this.int(key, 0n, 0xffn) as number;
  }
  u32(key: string): number {
    return this.int(key, 0n, 0xffffffffn) as number;
  }
  i32(key: string): number {
    return this.int(key, MIN_I32, MAX_I32) as number;
  }
  /** Go `int`: 64-bit, but only safe integers make sense for codes, levels, signals and ids. */
  int53(key: string): number {
    return this.int(key, MIN_I64, MAX_I64) as number;
  }
  i64(key: string): Int64 {
    return this.int(key, MIN_I64, MAX_I64, true);
  }
  u64(key: string): Int64 {
    return this.int(key, 0n, MAX_U64, true);
  }

  text(key: string): string {
    const v = this.raw(key);
    if (v === undefined) return '';
    if (typeof v !== 'string') throw this.wrong(key, v, 'a text string');
    return v;
  }

  bytes(key: string): Uint8Array {
    const v = this.raw(key);
    if (v === undefined) return Buffer.alloc(0); // decoded byte strings are Buffers
    if (!(v instanceof Uint8Array)) throw this.wrong(key, v, 'a byte string');
    return v;
  }

  bool(key: string): boolean {
    const v = this.raw(key);
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw this.wrong(key, v, 'a boolean');
    return v;
  }

  /** A list; `null` when absent or null. */
  list<T>(key: string, item: (v: CborValue, where: string) => T): T[] | null {
    const v = this.raw(key);
    if (v === undefined) return null;
    if (!Array.isArray(v)) throw this.wrong(key, v, 'an array');
    return v.map((e, i) => item(e, `${this.where}.${key}[${i}]`));
  }

  texts(key: string): string[] | null {
    return this.list(key, (e, where) => {
      if (typeof e !== 'string') throw bad(where, `expected a text string, got ${describe(e)}`);
      return e;
    });
  }

  /** A nested struct; undefined when absent or null. */
  sub<T>(key: string, read: (f: Fields) => T): T | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    return read(Fields.of(v, `${this.where}.${key}`));
  }
}

/** Sets `out[key] = value` unless it is the zero value (decoded optional fields stay absent). */
function opt<T extends object, K extends keyof T>(out: T, key: K, value: T[K]): void {
  if (!isZero(value)) out[key] = value;
}

function readExec(f: Fields): ExecMsg {
  const out: ExecMsg = {
    path: f.text('path'),
    argv: f.texts('argv'),
    env: f.texts('env'),
    cwd: f.text('cwd'),
  };
  const fds = f.list('fds', (v, where) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw bad(
        where,
        `expected a uint32 fd number, got ${describe(v)}${typeof v === 'number' ? ` ${v}` : ''}`,
      );
    }
    return v;
  });
  opt(out, 'fds', fds ?? undefined);
  return out;
}

function readStat(f: Fields): FileStat {
  const out: FileStat = { n: f.text('n'), s: f.i64('s'), m: f.u32('m') };
  opt(out, 't', f.i64('t'));
  opt(out, 'at', f.i64('at'));
  opt(out, 'ct', f.i64('ct'));
  opt(out, 'uid', f.u32('uid'));
  opt(out, 'gid', f.u32('gid'));
  opt(out, 'nl', f.u32('nl'));
  opt(out, 'rd', f.u32('rd'));
  opt(out, 'bl', f.u64('bl'));
  opt(out, 'bs', f.u32('bs'));
  opt(out, 'ino', f.u64('ino'));
  opt(out, 'd', f.bool('d'));
  return out;
}

function readStatfs(f: Fields): FileStatfs {
  const out: FileStatfs = {};
  for (const k of ['b', 'bf', 'ba', 'f', 'ff'] as const) opt(out, k, f.u64(k));
  for (const k of ['bs', 'fr', 'nl'] as const) opt(out, k, f.u32(k));
  return out;
}

function readReq(f: Fields): FileOpReq {
  const out: FileOpReq = { id: f.u32('id'), op: f.u8('op') };
  opt(out, 'p', f.text('p'));
  opt(out, 'np', f.text('np'));
  opt(out, 'fl', f.i32('fl'));
  opt(out, 'mo', f.u32('mo'));
  opt(out, 'uid', f.int53('uid'));
  opt(out, 'gid', f.int53('gid'));
  opt(out, 'h', f.u32('h'));
  opt(out, 'of', f.i64('of'));
  opt(out, 'sz', f.i64('sz'));
  opt(out, 'at', f.i64('at'));
  opt(out, 'mt', f.i64('mt'));
  opt(out, 'd', f.bytes('d'));
  return out;
}

function readResp(f: Fields): FileOpResp {
  const out: FileOpResp = { id: f.u32('id') };
  opt(out, 'er', f.u32('er'));
  opt(out, 'em', f.text('em'));
  opt(out, 'h', f.u32('h'));
  opt(out, 'd', f.bytes('d'));
  opt(out, 'n', f.i64('n'));
  opt(out, 'eof', f.bool('eof'));
  opt(out, 'p', f.text('p'));
  const st = f.sub('st', readStat);
  if (st) out.st = st;
  const sf = f.sub('sf', readStatfs);
  if (sf) out.sf = sf;
  const en = f.list('en', (v, where) => ({
    st: Fields.of(v, where).sub('st', readStat) ?? { n: '', s: 0, m: 0 },
  }));
  opt(out, 'en', en ?? undefined);
  return out;
}

function readPathInfo(f: Fields): PathInfo {
  return {
    entries: f.list('entries', (v, where) => {
      const e = Fields.of(v, where);
      const out: PathInfoEntry = {
        name: e.text('name'),
        path: e.text('path'),
        mode: e.u32('mode'),
        size: e.i64('size'),
      };
      opt(out, 'mtime', e.i64('mtime'));
      return out;
    }),
  };
}

/** Converts a decoded CBOR map into a frame (see the module comment for the rules). */
export function frameFromCbor(value: CborValue, where = 'frame'): DecodedFrame {
  const f = Fields.of(value, where);
  const t = f.u8('t');
  switch (t) {
    case FrameType.Exec: {
      const x = f.sub('x', readExec);
      return x ? { t, x } : { t };
    }
    case FrameType.Data:
      return { t, s: f.u32('s'), d: f.bytes('d') };
    case FrameType.EOF:
      return { t, s: f.u32('s') };
    case FrameType.Signal:
      return { t, sig: f.int53('sig') };
    case FrameType.Exit: {
      const out: ExitFrame & { c: number } = { t, c: f.int53('c') };
      opt(out, 'e', f.text('e'));
      return out;
    }
    case FrameType.Error:
      return { t, e: f.text('e') };
    case FrameType.Log: {
      const l = f.sub('l', (s) => {
        const out: LogEntry = { lvl: s.int53('lvl'), msg: s.text('msg') };
        opt(out, 'a', s.texts('a') ?? undefined);
        return out;
      });
      return l ? { t, l } : { t };
    }
    case FrameType.Config: {
      const cfg = f.sub('cfg', (s) => ({
        env_keep: s.texts('env_keep'),
        env_remove: s.texts('env_remove'),
      }));
      return cfg ? { t, cfg } : { t };
    }
    case FrameType.PathQuery: {
      const q = f.sub('q', (s) => {
        const out: PathQuery = {};
        opt(out, 'paths', s.texts('paths') ?? undefined);
        return out;
      });
      return q ? { t, q } : { t };
    }
    case FrameType.PathInfo: {
      const i = f.sub('i', readPathInfo);
      return i ? { t, i } : { t };
    }
    case FrameType.FileOp: {
      const fop = f.sub('fop', readReq);
      return fop ? { t, fop } : { t };
    }
    case FrameType.FileResp: {
      const frp = f.sub('frp', readResp);
      return frp ? { t, frp } : { t };
    }
    default:
      return { t, unknown: true };
  }
}

/** Decodes one frame from one complete CBOR item. */
export function decodeFrame(item: Uint8Array, options?: CborDecodeOptions): DecodedFrame {
  return frameFromCbor(decodeCbor(item, options));
}

const EMPTY = new Uint8Array(0);

/**
 * The inbound side of a frame stream: `push` the bytes as they arrive, then take frames with
 * `next()` until it returns undefined. Frames before a fault are all delivered; the fault is
 * thrown by the `next()` that reaches it (then by every later call). `end()` at end of stream
 * throws when the stream stopped inside an item. Item size and depth limits as in
 * {@link CborSequenceDecoder}; the decoder never buffers more than `maxItemSize` of an unfinished item.
 */
export class FrameDecoder {
  private readonly scanner: CborSequenceDecoder;
  private readonly views: boolean;
  private queue: Uint8Array[] = [];
  private head = 0;
  private error: AgentProtocolError | undefined;

  constructor(options?: CborDecodeOptions) {
    this.scanner = new CborSequenceDecoder(options);
    this.views = (options as InternalDecodeOptions | undefined)?.[byteStringViews] === true;
  }

  /** Queues the complete items in `chunk`; never throws for bad input (see {@link next}). */
  push(chunk: Uint8Array): void {
    if (this.error) return;
    try {
      for (const item of this.scanner.pushRaw(chunk)) this.queue.push(item);
    } catch (err) {
      this.error = AgentProtocolError.from(err, ErrorCode.InvalidMessage, 'invalid CBOR');
    }
    this.error ??= this.scanner.failure;
  }

  /** The next frame, or undefined when more bytes are needed. */
  next(): DecodedFrame | undefined {
    if (this.head === this.queue.length) {
      if (this.head > 0) {
        this.queue = [];
        this.head = 0;
      }
      if (this.error) throw this.error;
      return undefined;
    }
    const item = this.queue[this.head] as Uint8Array;
    this.queue[this.head++] = EMPTY; // taken: the queue does not keep its bytes alive
    try {
      return frameFromCbor(decodeScannedCbor(item, this.scanner.maxDepth, this.views));
    } catch (err) {
      this.queue = [];
      this.head = 0;
      this.error = AgentProtocolError.from(err, ErrorCode.InvalidMessage, 'invalid frame');
      throw this.error;
    }
  }

  /** Frames decoded and waiting to be taken. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** End of stream: throws if it stopped inside an item or the stream already failed. */
  end(): void {
    if (this.error) throw this.error;
    this.scanner.end();
  }
}

// ---------------------------------------------------------------------------------------------
// Recording records (long keys)

export const RecordType = {
  SessionHeader: 1,
  CommandStart: 2,
  Frame: 3,
  CommandEnd: 4,
  SessionFooter: 5,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

/** A recorded frame's direction: 1 sent local → agent, 2 received agent → local. */
export const RecordDirection = { Send: 1, Recv: 2 } as const;
export type RecordDirection = (typeof RecordDirection)[keyof typeof RecordDirection];

export interface SessionHeader {
  version: string;
  /** nanoseconds since the epoch */
  start_time: Int64;
  local_user: string;
  local_pid: number;
  /** legacy, SSH only */
  ssh_addr?: string;
  ssh_user?: string;
  backend_type?: string;
  backend_addr?: string;
  agent_path: string;
}

export interface CommandStart {
  seq: number;
  start_time: Int64;
  exec: ExecMsg;
}

export interface RecordedFrame {
  seq: number;
  /** nanoseconds since the epoch */
  ts: Int64;
  dir: number;
  frame: Frame | UnknownFrame;
}

export interface CommandEnd {
  seq: number;
  end_time: Int64;
  exit_code: number;
}

export interface SessionFooter {
  end_time: Int64;
  command_count: number;
}

export type RecordEntry =
  | { type: typeof RecordType.SessionHeader; header: SessionHeader }
  | { type: typeof RecordType.CommandStart; cmd_start: CommandStart }
  | { type: typeof RecordType.Frame; frame: RecordedFrame }
  | { type: typeof RecordType.CommandEnd; cmd_end: CommandEnd }
  | { type: typeof RecordType.SessionFooter; footer: SessionFooter };

/** The Go `Record` struct as a CBOR map. */
export function recordToCbor(rec: RecordEntry): Obj {
  switch (rec.type) {
    case RecordType.SessionHeader: {
      const h = rec.header;
      const header = omitEmpty(
        {
          version: h.version,
          start_time: h.start_time,
          local_user: h.local_user,
          local_pid: h.local_pid,
          agent_path: h.agent_path,
        },
        h,
        ['ssh_addr', 'ssh_user', 'backend_type', 'backend_addr'],
      );
      return { type: rec.type, header };
    }
    case RecordType.CommandStart: {
      const c = rec.cmd_start;
      return {
        type: rec.type,
        cmd_start: { seq: c.seq, start_time: c.start_time, exec: execObj(c.exec) },
      };
    }
    case RecordType.Frame: {
      const r = rec.frame;
      return {
        type: rec.type,
        frame: { seq: r.seq, ts: r.ts, dir: r.dir, frame: frameToCbor(r.frame) },
      };
    }
    case RecordType.CommandEnd:
      return {
        type: rec.type,
        cmd_end: {
          seq: rec.cmd_end.seq,
          end_time: rec.cmd_end.end_time,
          exit_code: rec.cmd_end.exit_code,
        },
      };
    case RecordType.SessionFooter:
      return {
        type: rec.type,
        footer: { end_time: rec.footer.end_time, command_count: rec.footer.command_count },
      };
    default:
      throw new RangeError(`unknown record type ${String((rec as { type: unknown }).type)}`);
  }
}

/** Encodes one record as one CBOR item, byte-exact with the Go recorder. */
export function encodeRecord(rec: RecordEntry): Uint8Array {
  return encodeCbor(recordToCbor(rec));
}

/** Converts a decoded CBOR map into a record; a record without its payload or of an unknown type is an error. */
export function recordFromCbor(value: CborValue): RecordEntry {
  const f = Fields.of(value, 'record');
  const type = f.u8('type');
  const need = <T>(key: string, read: (s: Fields) => T): T => {
    const v = f.sub(key, read);
    if (v === undefined) throw bad('record', `type ${type} without its "${key}" payload`);
    return v;
  };
  switch (type) {
    case RecordType.SessionHeader:
      return {
        type,
        header: need('header', (s) => {
          const out: SessionHeader = {
            version: s.text('version'),
            start_time: s.i64('start_time'),
            local_user: s.text('local_user'),
            local_pid: s.int53('local_pid'),
            agent_path: s.text('agent_path'),
          };
          for (const k of ['ssh_addr', 'ssh_user', 'backend_type', 'backend_addr'] as const)
            opt(out, k, s.text(k));
          return out;
        }),
      };
    case RecordType.CommandStart:
      return {
        type,
        cmd_start: need('cmd_start', (s) => ({
          seq: s.u32('seq'),
          start_time: s.i64('start_time'),
          exec: s.sub('exec', readExec) ?? { path: '', argv: null, env: null, cwd: '' },
        })),
      };
    case RecordType.Frame:
      return {
        type,
        frame: need('frame', (s) => ({
          seq: s.u32('seq'),
          ts: s.i64('ts'),
          dir: s.u8('dir'),
          frame: frameFromCbor(s.raw('frame') ?? new Map([['t', 0]]), 'record.frame.frame'),
        })),
      };
    case RecordType.CommandEnd:
      return {
        type,
        cmd_end: need('cmd_end', (s) => ({
          seq: s.u32('seq'),
          end_time: s.i64('end_time'),
          exit_code: s.int53('exit_code'),
        })),
      };
    case RecordType.SessionFooter:
      return {
        type,
        footer: need('footer', (s) => ({
          end_time: s.i64('end_time'),
          command_count: s.u32('command_count'),
        })),
      };
    default:
      throw bad('record', `unknown record type ${type}`);
  }
}

/** Decodes one record from one complete CBOR item. */
export function decodeRecord(item: Uint8Array, options?: CborDecodeOptions): RecordEntry {
  return recordFromCbor(decodeCbor(item, options));
}
