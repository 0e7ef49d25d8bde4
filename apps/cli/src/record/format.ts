/**
 * The tap recording format (`picket record` writes it, `picket replay` reads it): a CBOR sequence
 * (RFC 8742, @picket/agentproto's canonical codec) of records shaped like agentproto's session
 * records — header, one start per tapped connection, one record per frame, one end per
 * connection, footer — but carrying Zentinel frames. agentproto's own Record 3 cannot: its frame
 * field is an agentproto frame, and its reader keeps only the type of a frame it does not know.
 *
 * Every record is a map `{type, <body>}`:
 * - 1 `header`: format, version, start_time (ns since the epoch), listen, to, protocol ('v2' or
 *   'v1'), redacted
 * - 2 `conn_start`: id, start_time
 * - 3 `frame`: conn, ts, dir (1 proxy→agent, 2 agent→proxy), type (the v2 type byte; absent for
 *   v1 and for bytes after a framing error), encoding (how the payload is encoded), payload (the
 *   frame's bytes as relayed, or their redacted re-encoding), length (the relayed payload's size),
 *   error (why the frame is undecodable; absent when it decoded)
 * - 4 `conn_end`: id, end_time, reason
 * - 5 `footer`: end_time, conn_count
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { CborSequenceDecoder, type CborValue, encodeCbor, type Int64 } from '@picket/agentproto';
import type { Encoding } from '@picket/protocol';

export const TAP_FORMAT = 'picket-zentinel-tap';
export const TAP_FORMAT_VERSION = 1;

export const Dir = { ProxyToAgent: 1, AgentToProxy: 2 } as const;
export type Dir = (typeof Dir)[keyof typeof Dir];

export interface TapHeader {
  format: string;
  version: number;
  start_time: Int64;
  listen: string;
  to: string;
  protocol: 'v2' | 'v1';
  redacted: boolean;
}

export interface TapFrame {
  conn: number;
  ts: Int64;
  dir: Dir;
  /** v2 type byte; absent for v1 messages and for raw bytes after a framing error */
  type?: number;
  encoding?: Encoding;
  payload: Uint8Array;
  /** size of the relayed payload (differs from `payload.length` when redacted) */
  length: number;
  /** why the frame could not be decoded */
  error?: string;
}

export type TapRecord =
  | { type: 1; header: TapHeader }
  | { type: 2; conn_start: { id: number; start_time: Int64 } }
  | { type: 3; frame: TapFrame }
  | { type: 4; conn_end: { id: number; end_time: Int64; reason: string } }
  | { type: 5; footer: { end_time: Int64; conn_count: number } };

/** Largest record the reader accepts: a 16 MiB frame plus room for the keys. */
const MAX_RECORD = 16 * 1024 * 1024 + 4096;

function nanoClock(): () => Int64 {
  const wall = BigInt(Date.now()) * 1_000_000n;
  const mono = process.hrtime.bigint();
  return () => wall + (process.hrtime.bigint() - mono);
}

/** Appends records to a file created with mode 0600 (a recording can hold secrets). */
export class TapWriter {
  readonly now = nanoClock();
  private error: Error | undefined;

  private constructor(private readonly file: WriteStream) {
    file.on('error', (err) => {
      this.error ??= err;
    });
  }

  static async open(path: string): Promise<TapWriter> {
    const file = createWriteStream(path, { flags: 'w', mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      file.once('open', () => resolve());
      file.once('error', reject);
    });
    return new TapWriter(file);
  }

  /** The first write error, if any (later records are dropped). */
  get failed(): Error | undefined {
    return this.error;
  }

  write(rec: TapRecord): void {
    if (this.error || this.file.writableEnded) return;
    // plain objects with text keys; `undefined` members are left out by the encoder
    this.file.write(encodeCbor(rec as unknown as Parameters<typeof encodeCbor>[0]));
  }

  /** Flushes and closes the file; rejects with the first write error. */
  async close(): Promise<void> {
    if (!this.file.writableEnded) {
      await new Promise<void>((resolve) => this.file.end(() => resolve()));
    }
    if (this.error) throw this.error;
  }
}

// ------------------------------------------------------------------------------------ reading

function bad(where: string, problem: string): Error {
  return new Error(`${where}: ${problem}`);
}

function field(m: Map<CborValue, CborValue>, key: string): CborValue {
  return m.get(key);
}

function asMap(v: CborValue, where: string): Map<CborValue, CborValue> {
  if (!(v instanceof Map)) throw bad(where, 'expected a map');
  return v;
}

function asInt(v: CborValue, where: string): Int64 {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  throw bad(where, 'expected an integer');
}

function asNum(v: CborValue, where: string): number {
  const n = asInt(v, where);
  if (typeof n !== 'number') throw bad(where, 'integer out of range');
  return n;
}

