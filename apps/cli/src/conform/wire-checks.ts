/**
 * The wire-level checks of `picket conform`: bytes no transport would send (oversize, garbage,
 * bad payloads, unknown types, truncated frames, an unknown version), each on a fresh raw
 * connection to a UDS or v1 agent. The agent must not answer allow, must not die, and must keep
 * serving new connections.
 */
import { randomBytes } from 'node:crypto';
import { createMessageCodec, type V1Request } from '@picket/codec';
import {
  decisionKind,
  type Encoding,
  type EventMap,
  type EventType,
  MAX_UDS_FRAME_LENGTH,
  MAX_V1_MESSAGE_SIZE,
  MessageType,
} from '@picket/protocol';
import type { GrpcEndpoint } from '@picket/transport';
import { type Check, type CheckResult, type ConformContext, fail, pass, skip } from './context.js';
import * as ev from './events.js';
import {
  GRPC_DEFAULT_MAX_MESSAGE,
  type GrpcOutcome,
  grpcFrame,
  grpcMessages,
  grpcWireSupported,
  rawGrpcCall,
} from './grpc-wire.js';
import type { RawTarget } from './targets.js';
import {
  handshakeRequestBytes,
  type Next,
  type RawConnection,
  rawHandshake,
  v1RequestBytes,
} from './wire.js';

const EVENT_FRAME: Record<EventType, number> = {
  request_headers: MessageType.RequestHeaders,
  request_body_chunk: MessageType.RequestBodyChunk,
  response_headers: MessageType.ResponseHeaders,
  response_body_chunk: MessageType.ResponseBodyChunk,
  request_complete: MessageType.RequestComplete,
  web_socket_frame: MessageType.WebSocketFrame,
  guardrail_inspect: MessageType.GuardrailInspect,
  configure: MessageType.Configure,
};

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function sendEvent<K extends EventType>(
  conn: RawConnection,
  type: K,
  event: EventMap[K],
  cid: string,
  encoding: Encoding,
): void {
  if (conn.kind === 'v2') {
    conn.frame(EVENT_FRAME[type], createMessageCodec(encoding).encodeEvent(type, event, cid));
  } else {
    conn.frame(0, v1RequestBytes({ version: 1, event_type: type, payload: event } as V1Request));
  }
}

/** A fresh connection after its handshake (v2) or registration (reverse). */
async function ready(
  raw: RawTarget,
  encodings: Encoding[] = ['json'],
): Promise<{ conn: RawConnection; encoding: Encoding } | string> {
  const r = await raw.open(encodings);
  if (typeof r === 'string') return r;
  return { conn: r.conn, encoding: r.encoding ?? 'json' };
}

/** Undefined while the agent still answers a request on a new connection, else why not. */
async function stillServing(ctx: ConformContext, raw: RawTarget): Promise<string | undefined> {
  const r = await ready(raw);
  if (typeof r === 'string') return `afterwards a new connection fails (${r})`;
  try {
    const cid = ctx.nextId();
    sendEvent(r.conn, 'request_headers', ev.requestHeaders(cid), cid, r.encoding);
    const n = await r.conn.nextOf(MessageType.AgentResponse, ctx.timeoutMs);
    if (n.kind !== 'frame')
      return `afterwards a new connection gets no answer (${describe(n, ctx)})`;
    return undefined;
  } finally {
    r.conn.close();
  }
}

function describe(n: Next, ctx: ConformContext): string {
  if (n.kind === 'timeout') return `nothing within ${ctx.timeoutMs} ms`;
  if (n.kind === 'closed') return `closed${n.error ? `: ${n.error}` : ''}`;
  return `frame type 0x${n.frame.type.toString(16).padStart(2, '0')}`;
}

/** What the agent did after a bad input: `allow` is the one answer that fails. */
interface Reaction {
  allowed: boolean;
  text: string;
}

