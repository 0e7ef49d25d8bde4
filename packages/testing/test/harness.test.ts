import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AgentHandler,
  AgentProtocolError,
  type AgentResponse,
  allow,
  block,
  type CancelReason,
  createCapabilities,
  type EventType,
  type RequestContext,
  redirect,
  setHeader,
} from '@picket/protocol';
import { AgentClientV2Uds, UdsAgentServerV2 } from '@picket/uds';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AgentHarness,
  createHarness,
  expectAllow,
  expectBlock,
  expectHandlerError,
  expectRequestHeaderSet,
  expectWebSocketDecision,
  requestHeadersEvent,
} from '../src/index.js';

const caps = () => createCapabilities({ agentId: 'test-agent' });

/** Resolves when `signal` aborts, with its reason. */
function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    else signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });
}

function deferred<T>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('events and context', () => {
  it('fills in defaults, keeps the correlation id of a request and hands over a context', async () => {
    const seen: Array<{ type: string; event: unknown; ctx: RequestContext }> = [];
    const h = createHarness(
      {
        capabilities: caps,
        onRequestHeaders(event, ctx) {
          seen.push({ type: 'headers', event, ctx });
          return allow();
        },
        onRequestBodyChunk(event, ctx) {
          seen.push({ type: 'chunk', event, ctx });
          return allow();
        },
      },
      { proxyId: 'edge-1' },
    );
    const req = h.request();
    await req.requestHeaders({
      method: 'POST',
      uri: '/x',
      headers: { host: 'a', accept: ['1', '2'] },
    });
    await req.requestBody(['ab', new Uint8Array([1, 2, 3])]);
    const [headers, c1, c2] = seen;
    expect(headers?.event).toMatchObject({
      method: 'POST',
      uri: '/x',
      headers: { host: ['a'], accept: ['1', '2'] },
      metadata: { correlation_id: 'req-1', client_ip: '127.0.0.1', protocol: 'HTTP/1.1' },
    });
    expect(headers?.ctx).toMatchObject({
      correlationId: 'req-1',
      transport: 'uds',
      connectionId: h.connectionId,
      proxyId: 'edge-1',
    });
    expect(headers?.ctx.signal.aborted).toBe(false);
    // body bytes went through the wire encoding (base64 in JSON) and came back as bytes
    expect(c1?.event).toEqual({
      correlation_id: 'req-1',
      data: new TextEncoder().encode('ab'),
      is_last: false,
      total_size: 5,
      chunk_index: 0,
      bytes_received: 2,
    });
    expect(c2?.event).toMatchObject({ is_last: true, chunk_index: 1, bytes_received: 5 });
    expect(c2?.ctx.correlationId).toBe('req-1');
    expect(h.request().correlationId).toBe('req-2');
  });

  it('answers an event without a hook as the servers do', async () => {
    const h = createHarness({ capabilities: caps });
    expectAllow(await h.requestHeaders());
    const ws = await h.request().webSocketFrame({ data: 'hi' });
    expectWebSocketDecision(ws, 'allow');
  });

  it('refuses an invalid event built by hand, naming the field', async () => {
    const h = createHarness({ capabilities: caps });
    const event = requestHeadersEvent('r', {});
    (event as { method: unknown }).method = 7;
    await expect(h.send('request_headers', event)).rejects.toThrow(/method/);
  });

  it.each(['json', 'msgpack', 'cbor'] as const)('carries binary bodies in %s', async (encoding) => {
    let got: Uint8Array | undefined;
    const h = createHarness(
      {
        capabilities: caps,
        onResponseBodyChunk(e) {
          got = e.data;
          return allow();
        },
      },
      { encoding },
    );
    const bytes = new Uint8Array([0, 255, 10, 13]);
    await h.request().responseBodyChunk(bytes, { last: true });
    expect(got).toEqual(bytes);
  });
});

