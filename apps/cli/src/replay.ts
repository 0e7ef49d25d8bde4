/**
 * `picket replay`: plays the proxy→agent events of a `picket record` recording to an agent on any
 * transport and diffs each answer with the recorded one; `--show` prints the recording.
 */
import { readFileSync } from 'node:fs';
import { createMessageCodec, decodeV1Request, decodeV1Response, getCodec } from '@picket/codec';
import {
  type AgentResponse,
  type Decision,
  describeMessageType,
  type EventMap,
  type EventType,
  escapeForLog,
  jsonForLog,
  MessageType,
} from '@picket/protocol';
import { formatEndpoint, V2Transport } from '@picket/transport';
import {
  CLIENT_OPTIONS,
  CLIENT_OPTIONS_HELP,
  clientSettings,
  connectFailure,
  describeFailure,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  endpointArg,
  parse,
  UsageError,
} from './common.js';
import { Dir, readTapRecording, type TapFrame, type TapRecord } from './record/format.js';
import { EVENT_OF_TYPE, eventCorrelationId } from './record/redact.js';
import { isoNs } from './recording.js';

export const REPLAY_HELP = `Usage: picket replay <file> --to <endpoint> [options]
       picket replay <file> --show [--json]

Replays a 'picket record' recording: for each recorded connection it connects to
--to (any transport: unix:, grpc://, v1+unix:, …; the handshake is the normal
client's), sends the recorded proxy→agent events in their recorded order, and
compares each answer with the agent's recorded answer. Prints a diff per
request that differs.

Compared: the whole AgentResponse except its version, the routing key
audit.custom.correlation_id and timing values in audit.custom (*_ms, *time*,
duration, latency, timestamp); audit.custom values are compared as text (gRPC
carries them as strings). The agent id of the handshake must match unless
--ignore-agent-id, which also masks the agent id wherever an answer holds it.
Not replayed: handshakes (the client makes its own), cancels, pings, control
messages, undecodable frames, and events the recording has no answer to.

A redacted recording (the default of 'picket record') cannot be replayed: record
with --no-redact.

Options:
  --to <endpoint>          the agent to replay to
  --ignore <path>          also ignore this field, e.g. audit.custom.request_num or
                           request_headers (repeatable)
  --ignore-agent-id        the agent may have another id
  --show                   print the recording (one line per record) instead
${CLIENT_OPTIONS_HELP}

Exit codes: 0 every answer matched, 1 an answer differed (or failed),
2 bad usage, an unreadable or redacted recording, or the agent unreachable.`;

const OPTIONS = {
  ...CLIENT_OPTIONS,
  to: { type: 'string' },
  ignore: { type: 'string', multiple: true },
  'ignore-agent-id': { type: 'boolean' },
  show: { type: 'boolean' },
} as const;

/** One recorded event and the agent's recorded answer. */
interface Exchange {
  conn: number;
  index: number;
  type: EventType;
  event: EventMap[EventType];
  cid: string;
  answer?: AgentResponse;
}

interface Conn {
  id: number;
  agentId?: string;
  exchanges: Exchange[];
}

function fail(message: string): never {
  throw new UsageError(message, 'replay');
}

/** Events and answers per connection, paired by correlation id (v1: in order). */
function model(records: TapRecord[], v1: boolean): { conns: Conn[]; unreadable: number } {
  const conns = new Map<number, Conn>();
  const open = new Map<number, Exchange[]>();
  let unreadable = 0;
  const conn = (id: number): Conn => {
    let c = conns.get(id);
    if (!c) {
      c = { id, exchanges: [] };
      conns.set(id, c);
      open.set(id, []);
    }
    return c;
  };
  for (const rec of records) {
    if (rec.type === 2) conn(rec.conn_start.id);
    if (rec.type !== 3) continue;
    const f = rec.frame;
    const c = conn(f.conn);
    const pending = open.get(f.conn) as Exchange[];
    if (f.error !== undefined) {
      unreadable++;
      continue;
    }
    const add = (type: EventType, event: EventMap[EventType]) => {
      const x = {
        conn: c.id,
        index: c.exchanges.length + 1,
        type,
        event,
        cid: eventCorrelationId(type, event),
      };
      c.exchanges.push(x);
      pending.push(x);
    };
    if (v1) {
      if (f.dir === Dir.ProxyToAgent) {
        const req = decodeV1Request(f.payload);
        if (req.event_type === 'configure') {
          add('configure', { correlation_id: '', config: req.payload.config });
        } else add(req.event_type, req.payload as EventMap[EventType]);
      } else {
        const x = pending.shift();
        if (x) x.answer = decodeV1Response(f.payload);
      }
      continue;
    }
    const codec = createMessageCodec(f.encoding ?? 'json');
    const event = f.type === undefined ? undefined : EVENT_OF_TYPE.get(f.type);
    if (f.dir === Dir.ProxyToAgent && event !== undefined) {
      add(event, codec.decodeEvent(event, f.payload));
    } else if (f.dir === Dir.AgentToProxy && f.type === MessageType.HandshakeResponse) {
      const h = getCodec('json').decode(f.payload) as { capabilities?: { agent_id?: unknown } };
      const id = h?.capabilities?.agent_id;
      if (typeof id === 'string') c.agentId = id;
    } else if (f.dir === Dir.AgentToProxy && f.type === MessageType.AgentResponse) {
      const answer = codec.decodeResponse(f.payload);
      const cid = answer.audit.custom.correlation_id;
      const i = pending.findIndex((x) => x.cid === cid);
      if (i >= 0) {
        (pending[i] as Exchange).answer = answer;
        pending.splice(i, 1);
      }
    }
  }
  return { conns: [...conns.values()], unreadable };
}

