/**
 * The exchange's record types and the pure pieces it is built from: verdict
 * descriptions, body framing checks, stream helpers, and the agent messages and
 * answers the engine makes itself (body chunks, failure modes, over-limit blocks).
 */
import type { AgentPool } from '@picket/pool';
import {
  type AgentResponse,
  agentResponse,
  type CallOptions,
  decisionKind,
} from '@picket/protocol';
import type { ChunkInfo } from './body.js';
import type { AgentEvent, AgentSpec, ClientRequest } from './engine.js';

/** One agent answer as recorded for the exchange summary. */
export interface AgentVerdict {
  agent: string;
  event: AgentEvent;
  /** `allow`, `allow (fail-open)`, `needs_more`, `block 403`, `redirect 302`, `challenge captcha`, `skipped (…)` */
  decision: string;
}

/** What happened to one request (`EngineHooks.exchangeFinished`; the gateway's `exchange` event). */
export interface ExchangeSummary {
  correlationId: string;
  requestId: string;
  method: string;
  uri: string;
  clientIp: string;
  /** the route's `name` */
  route: string | null;
  /** the route's `upstreamId` */
  upstream: string | null;
  /** status sent to the client (499 when the client went away first) */
  status: number;
  /** allow, block, redirect, challenge, bad_request, no_route, upstream_error, upstream_timeout, no_upstream_target (the next hop's UpstreamFailure kinds), client_disconnect, error */
  outcome: string;
  /** the agent whose decision ended the exchange, if any */
  decidedBy: string | null;
  verdicts: AgentVerdict[];
  upstreamAttempts: number;
  requestBodySize: number;
  responseBodySize: number;
  durationMs: number;
  error: string | null;
}

export function describeVerdict(r: AgentResponse): string {
  const d = r.decision;
  const failOpen = r.audit.tags.includes('fail_open');
  if (d === 'allow') {
    if (failOpen) return `allow (fail-open: ${r.audit.reason_codes[0] ?? 'error'})`;
    return r.needs_more ? 'needs_more' : 'allow';
  }
  if ('block' in d) {
    return r.audit.tags.includes('fail_closed')
      ? `block ${d.block.status} (fail-closed: ${r.audit.reason_codes[0] ?? 'error'})`
      : `block ${d.block.status}`;
  }
  if ('redirect' in d) return `redirect ${d.redirect.status}`;
  return `challenge ${d.challenge.challenge_type}`;
}

export function metricDecision(r: AgentResponse): string {
  if (r.audit.tags.includes('fail_open')) return 'fail_open';
  if (r.audit.tags.includes('fail_closed')) return 'fail_closed';
  return decisionKind(r.decision);
}

/** A request carries a body when it says so (RFC 9112 §6.3). */
export function requestHasBody(req: ClientRequest): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}

export function declaredLength(v: string | undefined): number | null {
  if (v === undefined || !/^\d+$/.test(v)) return null;
  return Number(v);
}

/** Counts the bytes flowing through. */
export async function* counting(source: AsyncIterable<Buffer>, add: (n: number) => void) {
  for await (const chunk of source) {
    add(chunk.length);
    yield chunk;
  }
}

/** Re-yields an iterator whose first result was already taken. */
export async function* resume(
  first: IteratorResult<Buffer>,
  it: AsyncIterator<Buffer>,
): AsyncGenerator<Buffer> {
  if (first.done) return;
  yield first.value;
  for (;;) {
    const next = await it.next();
    if (next.done) return;
    yield next.value;
  }
}

/** An agent call that threw (pool closed, caller error): the agent's failure mode decides. */
export function failureResponse(agent: AgentSpec, e: unknown): AgentResponse {
  const custom = { agent_id: agent.name, error: (e as Error).message };
  return agent.failureMode === 'open'
    ? agentResponse('allow', { tags: ['fail_open'], reasonCodes: ['AGENT_ERROR'], custom })
    : agentResponse(
        { block: { status: 503, body: null, headers: null } },
        { tags: ['fail_closed'], reasonCodes: ['AGENT_ERROR'], custom },
      );
}

/** A fail-closed agent's answer to a body over its `max_body_bytes` (`what` says which). */
export function overLimitResponse(
  agent: AgentSpec,
  direction: 'request' | 'response',
  what: string,
  size: number,
): AgentResponse {
  const status = direction === 'request' ? 413 : 502;
  return agentResponse(
    {
      block: {
        status,
        body: `${what}: too large for agent "${agent.name}"\n`,
        headers: null,
      },
    },
    { tags: ['fail_closed'], reasonCodes: ['BODY_TOO_LARGE'], custom: { size } },
  );
}

/** Sends one body chunk to an agent as a request or a response body event. */
export function sendBodyChunk(
  pool: AgentPool,
  agent: string,
  direction: 'request' | 'response',
  correlationId: string,
  c: ChunkInfo,
  o: CallOptions,
): Promise<AgentResponse> {
  return direction === 'request'
    ? pool.sendRequestBodyChunk(
        agent,
        {
          correlation_id: correlationId,
          data: c.data,
          is_last: c.isLast,
          total_size: c.totalSize,
          chunk_index: c.chunkIndex,
          bytes_received: c.cumulative,
        },
        o,
      )
    : pool.sendResponseBodyChunk(
        agent,
        {
          correlation_id: correlationId,
          data: c.data,
          is_last: c.isLast,
          total_size: c.totalSize,
          chunk_index: c.chunkIndex,
          bytes_sent: c.cumulative,
        },
        o,
      );
}