async function reaction(
  conn: RawConnection,
  ctx: ConformContext,
  encoding: Encoding,
): Promise<Reaction> {
  const n = await conn.nextOf(MessageType.AgentResponse, ctx.timeoutMs);
  if (n.kind === 'closed') return { allowed: false, text: 'closed the connection' };
  if (n.kind === 'timeout') return { allowed: false, text: `no answer within ${ctx.timeoutMs} ms` };
  if (n.frame.type !== MessageType.AgentResponse) return { allowed: false, text: describe(n, ctx) };
  try {
    const r = createMessageCodec(encoding).decodeResponse(n.frame.payload);
    const kind = decisionKind(r.decision);
    const status =
      typeof r.decision === 'object' && 'block' in r.decision ? ` ${r.decision.block.status}` : '';
    return { allowed: kind === 'allow', text: `answered ${kind}${status}` };
  } catch (err) {
    return {
      allowed: false,
      text: `answered an invalid AgentResponse (${(err as Error).message})`,
    };
  }
}

/** A bad input: its label, the encodings to shake hands with (none: send instead of the handshake), what to send. */
type Probe = [label: string, handshake: Encoding[] | undefined, send: (c: RawConnection) => void];

/** Runs `probes` each on its own connection; after each the agent must still serve. */
async function malformed(
  ctx: ConformContext,
  raw: RawTarget,
  probes: Probe[],
): Promise<CheckResult> {
  const seen: string[] = [];
  for (const [label, encodings, send] of probes) {
    const r = await raw.open(encodings);
    if (typeof r === 'string') return fail(`${label}: ${r}`);
    const { conn } = r;
    const encoding = r.encoding ?? 'json';
    if (encodings !== undefined && !encodings.includes(encoding)) {
      conn.close();
      seen.push(`${label}: skipped (the agent chose ${encoding})`);
      continue;
    }
    try {
      send(conn);
      const what = await reaction(conn, ctx, encoding);
      if (what.allowed) return fail(`${label}: the agent answered allow`);
      seen.push(`${label}: ${what.text}`);
    } finally {
      conn.close();
    }
    const dead = await stillServing(ctx, raw);
    if (dead !== undefined) return fail(`${label}: ${dead}`);
  }
  return pass(`${seen.join('; ')}; still serving`);
}

/** A check on raw connections: skipped where the endpoint gives none. */
/** A check on raw connections (UDS, v1, reverse): skipped where the endpoint gives none. */
function wireCheck(
  name: string,
  run: (ctx: ConformContext, raw: RawTarget) => Promise<CheckResult>,
): Check {
  return {
    name,
    async run(ctx) {
      const raw = await ctx.rawTarget();
      return typeof raw === 'string' ? skip(raw) : run(ctx, raw);
    },
  };
}

/** `check`, with `grpc` run instead on plaintext gRPC endpoints. */
function withGrpc(
  check: Check,
  grpc: (ctx: ConformContext, ep: GrpcEndpoint) => Promise<CheckResult>,
): Check {
  return {
    name: check.name,
    run(ctx) {
      if (ctx.ep.kind !== 'grpc') return check.run(ctx);
      const unsupported = grpcWireSupported(ctx.ep);
      return unsupported === undefined ? grpc(ctx, ctx.ep) : Promise.resolve(skip(unsupported));
    },
  };
}

/** What a gRPC agent did with a raw call; only an OK answer that allows fails. */
function grpcReaction(o: GrpcOutcome): Reaction {
  if (o.status === 0 && o.decision === 'allow') return { allowed: true, text: 'answered allow' };
  if (o.status !== undefined && o.status !== 0) {
    return { allowed: false, text: `gRPC status ${o.status}${o.details ? ` (${o.details})` : ''}` };
  }
  if (o.error !== undefined) return { allowed: false, text: `call ended: ${o.error}` };
  return { allowed: false, text: o.decision ? `answered ${o.decision}` : 'no answer' };
}

/** Undefined while a gRPC agent still answers a request on a new connection, else why not. */
async function grpcStillServing(
  ctx: ConformContext,
  ep: GrpcEndpoint,
): Promise<string | undefined> {
  const o = await rawGrpcCall(
    ep,
    grpcFrame(grpcMessages.requestHeaders(ctx.nextId())),
    ctx.timeoutMs,
  );
  if (o.status === 0 && o.decision !== undefined) return undefined;
  return `afterwards a new connection gets no answer (${grpcReaction(o).text})`;
}