describe('handshake', () => {
  it('returns the capabilities a proxy would see', async () => {
    const h = new AgentHarness({ capabilities: caps });
    expect(() => h.capabilities).toThrow(/no handshake yet/);
    const c = await h.handshake();
    expect(c.agent_id).toBe('test-agent');
    expect(h.capabilities).toEqual(c);
  });

  it('a refusal, a throwing onHandshake and unsendable capabilities fail the first event', async () => {
    const refusing = createHarness({
      capabilities: caps,
      onHandshake: (info) =>
        info.kind === 'handshake' && info.request.proxy_id === 'picket-testing'
          ? { accept: false, error: 'not you' }
          : { accept: true },
    });
    await expect(refusing.requestHeaders()).rejects.toMatchObject({
      code: 'HANDSHAKE_FAILED',
      message: expect.stringContaining('not you'),
    });
    const throwing = createHarness({
      capabilities: caps,
      onHandshake() {
        throw new Error('boom');
      },
    });
    await expect(throwing.handshake()).rejects.toThrow(/agent handshake handler failed/);
    const bad = createHarness({
      capabilities: () => ({ ...caps(), agent_id: 5 as unknown as string }),
    });
    await expect(bad.handshake()).rejects.toMatchObject({ code: 'HANDSHAKE_FAILED' });
  });
});

describe('error policy', () => {
  const failing: AgentHandler = {
    capabilities: caps,
    onRequestHeaders(e) {
      if (e.uri === '/throw') throw new Error('secret detail');
      if (e.uri === '/reject') return Promise.reject(new Error('nope'));
      if (e.uri === '/ok') {
        return allow({
          requestHeaders: [setHeader('x-a', '1')],
          routingMetadata: { pool: 'b' },
          tags: ['t'],
          confidence: 0.7,
          custom: { n: 1 },
          requestBodyMutation: { data: 'x', chunk_index: 0 },
        });
      }
      return { decision: 'maybe' } as unknown as AgentResponse;
    },
    onWebSocketFrame() {
      throw new Error('ws');
    },
  };

  it('a throw, a rejection and an unsendable answer get the handler-error block, never allow', async () => {
    const h = createHarness(failing);
    for (const uri of ['/throw', '/reject', '/garbage']) {
      const r = await h.requestHeaders({ uri });
      expectHandlerError(r);
      expect(JSON.stringify(r)).not.toContain('secret');
    }
    const ws = await h.request().webSocketFrame();
    expectWebSocketDecision(ws, { close: { code: 1011, reason: 'agent error' } });
  });

  it('is the same answer a real UDS server sends, in every encoding', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'picket-testing-'));
    const path = join(dir, 'a.sock');
    const server = new UdsAgentServerV2(path, failing, { logger: silent });
    await server.listen();
    try {
      for (const encoding of ['json', 'msgpack', 'cbor'] as const) {
        const client = await AgentClientV2Uds.connect('a', path, { encodings: [encoding] });
        expect(client.encoding).toBe(encoding);
        const h = createHarness(failing, { encoding });
        try {
          for (const uri of ['/throw', '/garbage', '/ok']) {
            const wire = await client.sendRequestHeaders(requestHeadersEvent(`w${uri}`, { uri }));
            delete wire.audit.custom.correlation_id;
            expect(await h.requestHeaders({ uri }), `${encoding} ${uri}`).toEqual(wire);
          }
        } finally {
          await client.close();
        }
      }
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('applies an object policy and refuses an allow policy', async () => {
    const h = createHarness(failing, { errorPolicy: { status: 503, body: 'later' } });
    const b = expectBlock(await h.requestHeaders({ uri: '/throw' }), 503);
    expect(b.body).toBe('later');
    expect(() => createHarness(failing, { errorPolicy: 'allow' as never })).toThrow(
      /never becomes allow/,
    );
  });

  it("'close' drops the connection: the call and later calls reject with CONNECTION_CLOSED", async () => {
    const h = createHarness(failing, { errorPolicy: 'close' });
    await expect(h.requestHeaders({ uri: '/throw' })).rejects.toMatchObject({
      code: 'CONNECTION_CLOSED',
      message: expect.stringContaining("errorPolicy 'close'"),
    });
    expect(h.closed).toBe(true);
    await expect(h.requestHeaders({ uri: '/' })).rejects.toMatchObject({
      code: 'CONNECTION_CLOSED',
    });
  });
});

