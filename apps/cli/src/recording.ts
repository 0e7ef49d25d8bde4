/**
 * `picket recording show FILE`: a readable dump of an agentproto session recording (MachineProxy's
 * Records 1–5, as written by @picket/agentproto's Recorder or by mproxy itself).
 */
import { constants } from 'node:os';
import {
  type DecodedFrame,
  FileOp,
  type Frame,
  FrameType,
  type Int64,
  type RecordEntry,
  RecordType,
  readRecordingFile,
  type UnknownFrame,
} from '@picket/agentproto';
import { escapeForLog, jsonForLog } from '@picket/protocol';
import { EXIT_FAILURE, EXIT_OK, parse, UsageError } from './common.js';

export const RECORDING_HELP = `Usage: picket recording show <file> [options]

Prints an agentproto session recording (the CBOR records of MachineProxy's
recorder, or of @picket/agentproto's Recorder) one line per record: the session
header, each command's start, its frames (offset from the command's start,
direction, frame), its end, and the footer. Text from the recording is escaped.
A recording cut short is printed up to the damage; the problem goes to stderr
and the exit code is 1.

Options:
  --data         print whole data payloads (default: the first 64 bytes)
  --json         one JSON object per record (64-bit numbers as strings, bytes as base64)
  -h, --help     this help`;