/** Each gRPC probe on a fresh connection; after each the agent must still serve. */
function grpcProbes(
  probes: (ctx: ConformContext) => [label: string, body: Buffer][],
): (ctx: ConformContext, ep: GrpcEndpoint) => Promise<CheckResult> {
  return async (ctx, ep) => {
    const seen: string[] = [];
    for (const [label, body] of probes(ctx)) {
      const what = grpcReaction(await rawGrpcCall(ep, body, ctx.timeoutMs));
      if (what.allowed) return fail(`${label}: the agent answered allow`);
      seen.push(`${label}: ${what.text}`);
      const dead = await grpcStillServing(ctx, ep);
      if (dead !== undefined) return fail(`${label}: ${dead}`);
    }
    return pass(`${seen.join('; ')}; still serving`);
  };
}

/** An HTTP request and noise: no frame of any protocol here. */
const GARBAGE = Buffer.concat([utf8('GET / HTTP/1.1\r\nHost: agent\r\n\r\n'), randomBytes(64)]);

const garbage = wireCheck('malformed:garbage', (ctx, raw) =>
  malformed(ctx, raw, [
    [
      raw.dialsIn
        ? 'bytes instead of a registration answer'
        : 'an HTTP request instead of a handshake',
      undefined,
      (c) => c.write(GARBAGE),
    ],
  ]),
);

const badPayload = wireCheck('malformed:bad-payload', (ctx, raw) => {
  const id = ctx.nextId();
  const v1 = raw.kind === 'v1';
  const frame = (c: RawConnection, payload: Uint8Array) =>
    c.frame(MessageType.RequestHeaders, payload);
  const truncatedJson = v1
    ? `{"version":1,"event_type":"request_headers","payload":{"metadata":{"correlation_id":"${id}"`
    : `{"correlation_id":"${id}","metadata":{"correlation_id":"${id}"`;
  const wrongTypes = v1
    ? `{"version":1,"event_type":"request_headers","payload":{"metadata":42,"method":7,"uri":[],"headers":"x"}}`
    : `{"correlation_id":"${id}","metadata":{"correlation_id":"${id}"},"method":7,"uri":[],"headers":"x"}`;
  const probes: Probe[] = [
    ['bad JSON', ['json'], (c) => frame(c, utf8(truncatedJson))],
    ['JSON of the wrong shape', ['json'], (c) => frame(c, utf8(wrongTypes))],
  ];
  // 0xc1 is the one byte msgpack never uses; reverse connections are JSON only
  if (!v1 && !raw.dialsIn) {
    probes.push([
      'bad msgpack',
      ['msgpack'],
      (c) => frame(c, Uint8Array.of(0x81, 0xa1, 0x78, 0xc1)),
    ]);
  }
  return malformed(ctx, raw, probes);
});

const unknownType = wireCheck('malformed:unknown-type', (ctx, raw) =>
  malformed(ctx, raw, [
    raw.kind === 'v1'
      ? [
          'unknown event_type',
          ['json'],
          (c) => c.frame(0, utf8('{"version":1,"event_type":"bogus_event","payload":{}}')),
        ]
      : ['frame type 0x7f', ['json'], (c) => c.frame(0x7f, utf8('{}'))],
  ]),
);

const truncated = wireCheck('malformed:truncated', (ctx, raw) =>
  malformed(ctx, raw, [
    [
      'a frame cut short, then end of stream',
      ['json'],
      (c) => {
        const header = Buffer.alloc(c.kind === 'v2' ? 5 : 4);
        header.writeUInt32BE(200, 0);
        if (c.kind === 'v2') header[4] = MessageType.RequestHeaders;
        c.write(Buffer.concat([header, utf8('{"correlation_id":"')]));
        c.end();
      },
    ],
  ]),
);

