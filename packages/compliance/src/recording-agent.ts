import { createHash } from 'node:crypto';
import {
  type AgentCapabilities,
  type AgentEvent,
  type AgentHandler,
  type AgentResponse,
  addHeader,
  allow,
  block,
  type CancelReason,
  type ConfigureEvent,
  challenge,
  createCapabilities,
  type GuardrailInspectEvent,
  type RequestBodyChunkEvent,
  type RequestCompleteEvent,
  type RequestContext,
  type RequestHeadersEvent,
  type ResponseBodyChunkEvent,
  type ResponseHeadersEvent,
  redirect,
  removeHeader,
  replaceBody,
  setHeader,
  type WebSocketFrameEvent,
  websocketClose,
} from '@picket/protocol';

export interface RecordedEvent {
  type: string;
  event: AgentEvent;
  ctx: RequestContext;
}

/**
 * The agent the compliance suite runs behind every transport. Its reply is
 * chosen by the request path, so one agent covers every decision kind:
 * `/block`, `/redirect`, `/challenge`, `/ops` (every header op and audit
 * field), `/slow/<ms>`, `/hang` (until cancelled), `/throw` (handler error),
 * `/huge/<bytes>` (a block whose body is that long: too large for the wire);
 * anything else is allowed with an `x-cid` header naming the correlation id.
 * A WebSocket frame `throw` makes the frame hook throw.
 */
export class RecordingAgent implements AgentHandler {
  readonly events: RecordedEvent[] = [];
  readonly cancels: { correlationId: string; reason: CancelReason }[] = [];
  readonly aborted = new Set<string>();
  private readonly paths = new Map<string, string>();

  constructor(readonly agentId = 'compliance-agent') {}

  capabilities(): AgentCapabilities {
    return createCapabilities({
      agentId: this.agentId,
      name: 'Compliance Agent',
      version: '1.0.0',
      features: {
        streaming_body: true,
        websocket: true,
        guardrails: true,
        cancellation: true,
        concurrent_requests: 1000,
      },
      limits: { max_concurrency: 1000 },
    });
  }

  private record(type: string, event: AgentEvent, ctx: RequestContext): void {
    this.events.push({ type, event, ctx });
    ctx.signal.addEventListener('abort', () => this.aborted.add(ctx.correlationId), { once: true });
  }

  of<T extends AgentEvent>(type: string): T[] {
    return this.events.filter((e) => e.type === type).map((e) => e.event as T);
  }

  async onRequestHeaders(e: RequestHeadersEvent, ctx: RequestContext): Promise<AgentResponse> {
    this.record('request_headers', e, ctx);
    const cid = e.metadata.correlation_id;
    this.paths.set(cid, e.uri);
    const path = e.uri;
    if (path === '/block') {
      return block(451, {
        body: 'blocked by compliance',
        headers: { 'x-block-reason': 'test' },
        tags: ['compliance', 'blocked'],
        ruleIds: ['rule-1'],
        reasonCodes: ['TEST_BLOCK'],
      });
    }
    if (path === '/redirect') return redirect('https://login.example/', 307);
    if (path === '/challenge') return challenge('captcha', { site_key: 'k1' });
    if (path === '/ops') {
      return allow({
        requestHeaders: [
          setHeader('x-set', 'a'),
          addHeader('x-add', 'b'),
          removeHeader('x-remove'),
        ],
        responseHeaders: [
          setHeader('x-resp', 'c'),
          addHeader('x-resp-add', 'd'),
          removeHeader('server'),
        ],
        routingMetadata: { upstream: 'blue' },
        tags: ['t1', 't2'],
        ruleIds: ['r1'],
        reasonCodes: ['RC'],
        confidence: 0.5,
        custom: { n: 42, s: 'str', nested: { ok: true } },
      });
    }
    if (path.startsWith('/slow/')) {
      await sleep(Number(path.slice(6)), ctx.signal);
    }
    if (path === '/hang') {
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    if (path === '/throw') throw new Error('handler exploded on purpose');
    if (path.startsWith('/huge/')) return block(403, { body: 'x'.repeat(Number(path.slice(6))) });
    return allow({ requestHeaders: [setHeader('x-cid', cid)], tags: ['seen'] });
  }

  onRequestBodyChunk(e: RequestBodyChunkEvent, ctx: RequestContext): AgentResponse {
    this.record('request_body_chunk', e, ctx);
    const sha = createHash('sha256').update(e.data).digest('hex');
    return allow({
      custom: { sha256: sha, size: e.data.byteLength, chunk_index: e.chunk_index },
      needsMore: !e.is_last,
      requestBodyMutation:
        this.paths.get(e.correlation_id) === '/mutate'
          ? replaceBody('MUTATED', e.chunk_index)
          : null,
    });
  }

  onResponseHeaders(e: ResponseHeadersEvent, ctx: RequestContext): AgentResponse {
    this.record('response_headers', e, ctx);
    return allow({ responseHeaders: [setHeader('x-status-seen', String(e.status))] });
  }

  onResponseBodyChunk(e: ResponseBodyChunkEvent, ctx: RequestContext): AgentResponse {
    this.record('response_body_chunk', e, ctx);
    return allow({ custom: { size: e.data.byteLength } });
  }

  onRequestComplete(e: RequestCompleteEvent, ctx: RequestContext): AgentResponse {
    this.record('request_complete', e, ctx);
    this.paths.delete(e.correlation_id);
    return allow({ tags: ['complete'] });
  }

  onWebSocketFrame(e: WebSocketFrameEvent, ctx: RequestContext): AgentResponse {
    this.record('web_socket_frame', e, ctx);
    const text = new TextDecoder().decode(e.data);
    if (text === 'throw') throw new Error('frame hook exploded on purpose');
    return text === 'close-me'
      ? websocketClose(1008, 'policy')
      : allow({ websocketDecision: 'allow' });
  }

  onGuardrailInspect(e: GuardrailInspectEvent, ctx: RequestContext): AgentResponse {
    this.record('guardrail_inspect', e, ctx);
    return e.content.includes('ignore previous')
      ? block(400, { body: 'prompt injection' })
      : allow();
  }

  onConfigure(e: ConfigureEvent, ctx: RequestContext): AgentResponse {
    this.record('configure', e, ctx);
    return allow({ tags: ['configured'] });
  }

  onCancel(correlationId: string, reason: CancelReason): void {
    this.cancels.push({ correlationId, reason });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