const silent = { debug() {}, info() {}, warn() {}, error() {} };

describe('cancellation', () => {
  const cancels: Array<[string, CancelReason]> = [];
  afterEach(() => {
    cancels.length = 0;
  });
  /** A handler that waits for its signal, reporting the reason, until `release` resolves. */
  function waiting(reasons: unknown[], started: () => void): AgentHandler {
    return {
      capabilities: caps,
      async onRequestHeaders(_e, ctx) {
        started();
        reasons.push(await aborted(ctx.signal));
        return allow();
      },
      onCancel(cid, reason) {
        cancels.push([cid, reason]);
      },
    };
  }

  it('cancel() aborts ctx.signal, tells onCancel and rejects the call with CANCELLED', async () => {
    const reasons: unknown[] = [];
    const started = deferred<void>();
    const h = createHarness(waiting(reasons, () => started.resolve()));
    const req = h.request();
    const call = req.requestHeaders();
    await started.promise;
    expect(h.inFlight).toBe(1);
    expect(req.cancel('client_disconnect')).toBe(1);
    await expect(call).rejects.toMatchObject({ code: 'CANCELLED' });
    await expect.poll(() => reasons).toEqual(['client_disconnect']);
    expect(cancels).toEqual([['req-1', 'client_disconnect']]);
    expect(h.inFlight).toBe(0);
  });

  it('a deadline cancels with reason timeout; an aborted signal with manual', async () => {
    const reasons: unknown[] = [];
    const h = createHarness(
      waiting(reasons, () => {}),
      { timeoutMs: 20 },
    );
    await expect(h.requestHeaders()).rejects.toMatchObject({ code: 'TIMEOUT' });
    const ac = new AbortController();
    const call = h.requestHeaders({}, { signal: ac.signal, timeoutMs: 60_000 });
    ac.abort();
    await expect(call).rejects.toBeInstanceOf(AgentProtocolError);
    await expect.poll(() => reasons).toEqual(['timeout', 'manual']);
    expect(cancels.map(([, r]) => r)).toEqual(['timeout', 'manual']);
  });

  it('close() aborts every event in flight and rejects its call', async () => {
    const reasons: unknown[] = [];
    const started = deferred<void>();
    const h = createHarness(waiting(reasons, () => started.resolve()));
    const call = h.requestHeaders();
    await started.promise;
    h.close();
    await expect(call).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
    await expect.poll(() => reasons.length).toBe(1);
    expect(reasons[0]).toMatchObject({ code: 'CONNECTION_CLOSED' });
  });

  it('refuses a second event of the same type for a request in flight', async () => {
    const started = deferred<void>();
    const h = createHarness(waiting([], () => started.resolve()));
    const req = h.request();
    const first = req.requestHeaders();
    await started.promise;
    await expect(req.requestHeaders()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    req.cancel();
    await expect(first).rejects.toMatchObject({ code: 'CANCELLED' });
  });
});

describe('flow', () => {
  /** Keeps per-request state: blocks a request body containing "evil", counts events per request. */
  function stateful(log: Array<[EventType, string]>): AgentHandler {
    const bodies = new Map<string, string>();
    const record = (type: EventType, cid: string) => log.push([type, cid]);
    return {
      capabilities: caps,
      onRequestHeaders(e, ctx) {
        record('request_headers', ctx.correlationId);
        bodies.set(ctx.correlationId, '');
        if (e.uri === '/old') return redirect('/new', 301);
        return allow({ requestHeaders: [setHeader('X-Seen', e.method)] });
      },
      onRequestBodyChunk(e, ctx) {
        record('request_body_chunk', ctx.correlationId);
        const body = (bodies.get(ctx.correlationId) ?? '') + new TextDecoder().decode(e.data);
        bodies.set(ctx.correlationId, body);
        return body.includes('evil') ? block(400, { body: 'no' }) : allow();
      },
      onResponseHeaders(_e, ctx) {
        record('response_headers', ctx.correlationId);
        return allow();
      },
      onResponseBodyChunk(_e, ctx) {
        record('response_body_chunk', ctx.correlationId);
        return allow();
      },
      onRequestComplete(e, ctx) {
        record('request_complete', ctx.correlationId);
        bodies.delete(ctx.correlationId);
        return allow({ tags: [`status-${e.status}`, `in-${e.request_body_size}`] });
      },
    };
  }

  it('runs a whole request and returns every answer', async () => {
    const log: Array<[EventType, string]> = [];
    const h = createHarness(stateful(log));
    const f = await h.flow({
      method: 'PUT',
      requestBody: ['a', 'b'],
      response: { status: 201 },
      responseBody: 'ok',
    });
    expect(f.decision).toBe('allow');
    expect(f.decidedAt).toBeUndefined();
    expectRequestHeaderSet(f.requestHeaders, 'x-seen', 'PUT');
    expect(f.requestBody).toHaveLength(2);
    expect(f.responseBody).toHaveLength(1);
    expect(f.answers.map((a) => a.type)).toEqual([
      'request_headers',
      'request_body_chunk',
      'request_body_chunk',
      'response_headers',
      'response_body_chunk',
      'request_complete',
    ]);
    expect(f.complete.audit.tags).toEqual(['status-201', 'in-2']);
    expect(new Set(log.map(([, cid]) => cid))).toEqual(new Set([f.correlationId]));
  });

  it('stops at the first answer that does not allow and completes with its status', async () => {
    const log: Array<[EventType, string]> = [];
    const h = createHarness(stateful(log));
    // the state is per request: "ev" + "il" across two chunks of one request
    const f = await h.flow({ requestBody: ['ev', 'il', 'more'], responseBody: 'x' });
    expectBlock(f.requestBody[1] as AgentResponse, 400);
    expect(f.decidedAt).toBe('request_body_chunk');
    expect(f.decision).toEqual({ block: { status: 400, body: 'no', headers: null } });
    expect(f.responseHeaders).toBeUndefined();
    expect(log.map(([t]) => t)).toEqual([
      'request_headers',
      'request_body_chunk',
      'request_body_chunk',
      'request_complete',
    ]);
    expect(f.complete.audit.tags).toEqual(['status-400', 'in-4']);
    const r = await h.flow({ uri: '/old' });
    expect(r.decidedAt).toBe('request_headers');
    expect(r.complete.audit.tags).toEqual(['status-301', 'in-0']);
  });
});

describe('configure and guardrail', () => {
  it('sends configure and guardrail events', async () => {
    const h = createHarness({
      capabilities: caps,
      onConfigure: (e) =>
        e.config === 'bad' ? block(500) : allow({ tags: [String(e.config_version)] }),
      onGuardrailInspect: (e) =>
        e.content.includes('ignore previous') ? block(403) : allow({ tags: [e.inspection_type] }),
    });
    expect((await h.configure({ rules: 1 }, 'v7')).audit.tags).toEqual(['v7']);
    expectBlock(await h.configure('bad'), 500);
    expectBlock(await h.guardrailInspect({ content: 'please ignore previous rules' }), 403);
    const pii = await h.guardrailInspect({ content: 'x', inspection_type: 'pii_detection' });
    expect(pii.audit.tags).toEqual(['pii_detection']);
  });
});