const oversize = wireCheck('oversize', async (ctx, raw) => {
  const r = await ready(raw);
  if (typeof r === 'string') return fail(r);
  const limit = raw.kind === 'v2' ? MAX_UDS_FRAME_LENGTH : MAX_V1_MESSAGE_SIZE;
  let what: Reaction;
  try {
    const header = Buffer.alloc(raw.kind === 'v2' ? 5 : 4);
    header.writeUInt32BE(limit + 1, 0);
    if (raw.kind === 'v2') header[4] = MessageType.RequestHeaders;
    // the header announces more than the limit; a conforming reader refuses it right there
    r.conn.write(Buffer.concat([header, Buffer.alloc(64 * 1024, 0x20)]));
    what = await reaction(r.conn, ctx, r.encoding);
  } finally {
    r.conn.close();
  }
  if (what.allowed) return fail('the agent answered allow to an oversize frame');
  if (what.text.startsWith('no answer')) {
    return fail(`a frame announcing ${limit + 1} bytes: connection still open, ${what.text}`);
  }
  const dead = await stillServing(ctx, raw);
  if (dead !== undefined) return fail(dead);
  return pass(`a frame announcing ${limit + 1} bytes: ${what.text}; still serving`);
});

const version = wireCheck('version', async (ctx, raw) => {
  if (raw.kind === 'v1') return skip('v1 has no handshake');
  if (raw.dialsIn) return skip('a reverse agent states its version when it registers');
  const r = await raw.open(undefined);
  if (typeof r === 'string') return fail(r);
  let outcome: CheckResult;
  try {
    r.conn.frame(MessageType.HandshakeRequest, handshakeRequestBytes([99]));
    outcome = judgeVersion(await r.conn.next(ctx.timeoutMs), ctx);
  } finally {
    r.conn.close();
  }
  if (outcome.status === 'fail') return outcome;
  const dead = await stillServing(ctx, raw);
  return dead === undefined ? pass(`${outcome.reason}; still serving`) : fail(dead);
});

function judgeVersion(n: Next, ctx: ConformContext): CheckResult {
  if (n.kind === 'closed') return pass('offered only version 99: closed without answering');
  if (n.kind !== 'frame') return fail(`offered only version 99: ${describe(n, ctx)}`);
  if (n.frame.type !== MessageType.HandshakeResponse) {
    return fail(`offered only version 99: answered ${describe(n, ctx)}`);
  }
  let answer: { success?: unknown; error?: unknown; protocol_version?: unknown };
  try {
    answer = JSON.parse(Buffer.from(n.frame.payload).toString('utf8'));
  } catch {
    return fail('offered only version 99: the handshake answer is not JSON');
  }
  if (answer.success === false)
    return pass(`offered only version 99: refused (${String(answer.error)})`);
  if (answer.protocol_version !== 2) {
    return fail(
      `offered only version 99: accepted, claiming protocol_version ${String(answer.protocol_version)}`,
    );
  }
  // what Rust agents do (spec 2.3): they ignore the offer and state their own version
  return pass('offered only version 99: answered protocol_version 2 (the proxy refuses it)');
}

/**
 * The UDS handshake answer itself (spec 2.3): protocol version 2, success, and an encoding
 * out of those offered (the transport hides these).
 */
export async function rawHandshakeProblems(ctx: ConformContext): Promise<string[]> {
  const raw = await ctx.rawTarget();
  if (typeof raw === 'string') return [];
  const offered: Encoding[] = ['msgpack', 'json'];
  const r = await raw.open(undefined);
  if (typeof r === 'string') return [r];
  try {
    const h = await rawHandshake(r.conn, ctx.timeoutMs, offered);
    if (!h.ok) return [h.reason];
    const problems: string[] = [];
    if (!h.response.success) problems.push(`refused the handshake: ${h.response.error}`);
    if (h.response.protocol_version !== 2) {
      problems.push(`handshake answer: protocol_version ${h.response.protocol_version}`);
    }
    if (!offered.includes(h.response.encoding)) {
      problems.push(`handshake answer: encoding "${h.response.encoding}" was not offered`);
    }
    return problems;
  } finally {
    r.conn.close();
  }
}

/**
 * Correlation on the UDS wire itself: the answer carries the event's id in
 * `audit.custom.correlation_id` (spec 2.6), for a request's headers and its body chunk.
 */