// ------------------------------------------------------------------------------------ diffing

const TIMING = /(^|_)(ms|time|duration|latency|elapsed|timestamp)(_|$)|_ms$|time/i;

interface Norm {
  ignore: string[];
  agentIds: string[];
}

function mask(v: unknown, ids: string[]): unknown {
  if (typeof v === 'string') return ids.includes(v) ? '<agent-id>' : v;
  if (Array.isArray(v)) return v.map((x) => mask(x, ids));
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mask(x, ids)]));
  }
  return v;
}

/** The answer as compared: plain JSON without the fields that legitimately differ. */
function normalize(r: AgentResponse, n: Norm): Record<string, unknown> {
  const o = JSON.parse(JSON.stringify(r)) as Record<string, unknown>;
  delete o.version;
  const audit = o.audit as { custom?: Record<string, unknown> } | undefined;
  if (audit?.custom) {
    const custom: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(audit.custom)) {
      if (k === 'correlation_id' || TIMING.test(k)) continue;
      custom[k] = typeof v === 'string' ? v : JSON.stringify(v);
    }
    audit.custom = custom;
  }
  const masked = (n.agentIds.length > 0 ? mask(o, n.agentIds) : o) as Record<string, unknown>;
  for (const path of n.ignore) {
    const keys = path.split('.');
    let at: unknown = masked;
    for (const k of keys.slice(0, -1)) at = (at as Record<string, unknown> | undefined)?.[k];
    if (at !== null && typeof at === 'object')
      delete (at as Record<string, unknown>)[keys.at(-1) as string];
  }
  return masked;
}

/** JSON with keys sorted at every level, so key order never counts as a difference. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** Fields compared one by one: the top-level ones, and audit's members. */
function fields(r: Record<string, unknown>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(r)) {
    if (k === 'audit' && v !== null && typeof v === 'object') {
      for (const [a, x] of Object.entries(v)) out.set(`audit.${a}`, stable(x));
    } else out.set(k, stable(v));
  }
  return out;
}

interface Difference {
  path: string;
  recorded?: string;
  replayed?: string;
}

function differences(a: Record<string, unknown>, b: Record<string, unknown>): Difference[] {
  const fa = fields(a);
  const fb = fields(b);
  const out: Difference[] = [];
  for (const path of new Set([...fa.keys(), ...fb.keys()])) {
    const x = fa.get(path);
    const y = fb.get(path);
    if (x !== y) {
      out.push({
        path,
        ...(x !== undefined && { recorded: x }),
        ...(y !== undefined && { replayed: y }),
      });
    }
  }
  return out;
}

function decisionText(d: Decision): string {
  if (d === 'allow') return 'allow';
  if ('block' in d) return `block ${d.block.status}${d.block.body ? ` "${d.block.body}"` : ''}`;
  if ('redirect' in d) return `redirect ${d.redirect.status} ${d.redirect.url}`;
  return `challenge ${d.challenge.challenge_type}`;
}

function describeExchange(x: Exchange): string {
  const e = x.event as unknown as Record<string, unknown>;
  let what = '';
  if (x.type === 'request_headers') what = ` ${String(e.method)} ${String(e.uri)}`;
  else if (x.type === 'response_headers') what = ` status ${String(e.status)}`;
  else if (x.type.endsWith('_chunk')) what = ` chunk ${String(e.chunk_index)}`;
  return `connection ${x.conn} #${x.index} ${x.type}${what} (correlation id ${x.cid})`;
}

