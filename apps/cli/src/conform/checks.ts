/**
 * The checks `picket conform` runs through the transports themselves (any endpoint): they
 * behave as a proxy does and judge the agent's answers.
 */
import {
  type AgentResponse,
  type AgentTransport,
  decisionKind,
  ErrorCode,
  EVENT_TYPE_NUMBERS,
  type EventType,
} from '@picket/protocol';
import {
  type Check,
  type CheckResult,
  type ConformContext,
  codeOf,
  declares,
  fail,
  failureText,
  pass,
  skip,
} from './context.js';
import * as ev from './events.js';
import { rawCorrelation, rawHandshakeProblems } from './wire-checks.js';

const ENCODINGS = ['json', 'msgpack', 'cbor', 'protobuf'];

/** Names of the event types as rows show them. */
export const EVENT_ROWS: readonly [row: string, type: EventType][] = [
  ['request_headers', 'request_headers'],
  ['request_body_chunk', 'request_body_chunk'],
  ['response_headers', 'response_headers'],
  ['response_body_chunk', 'response_body_chunk'],
  ['request_complete', 'request_complete'],
  ['websocket_frame', 'web_socket_frame'],
  ['guardrail_inspect', 'guardrail_inspect'],
  ['configure', 'configure'],
];

const EVENT_NAMES = new Map<number, string>(
  EVENT_ROWS.map(([row, type]) => [EVENT_TYPE_NUMBERS[type], row]),
);

const handshake: Check = {
  name: 'handshake',
  async run(ctx) {
    const t = await ctx.transport();
    const c = t.capabilities;
    const problems: string[] = [];
    if (typeof c.agent_id !== 'string' || c.agent_id.trim() === '') problems.push('empty agent id');
    if (c.protocol_version !== undefined && c.protocol_version !== 2) {
      problems.push(`protocol version ${c.protocol_version} (expected 2)`);
    }
    if (!ENCODINGS.includes(t.encoding)) problems.push(`unknown encoding "${t.encoding}"`);
    const events = c.supported_events ?? [];
    const odd = events.filter((n) => !Number.isInteger(n) || n < 0 || n > 8);
    if (odd.length > 0) problems.push(`unknown event numbers ${odd.join(', ')}`);
    if (ctx.ep.kind === 'uds') problems.push(...(await rawHandshakeProblems(ctx)));
    if (problems.length > 0) return fail(problems.join('; '));
    if (t.kind === 'v1')
      return pass('v1 has no handshake: connected; capabilities are picket’s defaults');
    const names = [...new Set(events.map((n) => EVENT_NAMES.get(n === 0 ? 8 : n)))];
    return pass(
      `${c.agent_id} "${c.name}" ${c.version}, ${t.kind}, encoding ${t.encoding}, events: ${names.join(', ') || 'none'}`,
    );
  },
};

/** A failure of a step before the event under test, so the row names the step. */
class EarlierStep extends Error {
  constructor(
    readonly step: string,
    readonly error: unknown,
  ) {
    super(step);
  }
}

/** Sends what a proxy sends before `type` for the same request, then `type` itself. */
async function sendEvent(
  t: AgentTransport,
  type: EventType,
  cid: string,
  timeoutMs: number,
): Promise<AgentResponse> {
  const o = { timeoutMs };
  const before = async (step: string, call: () => Promise<AgentResponse>) => {
    await call().catch((err: unknown) => {
      throw new EarlierStep(step, err);
    });
  };
  const needsRequest = type !== 'guardrail_inspect' && type !== 'configure';
  if (needsRequest && type !== 'request_headers') {
    await before('request_headers', () => t.sendRequestHeaders(ev.requestHeaders(cid), o));
  }
  switch (type) {
    case 'request_headers':
      return t.sendRequestHeaders(ev.requestHeaders(cid), o);
    case 'request_body_chunk':
      return t.sendRequestBodyChunk(ev.requestBodyChunk(cid), o);
    case 'response_headers':
      return t.sendResponseHeaders(ev.responseHeaders(cid), o);
    case 'response_body_chunk':
      await before('response_headers', () => t.sendResponseHeaders(ev.responseHeaders(cid), o));
      return t.sendResponseBodyChunk(ev.responseBodyChunk(cid), o);
    case 'request_complete':
      return t.sendRequestComplete(ev.requestComplete(cid), o);
    case 'web_socket_frame':
      return t.sendWebSocketFrame(ev.webSocketFrame(cid), o);
    case 'guardrail_inspect':
      return t.sendGuardrailInspect(ev.guardrailInspect(cid), o);
    case 'configure':
      return t.sendConfigure(ev.configure(cid), o);
  }
}

function eventCheck(row: string, type: EventType): Check {
  return {
    name: `event:${row}`,
    async run(ctx) {
      const t = await ctx.transport();
      if (!declares(t, type)) return skip('not in the agent’s supported events');
      const started = performance.now();
      try {
        const r = await sendEvent(t, type, ctx.nextId(), ctx.timeoutMs);
        const ms = (performance.now() - started).toFixed(1);
        return pass(`${decisionKind(r.decision)} in ${ms} ms`);
      } catch (err) {
        if (err instanceof EarlierStep) {
          return fail(`${err.step} before it: ${failureText(err.error, ctx.timeoutMs)}`);
        }
        if (codeOf(err) === ErrorCode.Unsupported) return skip(failureText(err, ctx.timeoutMs));
        return fail(failureText(err, ctx.timeoutMs));
      }
    },
  };
}

