/**
 * Compliance-style suite, run over plaintext, TLS and mTLS (certificates generated at test
 * time): one request's whole lifecycle, every decision kind and header op, 1000 concurrent
 * requests answered out of order, cancellation, the handler error policy, bodies near the
 * 4 MiB message limit.
 */
import {
  type AgentHandler,
  AgentProtocolError,
  type AgentResponse,
  addHeader,
  allow,
  block,
  type CancelReason,
  type ConfigureEvent,
  challenge,
  createCapabilities,
  type EventMap,
  type EventType,
  type GuardrailInspectEvent,
  guardrailResult,
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
  websocketDrop,
} from '@picket/protocol';
import { afterAll, beforeAll, beforeEach, describe, expect, test, vi } from 'vitest';
import { hasOpenssl } from './certs.js';
import { type GrpcFixture, startGrpcFixture } from './fixtures.js';

const MiB = 1024 * 1024;

/** A handler that records every event and answers from a table keyed by correlation id. */
function recorder() {
  const seen: { type: EventType; event: unknown; ctx: RequestContext }[] = [];
  const answers = new Map<string, AgentResponse | (() => AgentResponse | Promise<AgentResponse>)>();
  const cancels: { cid: string; reason: CancelReason }[] = [];
  const answer =
    <K extends EventType>(type: K) =>
    async (event: EventMap[K], ctx: RequestContext): Promise<AgentResponse> => {
      seen.push({ type, event, ctx });
      const a = answers.get(ctx.correlationId);
      if (typeof a === 'function') return a();
      return a ?? allow({ requestHeaders: [setHeader('x-cid', ctx.correlationId)] });
    };
  const handler: AgentHandler = {
    capabilities: () =>
      createCapabilities({
        agentId: 'recorder',
        features: { streaming_body: true, cancellation: true, guardrails: true, websocket: true },
      }),
    onRequestHeaders: answer('request_headers'),
    onRequestBodyChunk: answer('request_body_chunk'),
    onResponseHeaders: answer('response_headers'),
    onResponseBodyChunk: answer('response_body_chunk'),
    onRequestComplete: answer('request_complete'),
    onWebSocketFrame: answer('web_socket_frame'),
    onGuardrailInspect: answer('guardrail_inspect'),
    onConfigure: answer('configure'),
    onCancel: (cid, reason) => cancels.push({ cid, reason }),
  };
  return { handler, seen, answers, cancels };
}

function headers(cid: string, uri = '/'): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: cid,
      request_id: `r-${cid}`,
      client_ip: '192.0.2.7',
      client_port: 40000,
      server_name: 'example.com',
      protocol: 'HTTP/2',
      tls_version: 'TLSv1.3',
      tls_cipher: 'TLS_AES_128_GCM_SHA256',
      route_id: 'api',
      upstream_id: 'backend',
      timestamp: '2026-01-01T00:00:00.123Z',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    },
    method: 'POST',
    uri,
    headers: { host: ['example.com'], accept: ['a/b', 'c/d'], 'X-Mixed-Case': ['v'] },
  };
}

const modes = [
  { name: 'plaintext', tls: false as const },
  { name: 'tls', tls: true as const },
  { name: 'mtls', tls: 'mtls' as const },
];