// ------------------------------------------------------------------------------------ output

/**
 * main() exits the process right after a command returns, and stdout to a pipe is written
 * asynchronously: a long --show would lose its tail. Lines are kept here and flushed, with a wait
 * for the write to finish, before returning.
 */
const pending: string[] = [];

function print(line: string): void {
  pending.push(`${line}\n`);
}

function flush(): Promise<void> {
  const text = pending.splice(0).join('');
  return new Promise((resolve) => process.stdout.write(text, () => resolve()));
}

// ------------------------------------------------------------------------------------ --show

/** Bytes as base64 so a decoded payload prints as JSON. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), plain(x)]));
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

function decodedPayload(f: TapFrame): unknown {
  if (f.error !== undefined) return undefined;
  try {
    // events and answers as picket reads them (msgpack arrays become named fields)
    const codec = createMessageCodec(f.encoding ?? 'json');
    const event = f.type === undefined ? undefined : EVENT_OF_TYPE.get(f.type);
    if (event !== undefined) return plain(codec.decodeEvent(event, f.payload));
    if (f.type === MessageType.AgentResponse) return plain(codec.decodeResponse(f.payload));
    return plain(getCodec(f.encoding ?? 'json').decode(f.payload));
  } catch {
    return undefined;
  }
}

function show(records: TapRecord[], json: boolean): void {
  const out = print;
  for (const r of records) {
    if (json) {
      const body =
        r.type === 3
          ? {
              ...r.frame,
              ts: String(r.frame.ts),
              dir: r.frame.dir === Dir.ProxyToAgent ? 'proxy->agent' : 'agent->proxy',
              payload: Buffer.from(r.frame.payload).toString('base64'),
              decoded: decodedPayload(r.frame) ?? null,
            }
          : r.type === 1
            ? { ...r.header, start_time: String(r.header.start_time) }
            : r.type === 2
              ? { ...r.conn_start, start_time: String(r.conn_start.start_time) }
              : r.type === 4
                ? { ...r.conn_end, end_time: String(r.conn_end.end_time) }
                : { ...r.footer, end_time: String(r.footer.end_time) };
      const name = ['', 'header', 'conn_start', 'frame', 'conn_end', 'footer'][r.type];
      out(jsonForLog({ record: name, ...body }));
      continue;
    }
    switch (r.type) {
      case 1: {
        const h = r.header;
        out(
          escapeForLog(
            `header ${h.format} v${h.version} ${isoNs(h.start_time)} ${h.listen} → ${h.to} (${h.protocol}${h.redacted ? ', redacted' : ''})`,
          ),
        );
        break;
      }
      case 2:
        out(`conn ${r.conn_start.id} start ${isoNs(r.conn_start.start_time)}`);
        break;
      case 3: {
        const f = r.frame;
        const dir = f.dir === Dir.ProxyToAgent ? 'proxy→agent' : 'agent→proxy';
        const type = f.type === undefined ? 'v1' : describeMessageType(f.type);
        const head = `conn ${f.conn} ${isoNs(f.ts)} ${dir} ${type} ${f.encoding ?? '-'} ${f.length} bytes`;
        const body =
          f.error !== undefined
            ? `UNDECODABLE: ${f.error} [${Buffer.from(f.payload.subarray(0, 64)).toString('hex')}]`
            : jsonForLog(decodedPayload(f));
        out(`${head} ${escapeForLog(body)}`);
        break;
      }
      case 4:
        out(
          escapeForLog(
            `conn ${r.conn_end.id} end ${isoNs(r.conn_end.end_time)}: ${r.conn_end.reason}`,
          ),
        );
        break;
      case 5:
        out(`footer ${isoNs(r.footer.end_time)} ${r.footer.conn_count} connection(s)`);
        break;
    }
  }
}

// ------------------------------------------------------------------------------------ command

/** `picket replay`. */
export async function replay(args: string[]): Promise<number> {
  const { values: v, positionals } = parse('replay', args, OPTIONS);
  if (v.help) {
    process.stdout.write(`${REPLAY_HELP}\n`);
    return EXIT_OK;
  }
  const file = positionals[0];
  if (file === undefined) fail('missing <file> (a recording made by picket record)');
  if (positionals.length > 1) fail(`unexpected argument "${positionals[1]}"`);
  if (!v.show && v.to === undefined)
    fail('missing --to <endpoint> (or --show to print the recording)');

  let contents: ReturnType<typeof readTapRecording>;
  try {
    contents = readTapRecording(readFileSync(file));
  } catch (err) {
    process.stderr.write(
      `picket replay: cannot read ${escapeForLog(file)}: ${escapeForLog((err as Error).message)}\n`,
    );
    return EXIT_USAGE;
  }
  const { records, truncated } = contents;
  if (truncated !== undefined) {
    process.stderr.write(
      `picket replay: ${escapeForLog(file)} ends early (${escapeForLog(truncated)}); using the records before it\n`,
    );
  }
  if (v.show) {
    show(records, v.json === true);
    await flush();
    // like 'picket recording show': a damaged recording is printed up to the damage, exit 1
    return truncated === undefined ? EXIT_OK : EXIT_FAILURE;
  }
  const header = (records[0] as Extract<TapRecord, { type: 1 }>).header;
  if (header.redacted) {
    process.stderr.write(
      `picket replay: ${escapeForLog(file)} is a redacted recording (header values and bodies were replaced), so its events cannot be replayed; record again with 'picket record --no-redact'\n`,
    );
    return EXIT_USAGE;
  }
  const ep = endpointArg('replay', v.to);
  const { agentId, options, timeoutMs } = clientSettings('replay', ep, v);
  let m: ReturnType<typeof model>;
  try {
    m = model(records, header.protocol === 'v1');
  } catch (err) {
    process.stderr.write(
      `picket replay: ${escapeForLog(file)}: a recorded frame does not decode: ${escapeForLog((err as Error).message)}\n`,
    );
    return EXIT_USAGE;
  }

  const say = (line: string) => print(escapeForLog(line));
  const results: Record<string, unknown>[] = [];
  let same = 0;
  let differ = 0;
  let skipped = 0;
  for (const c of m.conns) {
    const todo = c.exchanges.filter((x) => x.answer !== undefined);
    skipped += c.exchanges.length - todo.length;
    if (todo.length === 0) continue;
    let t: V2Transport;
    try {
      t = await V2Transport.connect(agentId, ep, options);
    } catch (err) {
      await flush();
      process.stderr.write(`picket replay: ${connectFailure(err, ep)}\n`);
      return EXIT_USAGE;
    }
    const replayId = t.capabilities.agent_id;
    const norm: Norm = {
      ignore: v.ignore ?? [],
      agentIds: v['ignore-agent-id'] ? [c.agentId, replayId].filter((x): x is string => !!x) : [],
    };
    if (!v['ignore-agent-id'] && c.agentId !== undefined && c.agentId !== replayId) {
      differ++;
      say(
        `connection ${c.id}: agent id differs: recorded ${c.agentId}, replayed ${replayId} (--ignore-agent-id to accept)`,
      );
      results.push({
        conn: c.id,
        identical: false,
        agentId: { recorded: c.agentId, replayed: replayId },
      });
    }
    for (const x of todo) {
      const recorded = x.answer as AgentResponse;
      let diffs: Difference[];
      let got: AgentResponse | undefined;
      let error: string | undefined;
      try {
        got = await t.send(x.type, x.event, { timeoutMs });
        diffs = differences(normalize(recorded, norm), normalize(got, norm));
      } catch (err) {
        error = describeFailure(err, ep.endpoint);
        diffs = [{ path: '(answer)', recorded: 'an answer', replayed: `no answer: ${error}` }];
      }
      const identical = diffs.length === 0;
      if (identical) same++;
      else differ++;
      results.push({
        conn: x.conn,
        index: x.index,
        event: x.type,
        correlationId: x.cid,
        identical,
        ...(!identical && { differences: diffs }),
      });
      if (identical || v.json) continue;
      say(`${describeExchange(x)} differs:`);
      say(
        `  decision: recorded ${decisionText(recorded.decision)}, replayed ${got ? decisionText(got.decision) : `no answer (${error})`}`,
      );
      for (const d of diffs) {
        if (d.path === 'decision') continue; // said above
        say(
          `  ${d.path}: recorded ${d.recorded ?? '(absent)'}, replayed ${d.replayed ?? '(absent)'}`,
        );
      }
    }
    await t.close().catch(() => {});
  }
  const summary = `replayed ${same + differ} answer(s) from ${m.conns.length} connection(s) to ${formatEndpoint(ep)}: ${same} identical, ${differ} different, ${skipped} event(s) without a recorded answer skipped, ${m.unreadable} undecodable frame(s) ignored`;
  if (v.json) {
    print(
      jsonForLog({
        identical: differ === 0,
        same,
        differ,
        skipped,
        undecodable: m.unreadable,
        results,
      }),
    );
  } else say(summary);
  await flush();
  return differ === 0 ? EXIT_OK : EXIT_FAILURE;
}