function asStr(v: CborValue, where: string): string {
  if (typeof v !== 'string') throw bad(where, 'expected text');
  return v;
}

function optStr(v: CborValue, where: string): string | undefined {
  return v === undefined || v === null ? undefined : asStr(v, where);
}

function toRecord(item: CborValue, index: number): TapRecord {
  const where = `record ${index}`;
  const m = asMap(item, where);
  const type = field(m, 'type');
  switch (type) {
    case 1: {
      const h = asMap(field(m, 'header'), `${where} header`);
      const protocol = asStr(field(h, 'protocol'), `${where} header.protocol`);
      if (protocol !== 'v2' && protocol !== 'v1') {
        throw bad(`${where} header.protocol`, `unknown protocol "${protocol}"`);
      }
      return {
        type,
        header: {
          format: asStr(field(h, 'format'), `${where} header.format`),
          version: asNum(field(h, 'version'), `${where} header.version`),
          start_time: asInt(field(h, 'start_time'), `${where} header.start_time`),
          listen: asStr(field(h, 'listen'), `${where} header.listen`),
          to: asStr(field(h, 'to'), `${where} header.to`),
          protocol,
          redacted: field(h, 'redacted') === true,
        },
      };
    }
    case 2: {
      const c = asMap(field(m, 'conn_start'), `${where} conn_start`);
      return {
        type,
        conn_start: {
          id: asNum(field(c, 'id'), `${where} conn_start.id`),
          start_time: asInt(field(c, 'start_time'), `${where} conn_start.start_time`),
        },
      };
    }
    case 3: {
      const f = asMap(field(m, 'frame'), `${where} frame`);
      const dir = asNum(field(f, 'dir'), `${where} frame.dir`);
      if (dir !== 1 && dir !== 2) throw bad(`${where} frame.dir`, `expected 1 or 2, got ${dir}`);
      const payload = field(f, 'payload');
      if (!(payload instanceof Uint8Array)) throw bad(`${where} frame.payload`, 'expected bytes');
      const t = field(f, 'type');
      const encoding = optStr(field(f, 'encoding'), `${where} frame.encoding`);
      const error = optStr(field(f, 'error'), `${where} frame.error`);
      return {
        type,
        frame: {
          conn: asNum(field(f, 'conn'), `${where} frame.conn`),
          ts: asInt(field(f, 'ts'), `${where} frame.ts`),
          dir,
          ...(t !== undefined && { type: asNum(t, `${where} frame.type`) }),
          ...(encoding !== undefined && { encoding: encoding as Encoding }),
          payload,
          length: asNum(field(f, 'length'), `${where} frame.length`),
          ...(error !== undefined && { error }),
        },
      };
    }
    case 4: {
      const c = asMap(field(m, 'conn_end'), `${where} conn_end`);
      return {
        type,
        conn_end: {
          id: asNum(field(c, 'id'), `${where} conn_end.id`),
          end_time: asInt(field(c, 'end_time'), `${where} conn_end.end_time`),
          reason: asStr(field(c, 'reason'), `${where} conn_end.reason`),
        },
      };
    }
    case 5: {
      const c = asMap(field(m, 'footer'), `${where} footer`);
      return {
        type,
        footer: {
          end_time: asInt(field(c, 'end_time'), `${where} footer.end_time`),
          conn_count: asNum(field(c, 'conn_count'), `${where} footer.conn_count`),
        },
      };
    }
    default:
      throw bad(where, `unknown record type ${String(type)}`);
  }
}

/**
 * Reads a whole tap recording. Throws when the first record is not a tap header (naming what the
 * file is instead) or a record is malformed; a recording cut short (the recorder was killed)
 * returns the records before the damage with `truncated` set.
 */
export function readTapRecording(bytes: Uint8Array): {
  records: TapRecord[];
  truncated?: string;
} {
  const decoder = new CborSequenceDecoder({ maxItemSize: MAX_RECORD });
  const records: TapRecord[] = [];
  // good items before a fault come back first; the fault is thrown by end()
  let items: CborValue[] = [];
  let truncated: string | undefined;
  try {
    items = decoder.push(bytes);
    decoder.end();
  } catch (err) {
    truncated = (err as Error).message;
  }
  const notOurs = new Error(
    `not a ${TAP_FORMAT} recording (no tap header first; an agentproto session recording is read with 'picket recording show')`,
  );
  let first: TapRecord;
  try {
    first = toRecord(items[0], 0);
  } catch {
    throw notOurs;
  }
  if (first.type !== 1 || first.header.format !== TAP_FORMAT) throw notOurs;
  for (const [i, item] of items.entries()) records.push(i === 0 ? first : toRecord(item, i));
  if (first.header.version !== TAP_FORMAT_VERSION) {
    throw new Error(`unsupported ${TAP_FORMAT} version ${first.header.version}`);
  }
  return truncated === undefined ? { records } : { records, truncated };
}