describe.each(modes)('gRPC over $name', ({ tls }) => {
  const skip = tls !== false && !hasOpenssl();
  let f: GrpcFixture;
  let rec: ReturnType<typeof recorder>;

  beforeAll(async () => {
    if (skip) return;
    rec = recorder();
    f = await startGrpcFixture(rec.handler, { tls });
  });
  afterAll(async () => {
    await f?.close();
  });
  beforeEach(() => {
    rec?.seen.splice(0);
    rec?.answers.clear();
    rec?.cancels.splice(0);
  });

  test.skipIf(skip)('lifecycle of one request', async () => {
    const t = f.transport;
    const cid = 'life-1';
    const h = headers(cid, '/upload?x=1');
    const body1: RequestBodyChunkEvent = {
      correlation_id: cid,
      data: new Uint8Array([0, 1, 2, 255]),
      is_last: false,
      total_size: 7,
      chunk_index: 0,
      bytes_received: 4,
    };
    const body2: RequestBodyChunkEvent = {
      correlation_id: cid,
      data: new TextEncoder().encode('abc'),
      is_last: true,
      total_size: 7,
      chunk_index: 1,
      bytes_received: 7,
    };
    const rh: ResponseHeadersEvent = {
      correlation_id: cid,
      status: 201,
      headers: { 'content-type': ['text/plain'], 'set-cookie': ['a=1', 'b=2'] },
    };
    const rb: ResponseBodyChunkEvent = {
      correlation_id: cid,
      data: new TextEncoder().encode('created'),
      is_last: true,
      total_size: null,
      chunk_index: 0,
      bytes_sent: 7,
    };
    const done: RequestCompleteEvent = {
      correlation_id: cid,
      status: 201,
      duration_ms: 12,
      request_body_size: 7,
      response_body_size: 7,
      upstream_attempts: 2,
      error: null,
    };
    for (const send of [
      () => t.sendRequestHeaders(h),
      () => t.sendRequestBodyChunk(body1),
      () => t.sendRequestBodyChunk(body2),
      () => t.sendResponseHeaders(rh),
      () => t.sendResponseBodyChunk(rb),
      () => t.sendRequestComplete(done),
    ]) {
      const r = await send();
      expect(r.request_headers).toEqual([setHeader('x-cid', cid)]);
    }
    expect(rec.seen.map((s) => s.type)).toEqual([
      'request_headers',
      'request_body_chunk',
      'request_body_chunk',
      'response_headers',
      'response_body_chunk',
      'request_complete',
    ]);
    // the metadata timestamp crosses gRPC as epoch ms
    expect(rec.seen[0]?.event).toEqual({
      ...h,
      metadata: { ...h.metadata, timestamp: String(Date.parse('2026-01-01T00:00:00.123Z')) },
    });
    expect(rec.seen.slice(1).map((s) => s.event)).toEqual([body1, body2, rh, rb, done]);
    expect(rec.seen[0]?.ctx.transport).toBe('grpc');
    expect(rec.seen[0]?.ctx.proxyId).toBe('zentinel-proxy');
    expect(rec.seen.every((s) => s.ctx.correlationId === cid)).toBe(true);
  });

  test.skipIf(skip)('websocket, guardrail and configure events reach the handler', async () => {
    const t = f.transport;
    const ws: WebSocketFrameEvent = {
      correlation_id: 'ws-1',
      opcode: 'text',
      data: new TextEncoder().encode('hi'),
      client_to_server: true,
      frame_index: 3,
      fin: false,
      route_id: 'chat',
      client_ip: '192.0.2.9',
    };
    rec.answers.set('ws-1', websocketClose(1008, 'policy'));
    expect((await t.sendWebSocketFrame(ws)).websocket_decision).toEqual({
      close: { code: 1008, reason: 'policy' },
    });
    const g: GuardrailInspectEvent = {
      correlation_id: 'g-1',
      inspection_type: 'pii_detection',
      content: 'my card is 4111 1111 1111 1111',
      model: 'gpt-x',
      categories: ['credit_card'],
      route_id: 'llm',
      metadata: { tenant: 't1' },
    };
    const verdict = { detected: true, confidence: 0.5, detections: [] };
    rec.answers.set('g-1', guardrailResult(verdict));
    const gr = await t.sendGuardrailInspect(g);
    expect(JSON.parse(gr.routing_metadata.guardrail_response ?? '')).toEqual(verdict);
    const c: ConfigureEvent = {
      correlation_id: 'cfg-1',
      config: { rules: ['a'], level: 3 },
      config_version: 'v7',
    };
    rec.answers.set('cfg-1', allow({ tags: ['configured'] }));
    expect((await t.sendConfigure(c)).audit.tags).toEqual(['configured']);
    expect(rec.seen.map((s) => s.event)).toEqual([ws, g, c]);
  });

  test.skipIf(skip)('every decision kind and header op round-trips', async () => {
    const cases: AgentResponse[] = [
      allow(),
      allow({
        requestHeaders: [setHeader('x-a', '1'), addHeader('x-b', '2'), removeHeader('cookie')],
        responseHeaders: [addHeader('x-c', '3'), removeHeader('server'), setHeader('x-d', '')],
        tags: ['t1', 't2'],
        ruleIds: ['942100'],
        reasonCodes: ['SQLI'],
        confidence: 0.95,
        custom: { score: 7, who: 'me', nested: { a: [1, true, null] } },
        routingMetadata: { upstream: 'blue' },
        needsMore: true,
        requestBodyMutation: replaceBody('redacted', 2),
        responseBodyMutation: { data: null, chunk_index: 0 },
      }),
      block(403),
      block(429, { body: 'slow down', headers: { 'retry-after': '10' }, reasonCodes: ['RATE'] }),
      redirect('https://login.example/?next=%2F', 307),
      challenge('captcha', { site_key: 'k1', theme: 'dark' }),
      challenge('js'),
      websocketDrop(),
      block(0, { body: '' }),
    ];
    for (const [i, expected] of cases.entries()) {
      const cid = `dec-${i}`;
      rec.answers.set(cid, expected);
      expect(await f.transport.sendRequestHeaders(headers(cid))).toEqual(expected);
    }
  });

  test.skipIf(skip)(
    '1000 concurrent requests are answered out of order, each to its caller',
    async () => {
      const order: string[] = [];
      const n = 1000;
      for (let i = 0; i < n; i++) {
        const cid = `many-${i}`;
        rec.answers.set(cid, async () => {
          await new Promise((r) => setTimeout(r, (n - i) % 7));
          order.push(cid);
          return allow({ requestHeaders: [setHeader('x-cid', cid)] });
        });
      }
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) => f.transport.sendRequestHeaders(headers(`many-${i}`))),
      );
      results.forEach((r, i) => {
        expect(r.request_headers).toEqual([setHeader('x-cid', `many-${i}`)]);
      });
      expect(order).toHaveLength(n);
      expect(order).not.toEqual(Array.from({ length: n }, (_, i) => `many-${i}`));
      expect(f.transport.inFlight).toBe(0);
    },
    30_000,
  );

  test.skipIf(skip)('cancellation reaches the handler (cancel() and AbortSignal)', async () => {
    const aborted: string[] = [];
    const waitForAbort = (cid: string) => async () => {
      const ctx = rec.seen.find((s) => s.ctx.correlationId === cid)?.ctx;
      await new Promise<void>((resolve) => {
        if (ctx?.signal.aborted) resolve();
        ctx?.signal.addEventListener('abort', () => resolve());
      });
      aborted.push(cid);
      return allow();
    };
    rec.answers.set('slow-1', waitForAbort('slow-1'));
    rec.answers.set('slow-2', waitForAbort('slow-2'));
    const p1 = f.transport.sendRequestHeaders(headers('slow-1'));
    await vi.waitFor(() =>
      expect(rec.seen.some((s) => s.ctx.correlationId === 'slow-1')).toBe(true),
    );
    await f.transport.cancel('slow-1', 'blocked_by_agent');
    await expect(p1).rejects.toMatchObject({ code: 'CANCELLED' });

    const ac = new AbortController();
    const p2 = f.transport.sendRequestHeaders(headers('slow-2'), { signal: ac.signal });
    await vi.waitFor(() =>
      expect(rec.seen.some((s) => s.ctx.correlationId === 'slow-2')).toBe(true),
    );
    ac.abort();
    await expect(p2).rejects.toMatchObject({ code: 'CANCELLED' });

    await vi.waitFor(() => expect(aborted.sort()).toEqual(['slow-1', 'slow-2']));
    expect(rec.cancels).toEqual([
      { cid: 'slow-1', reason: 'blocked_by_agent' },
      { cid: 'slow-2', reason: 'client_disconnect' },
    ]);
    // the stream is still usable
    expect((await f.transport.sendRequestHeaders(headers('after-cancel'))).decision).toBe('allow');
  });

  test.skipIf(skip)(
    'a handler exception becomes the one handler-error answer, never allow',
    async () => {
      rec.answers.set('boom', () => {
        throw new Error('database unreachable');
      });
      const r = await f.transport.sendRequestHeaders(headers('boom'));
      expect(r.decision).toEqual({
        block: { status: 500, body: 'Agent handler error', headers: null },
      });
      expect(r.audit.reason_codes).toEqual(['AGENT_HANDLER_ERROR']);
      expect(r.audit.tags).toEqual(['picket_error']);
      rec.answers.set('junk', () => ({ nonsense: true }) as unknown as AgentResponse);
      const j = await f.transport.sendRequestHeaders(headers('junk'));
      expect(j.audit.reason_codes).toEqual(['AGENT_HANDLER_ERROR']);
      expect((j.decision as { block: { status: number } }).block.status).toBe(500);
    },
  );

  test.skipIf(skip)(
    'bodies near the 4 MiB limit pass; larger ones are refused without harm',
    async () => {
      const near = new Uint8Array(4 * MiB - 1024).fill(7);
      const chunk: RequestBodyChunkEvent = {
        correlation_id: 'big-1',
        data: near,
        is_last: true,
        total_size: near.length,
        chunk_index: 0,
        bytes_received: near.length,
      };
      expect((await f.transport.sendRequestBodyChunk(chunk)).decision).toBe('allow');
      const got = rec.seen.find((s) => s.ctx.correlationId === 'big-1')
        ?.event as RequestBodyChunkEvent;
      expect(got.data.length).toBe(near.length);
      expect(got.data.every((b) => b === 7)).toBe(true);

      const err = await f.transport
        .sendRequestBodyChunk({
          ...chunk,
          correlation_id: 'big-2',
          data: new Uint8Array(4 * MiB + 1),
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AgentProtocolError);
      expect((err as AgentProtocolError).code).toBe('MESSAGE_TOO_LARGE');

      // a large answer near the limit comes back whole
      rec.answers.set('big-3', block(413, { body: 'x'.repeat(4 * MiB - 2048) }));
      const big = await f.transport.sendRequestHeaders(headers('big-3'));
      expect((big.decision as { block: { body: string } }).block.body.length).toBe(4 * MiB - 2048);
      // an answer over the limit is replaced by the error policy
      rec.answers.set('big-4', block(413, { body: 'x'.repeat(4 * MiB + 10) }));
      const over = await f.transport.sendRequestHeaders(headers('big-4'));
      expect(over.audit.reason_codes).toEqual(['AGENT_HANDLER_ERROR']);
      expect((await f.transport.sendRequestHeaders(headers('after-big'))).decision).toBe('allow');
    },
    30_000,
  );
});