const OPTIONS = {
  data: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const PREVIEW = 64;
const FRAME_NAMES = new Map<number, string>(Object.entries(FrameType).map(([k, v]) => [v, k]));
const OP_NAMES = new Map<number, string>(Object.entries(FileOp).map(([k, v]) => [v, k]));
const SIGNAL_NAMES = new Map<number, string>(
  Object.entries(constants.signals).map(([k, v]) => [v as number, k]),
);
const LEVELS: Record<number, string> = { [-4]: 'DEBUG', 0: 'INFO', 4: 'WARN', 8: 'ERROR' };

/** Nanoseconds since the epoch as an ISO time with nanoseconds. */
export function isoNs(ns: Int64): string {
  const n = BigInt(ns);
  let ms = n / 1_000_000n;
  let sub = n % 1_000_000n;
  if (sub < 0n) {
    ms -= 1n;
    sub += 1_000_000n;
  }
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return `${n}ns`;
  return date.toISOString().replace('Z', `${sub.toString().padStart(6, '0')}Z`);
}

function seconds(ns: bigint): string {
  const sign = ns < 0n ? '-' : '+';
  const a = ns < 0n ? -ns : ns;
  return `${sign}${a / 1_000_000_000n}.${(a % 1_000_000_000n).toString().padStart(9, '0')}s`;
}

/** A string from the recording, quoted and escaped for the terminal. */
function q(s: string): string {
  return `"${escapeForLog(s).replace(/"/g, '\\"')}"`;
}

function list(items: readonly string[] | null | undefined, nil = 'null'): string {
  return items ? `[${items.map(q).join(', ')}]` : nil;
}

function bytes(d: Uint8Array, all: boolean): string {
  const shown = all ? d : d.subarray(0, PREVIEW);
  // invalid UTF-8 shows as U+FFFD; controls and the rest are escaped by q()
  const text = q(Buffer.from(shown).toString('utf8'));
  return `${d.length} byte${d.length === 1 ? '' : 's'} ${text}${shown.length < d.length ? '…' : ''}`;
}

/** One frame in one line. */
export function describeFrame(frame: Frame | UnknownFrame | DecodedFrame, all = false): string {
  const name = FRAME_NAMES.get(frame.t) ?? `type ${frame.t} (unknown)`;
  if ('unknown' in frame) return name;
  const f = frame as Frame;
  const parts: string[] = [name];
  switch (f.t) {
    case FrameType.Exec:
      if (f.x) {
        parts.push(q(f.x.path), `argv=${list(f.x.argv)}`);
        if (f.x.cwd) parts.push(`cwd=${q(f.x.cwd)}`);
        parts.push(`env=${list(f.x.env, 'inherit')}`);
        if (f.x.fds) parts.push(`fds=${f.x.fds.join(',')}`);
      }
      break;
    case FrameType.Data:
      parts.push(`fd=${f.s ?? 0}`, bytes(f.d, all));
      break;
    case FrameType.EOF:
      parts.push(`fd=${f.s ?? 0}`);
      break;
    case FrameType.Signal: {
      const sig = f.sig ?? 0;
      parts.push(`${sig}${SIGNAL_NAMES.has(sig) ? ` (${SIGNAL_NAMES.get(sig)})` : ''}`);
      break;
    }
    case FrameType.Exit:
      parts.push(`code=${f.c ?? 0}`);
      if (f.e) parts.push(`error=${q(f.e)}`);
      break;
    case FrameType.Error:
      parts.push(q(f.e ?? ''));
      break;
    case FrameType.Log:
      if (f.l) {
        parts.push(LEVELS[f.l.lvl] ?? `level ${f.l.lvl}`, q(f.l.msg));
        for (const a of f.l.a ?? []) parts.push(escapeForLog(a));
      }
      break;
    case FrameType.Config:
      if (f.cfg)
        parts.push(`env_keep=${list(f.cfg.env_keep)}`, `env_remove=${list(f.cfg.env_remove)}`);
      break;
    case FrameType.PathQuery:
      if (f.q) parts.push(`paths=${list(f.q.paths, '$PATH')}`);
      break;
    case FrameType.PathInfo:
      if (f.i) {
        const entries = f.i.entries ?? [];
        parts.push(`${entries.length} entries`);
        if (entries.length > 0) parts.push(list(entries.map((e) => e.name)));
      }
      break;
    case FrameType.FileOp:
      if (f.fop) {
        const r = f.fop;
        parts.push(`id=${r.id}`, OP_NAMES.get(r.op) ?? `op ${r.op}`);
        if (r.p) parts.push(q(r.p));
        if (r.np) parts.push(`→ ${q(r.np)}`);
        for (const k of ['h', 'fl', 'mo', 'uid', 'gid', 'of', 'sz', 'at', 'mt'] as const) {
          if (r[k] !== undefined) parts.push(`${k}=${k === 'mo' ? `0${r[k]?.toString(8)}` : r[k]}`);
        }
        if (r.d) parts.push(`d=${bytes(r.d, all)}`);
      }
      break;
    case FrameType.FileResp:
      if (f.frp) {
        const r = f.frp;
        parts.push(`id=${r.id}`);
        if (r.er) parts.push(`errno=${r.er}`);
        if (r.em) parts.push(q(r.em));
        if (r.h) parts.push(`h=${r.h}`);
        if (r.n !== undefined) parts.push(`n=${r.n}`);
        if (r.eof) parts.push('eof');
        if (r.p) parts.push(`p=${q(r.p)}`);
        if (r.st) parts.push(`stat(${q(r.st.n)} size=${r.st.s} mode=0x${r.st.m.toString(16)})`);
        if (r.sf) parts.push(`statfs(blocks=${r.sf.b ?? 0} free=${r.sf.bf ?? 0})`);
        if (r.en) parts.push(`${r.en.length} entries ${list(r.en.map((e) => e.st.n))}`);
        if (r.d) parts.push(`d=${bytes(r.d, all)}`);
      }
      break;
  }
  return parts.join(' ');
}

/** The dump, one line per record. */
export function formatRecords(records: readonly RecordEntry[], all = false): string[] {
  const starts = new Map<number, bigint>();
  const lines: string[] = [];
  for (const rec of records) {
    switch (rec.type) {
      case RecordType.SessionHeader: {
        const h = rec.header;
        const extra = [
          h.backend_type && `backend=${q(h.backend_type)}`,
          h.backend_addr && `addr=${q(h.backend_addr)}`,
          h.ssh_addr && `ssh=${q(h.ssh_addr)}`,
          h.ssh_user && `ssh_user=${q(h.ssh_user)}`,
        ].filter(Boolean);
        lines.push(
          `session ${isoNs(h.start_time)} version=${q(h.version)} user=${q(h.local_user)} pid=${h.local_pid} agent=${q(h.agent_path)}${extra.length ? ` ${extra.join(' ')}` : ''}`,
        );
        break;
      }
      case RecordType.CommandStart: {
        const c = rec.cmd_start;
        starts.set(c.seq, BigInt(c.start_time));
        const x = c.exec;
        lines.push(
          `command ${c.seq} start ${isoNs(c.start_time)} ${q(x.path)} argv=${list(x.argv)}${x.cwd ? ` cwd=${q(x.cwd)}` : ''} env=${list(x.env, 'inherit')}`,
        );
        break;
      }
      case RecordType.Frame: {
        const r = rec.frame;
        const start = starts.get(r.seq);
        const when = start === undefined ? isoNs(r.ts) : seconds(BigInt(r.ts) - start);
        const dir = r.dir === 1 ? 'send' : r.dir === 2 ? 'recv' : `dir ${r.dir}`;
        lines.push(`  ${when} #${r.seq} ${dir} ${describeFrame(r.frame, all)}`);
        break;
      }
      case RecordType.CommandEnd: {
        const c = rec.cmd_end;
        lines.push(`command ${c.seq} end ${isoNs(c.end_time)} exit=${c.exit_code}`);
        break;
      }
      case RecordType.SessionFooter:
        lines.push(`footer ${isoNs(rec.footer.end_time)} commands=${rec.footer.command_count}`);
        break;
    }
  }
  return lines;
}

/** A record as JSON-safe data: 64-bit numbers as strings, bytes as base64. */
function jsonSafe(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return { base64: Buffer.from(v).toString('base64') };
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonSafe(x)]));
  }
  return v;
}

/** `picket recording <show> …` */
export async function recordingCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('recording', args, OPTIONS);
  if (values.help) {
    process.stdout.write(`${RECORDING_HELP}\n`);
    return EXIT_OK;
  }
  const [sub, file, extra] = positionals;
  if (sub !== 'show') {
    throw new UsageError(
      sub === undefined ? 'missing subcommand (show)' : `unknown subcommand "${sub}" (show)`,
      'recording',
    );
  }
  if (file === undefined) throw new UsageError('missing the recording file', 'recording');
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`, 'recording');
  let contents: Awaited<ReturnType<typeof readRecordingFile>>;
  try {
    contents = await readRecordingFile(file);
  } catch (err) {
    process.stderr.write(`picket recording: cannot read ${file}: ${(err as Error).message}\n`);
    return EXIT_FAILURE;
  }
  const out = values.json
    ? contents.records.map((r) => jsonForLog(jsonSafe(r)))
    : formatRecords(contents.records, values.data === true);
  if (out.length > 0) process.stdout.write(`${out.join('\n')}\n`);
  if (contents.error) {
    process.stderr.write(
      `picket recording: ${file}: ${contents.records.length} records, then: ${contents.error.message}\n`,
    );
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}