const correlation: Check = {
  name: 'correlation',
  async run(ctx) {
    const t = await ctx.transport();
    if (t.kind === 'v1') return skip('v1 carries no correlation ids (one call per connection)');
    if (ctx.ep.kind === 'uds') {
      const raw = await ctx.rawTarget();
      if (typeof raw !== 'string') return rawCorrelation(ctx, raw);
    }
    // the transports route an answer by its correlation id: one under another id never arrives
    const ids = [ctx.nextId(), ctx.nextId(), ctx.nextId()];
    for (const id of ids) {
      try {
        await t.sendRequestHeaders(ev.requestHeaders(id), { timeoutMs: ctx.timeoutMs });
      } catch (err) {
        const why = failureText(err, ctx.timeoutMs);
        return fail(`request "${id}": ${why} (an answer under another correlation id is dropped)`);
      }
    }
    return pass(`${ids.length} answers, each under its request’s correlation id`);
  },
};

/** Cross-talk: an answer that names another request's id (or uri) got mixed up. */
function crossTalk(answers: (AgentResponse | undefined)[], ids: string[]): string | undefined {
  for (const [i, r] of answers.entries()) {
    if (r === undefined) continue;
    const text = JSON.stringify(r);
    for (const [j, other] of ids.entries()) {
      if (j !== i && text.includes(other)) return `the answer to "${ids[i]}" names "${other}"`;
    }
  }
  return undefined;
}

async function many(ctx: ConformContext, n: number): Promise<CheckResult> {
  const t = await ctx.transport();
  const ids = Array.from({ length: n }, () => ctx.nextId());
  const settled = await Promise.allSettled(
    ids.map((id) =>
      t.sendRequestHeaders(ev.requestHeaders(id, `/conform/${id}`), { timeoutMs: ctx.timeoutMs }),
    ),
  );
  const failed = settled.flatMap((s, i) => (s.status === 'rejected' ? [[ids[i], s.reason]] : []));
  if (failed.length > 0) {
    const [id, reason] = failed[0] as [string, unknown];
    return fail(
      `${failed.length} of ${n} unanswered; first "${id}": ${failureText(reason, ctx.timeoutMs)}`,
    );
  }
  const answers = settled.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  const mixed = crossTalk(answers, ids);
  if (mixed !== undefined) return fail(`cross-talk: ${mixed}`);
  return pass(`${n} requests in flight at once, all answered, none names another`);
}

const concurrent: Check = { name: 'concurrent', run: (ctx) => many(ctx, 32) };
const flow: Check = { name: 'flow', run: (ctx) => many(ctx, 256) };

const cancel: Check = {
  name: 'cancel',
  async run(ctx) {
    const t = await ctx.transport();
    const o = { timeoutMs: ctx.timeoutMs };
    const id = ctx.nextId();
    try {
      await t.sendRequestHeaders(ev.requestHeaders(id, '/conform/cancel', 'POST'), o);
    } catch (err) {
      return fail(`request headers: ${failureText(err, ctx.timeoutMs)}`);
    }
    // mid-request: a body chunk is on its way when the proxy gives up on the request
    const pending = t.sendRequestBodyChunk(ev.requestBodyChunk(id, false), o);
    await t.cancel(id);
    const outcome = await pending.then(
      () => 'answered before the cancel',
      (err: unknown) =>
        codeOf(err) === ErrorCode.Cancelled ? 'cancelled' : failureText(err, ctx.timeoutMs),
    );
    if (outcome !== 'cancelled' && outcome !== 'answered before the cancel') {
      return fail(`the cancelled call: ${outcome}`);
    }
    const after = await ctx.transport();
    try {
      await after.sendRequestHeaders(ev.requestHeaders(ctx.nextId()), o);
    } catch (err) {
      return fail(`after a cancel the agent does not answer: ${failureText(err, ctx.timeoutMs)}`);
    }
    return pass(`cancelled mid-request (${outcome}); the agent answers the next request`);
  },
};

const ping: Check = {
  name: 'ping',
  async run(ctx) {
    const t = await ctx.transport();
    try {
      const rtt = await t.ping({ timeoutMs: ctx.timeoutMs });
      const how = t.kind === 'v1' ? ' (v1 has no ping: a fresh connection was timed)' : '';
      return pass(`${rtt.toFixed(2)} ms round trip${how}`);
    } catch (err) {
      if (codeOf(err) === ErrorCode.Unsupported) return skip(failureText(err, ctx.timeoutMs));
      return fail(failureText(err, ctx.timeoutMs));
    }
  },
};

/** The checks over the facade, in the order they run. */
export const TRANSPORT_CHECKS: readonly Check[] = [
  handshake,
  ...EVENT_ROWS.map(([row, type]) => eventCheck(row, type)),
  correlation,
  concurrent,
  cancel,
  flow,
  ping,
];
