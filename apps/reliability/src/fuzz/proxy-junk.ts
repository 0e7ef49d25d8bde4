/**
 * The post-handshake half of fuzzing a proxy-side connection (`AgentClientV2Uds` or a
 * reverse connection — both run `ProxyConnection` from @picket/uds): the proxy has calls
 * in flight, the fake agent answers with junk, then either answers properly or breaks the
 * framing. Every call must settle, may only resolve with its own reply, and a connection
 * lost to junk must log why.
 */
import { createMessageCodec, type MessageCodec } from '@picket/codec';
import {
  AgentProtocolError,
  EVENT_TYPE_NUMBERS,
  type EventType,
  eventCorrelationId,
  MessageType,
} from '@picket/protocol';
import type { ProxyConnection } from '@picket/uds/internal';
import type { Rng } from '../lib/prng.js';
import { type RawConn, within, writeSplit } from '../lib/raw-conn.js';
import { agentJunkFrame } from './agent-junk.js';
import { type Encoding, type JunkFrame, v2Frame } from './mutate.js';
import { FuzzFailure } from './target.js';
import { EVENT_TYPES, validEvent, validResponse } from './templates.js';

const GUARD_MS = 15_000;

/** Frame type byte → event type. */
const FRAME_EVENT = new Map<number, EventType>(
  (Object.entries(EVENT_TYPE_NUMBERS) as [EventType, number][]).map(([t, n]) => [0x0f + n, t]),
);

const SEND: Record<EventType, keyof ProxyConnection> = {
  request_headers: 'sendRequestHeaders',
  request_body_chunk: 'sendRequestBodyChunk',
  response_headers: 'sendResponseHeaders',
  response_body_chunk: 'sendResponseBodyChunk',
  request_complete: 'sendRequestComplete',
  web_socket_frame: 'sendWebSocketFrame',
  guardrail_inspect: 'sendGuardrailInspect',
  configure: 'sendConfigure',
};

/** Counters shared by the proxy-side targets. */
export interface ProxyJunkCounts {
  calls: number;
  callsResolved: number;
  callsRejected: number;
  lostToJunk: number;
  fatalFrames: number;
  partialFrames: number;
}

/** Fresh counters. */
export function proxyJunkCounts(): ProxyJunkCounts {
  return {
    calls: 0,
    callsResolved: 0,
    callsRejected: 0,
    lostToJunk: 0,
    fatalFrames: 0,
    partialFrames: 0,
  };
}

function cidOf(codec: MessageCodec, type: number, payload: Uint8Array): string {
  return eventCorrelationId(codec.decodeEvent(FRAME_EVENT.get(type) as EventType, payload));
}

/**
 * Runs the junk stream against `client` (already handshaken / registered) from the fake
 * agent socket `agent`. `lostIds` holds the connection ids the proxy logged as lost.
 * Returns the number of frames the fake agent sent.
 */
export async function junkTheProxy(
  rng: Rng,
  index: number,
  agent: RawConn,
  client: ProxyConnection,
  encoding: Encoding,
  counts: ProxyJunkCounts,
  lostIds: ReadonlySet<string>,
): Promise<number> {
  const closed = new Promise<unknown>((resolve) => client.once('close', resolve));
  const codec = createMessageCodec(encoding, { binaryBodies: true });

  // Calls in flight while the junk arrives.
  const m = rng.int(1, 8);
  const calls: Promise<void>[] = [];
  for (let j = 0; j < m; j++) {
    const type = rng.chance(0.6) ? 'request_headers' : rng.pick(EVENT_TYPES);
    const cid = `c-${index}-${j}`;
    const event = validEvent(rng, type, cid);
    counts.calls++;
    const send = client[SEND[type]] as (
      e: unknown,
    ) => Promise<{ audit: { tags: string[]; custom: Record<string, unknown> } }>;
    calls.push(
      send.call(client, event).then(
        (reply) => {
          counts.callsResolved++;
          const got = reply.audit.custom.correlation_id;
          if (got !== cid && !reply.audit.tags.includes('flow_control_fail_open')) {
            throw new FuzzFailure(
              `#${index}: call ${cid} resolved with the reply for ${String(got)}`,
            );
          }
        },
        (err: unknown) => {
          counts.callsRejected++;
          if (!(err instanceof AgentProtocolError)) {
            throw new FuzzFailure(
              `#${index}: call ${cid} rejected with a non-protocol error: ${String(err)}`,
            );
          }
        },
      ),
    );
  }
  const settled = Promise.all(calls);
  settled.catch(() => undefined);
  await agent.until(
    () => agent.frames.filter((f) => FRAME_EVENT.has(f.type)).length >= m,
    GUARD_MS,
    `proxy #${index} sending ${m} events`,
  );
  const pending = agent.frames
    .filter((f) => FRAME_EVENT.has(f.type))
    .map((f) => cidOf(codec, f.type, f.payload));

  // The junk.
  const count = rng.int(1, 120);
  const parts: Buffer[] = [];
  let last: JunkFrame | undefined;
  for (let i = 0; i < count; i++) {
    last = agentJunkFrame(rng, codec, encoding, pending);
    parts.push(last.bytes);
    if (last.kind !== 'complete') break;
  }
  await writeSplit(agent, Buffer.concat(parts), rng.chance(0.2) ? rng.int(2, 5) : 1, (x) =>
    rng.int(0, x),
  );

  if (last?.kind === 'complete') {
    // Answer what is still pending, echo pings, then close from the proxy side.
    const answers: Buffer[] = [];
    for (const cid of pending) {
      answers.push(
        v2Frame(MessageType.AgentResponse, codec.encodeResponse(validResponse(rng, cid))),
      );
    }
    for (const f of agent.frames) {
      if (f.type === MessageType.Ping) answers.push(v2Frame(MessageType.Pong, f.payload));
    }
    agent.write(Buffer.concat(answers));
    await within(settled, GUARD_MS, `calls of #${index} settling`);
    await within(client.close(), GUARD_MS, `close of #${index}`);
    return parts.length + answers.length;
  }
  if (last?.kind === 'fatal') counts.fatalFrames++;
  else {
    counts.partialFrames++;
    agent.end();
  }
  const why = await within(closed, GUARD_MS, `proxy #${index} closing after a broken frame`);
  await within(settled, GUARD_MS, `calls of #${index} settling after the connection died`);
  if (why === undefined) throw new FuzzFailure(`#${index}: connection lost without an error`);
  counts.lostToJunk++;
  if (!lostIds.has(client.id)) {
    throw new FuzzFailure(`#${index}: lost connection ${client.id} logged no reason`);
  }
  return parts.length;
}