export async function rawCorrelation(ctx: ConformContext, raw: RawTarget): Promise<CheckResult> {
  const r = await ready(raw);
  if (typeof r === 'string') return fail(r);
  const { conn, encoding } = r;
  try {
    const id = ctx.nextId();
    const steps: [EventType, () => void][] = [
      [
        'request_headers',
        () => sendEvent(conn, 'request_headers', ev.requestHeaders(id), id, encoding),
      ],
      [
        'request_body_chunk',
        () => sendEvent(conn, 'request_body_chunk', ev.requestBodyChunk(id), id, encoding),
      ],
    ];
    for (const [type, send] of steps) {
      send();
      const n = await conn.nextOf(MessageType.AgentResponse, ctx.timeoutMs);
      if (n.kind !== 'frame') return fail(`${type} "${id}": ${describe(n, ctx)}`);
      let got: unknown;
      try {
        got = createMessageCodec(encoding).decodeResponse(n.frame.payload).audit.custom
          .correlation_id;
      } catch (err) {
        return fail(`${type} "${id}": invalid AgentResponse (${(err as Error).message})`);
      }
      if (got !== id) {
        return fail(
          `${type} "${id}" answered under correlation id ${JSON.stringify(got) ?? 'none'}`,
        );
      }
    }
    return pass('request headers and body chunk answered under their correlation id');
  } finally {
    conn.close();
  }
}

const grpcGarbage = grpcProbes(() => [['bytes that are no gRPC message', GARBAGE]]);
const grpcBadPayload = grpcProbes(() => [
  ['bytes that are no protobuf', grpcFrame(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f))],
  // field 2 (request_headers, a message) sent as a varint: protobuf of the wrong shape
  ['a known field of the wrong wire type', grpcFrame(Uint8Array.of(0x10, 0x01))],
]);
// field 99 (varint 1): a ProxyToAgent message none of whose known fields is set
const grpcUnknownType = grpcProbes(() => [
  ['an unknown message', grpcFrame(Uint8Array.of(0x98, 0x06, 0x01))],
]);
const grpcTruncated = grpcProbes((ctx) => {
  const message = grpcMessages.requestHeaders(ctx.nextId());
  return [['a message cut short, then end of stream', grpcFrame(message, message.length + 100)]];
});
const grpcOversize = grpcProbes((ctx) => {
  const message = grpcMessages.requestHeaders(ctx.nextId());
  const padded = Buffer.concat([
    message,
    Buffer.alloc(GRPC_DEFAULT_MAX_MESSAGE + 1 - message.length),
  ]);
  return [[`a message of ${padded.length} bytes`, grpcFrame(padded)]];
});

async function grpcVersion(ctx: ConformContext, ep: GrpcEndpoint): Promise<CheckResult> {
  const o = await rawGrpcCall(ep, grpcFrame(grpcMessages.handshake([99])), ctx.timeoutMs);
  let outcome: CheckResult;
  if (o.handshake === undefined) {
    const what = grpcReaction(o);
    outcome = what.text.startsWith('gRPC status')
      ? pass(`offered only version 99: ${what.text}`)
      : fail(`offered only version 99: ${what.text}`);
  } else if (!o.handshake.success) {
    outcome = pass(`offered only version 99: refused (${o.handshake.error})`);
  } else if (o.handshake.protocolVersion !== 2) {
    outcome = fail(
      `offered only version 99: accepted, claiming protocol_version ${o.handshake.protocolVersion}`,
    );
  } else {
    outcome = pass('offered only version 99: answered protocol_version 2 (the proxy refuses it)');
  }
  if (outcome.status === 'fail') return outcome;
  const dead = await grpcStillServing(ctx, ep);
  return dead === undefined ? pass(`${outcome.reason}; still serving`) : fail(dead);
}

/** The wire-level checks, in the order they run. */
export const WIRE_CHECKS: readonly Check[] = [
  withGrpc(oversize, grpcOversize),
  withGrpc(garbage, grpcGarbage),
  withGrpc(badPayload, grpcBadPayload),
  withGrpc(unknownType, grpcUnknownType),
  withGrpc(truncated, grpcTruncated),
  withGrpc(version, grpcVersion),
];
