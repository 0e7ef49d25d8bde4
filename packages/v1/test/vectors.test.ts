import { DenylistAgent, EchoAgent } from '@picket/agents';
import { encodeV1Frame } from '@picket/framing';
import {
  type AgentHandler,
  type AgentResponse,
  allow,
  block,
  createCapabilities,
  type EventMap,
  type EventType,
  MAX_V1_MESSAGE_SIZE,
  type RequestHeadersEvent,
} from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient, AgentServer, silentLogger } from '../src/index.js';
import { decodeV1Request, decodeV1Response, requestFrame, responseFrame } from '../src/wire.js';
import {
  cleanupDirs,
  fromHex,
  headersEvent,
  hex,
  RawPeer,
  rawAgent,
  socketPath,
  utf8,
  V10A_FRAME_HEX,
  V10B_FRAME_HEX,
  v10aEvent,
} from './helpers.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  cleanupDirs();
});

async function serve(handler: AgentHandler, agentId = 'test-agent'): Promise<string> {
  const path = socketPath();
  const server = new AgentServer(agentId, path, handler, { logger: silentLogger });
  await server.run();
  closers.push(() => server.close());
  return path;
}

async function client(path: string, agentId = 'test-agent'): Promise<AgentClient> {
  const c = await AgentClient.unixSocket(agentId, path, { timeoutMs: 5000 });
  closers.push(() => c.close());
  return c;
}

/** The reference DenylistAgent of spec §1.5, written inline. */
const inlineDenylist: AgentHandler = {
  capabilities: () => createCapabilities({ agentId: 'denylist' }),
  onRequestHeaders(e: RequestHeadersEvent): AgentResponse {
    if (e.uri.startsWith('/admin')) {
      return block(403, {
        body: 'Forbidden path',
        tags: ['denylist', 'blocked_path'],
        reasonCodes: ['PATH_BLOCKED'],
      });
    }
    return allow();
  },
};

describe('golden vectors V10a / V10b', () => {
  it('encodes the V10a request payload byte for byte', () => {
    const frame = requestFrame('request_headers', v10aEvent(), {
      agentId: 'x',
      version: 1,
      maxMessageSize: MAX_V1_MESSAGE_SIZE,
    });
    expect(hex(frame)).toBe(V10A_FRAME_HEX);
  });

  it('decodes V10a back to the event', () => {
    const decoded = decodeV1Request(fromHex(V10A_FRAME_HEX).subarray(4));
    expect(decoded.version).toBe(1);
    expect(decoded.eventType).toBe('request_headers');
    expect(decoded.event).toEqual(v10aEvent());
  });

  it('re-encodes the V10b response byte for byte', () => {
    const payload = fromHex(V10B_FRAME_HEX).subarray(4);
    const response = decodeV1Response(payload);
    expect(response.decision).toEqual({
      block: { status: 403, body: 'Forbidden path', headers: null },
    });
    expect(hex(responseFrame(response, MAX_V1_MESSAGE_SIZE))).toBe(V10B_FRAME_HEX);
  });

  it('AgentClient writes exactly the V10a frame and reads the V10b answer', async () => {
    const path = socketPath();
    const agent = await rawAgent(path, (peer) => {
      void peer.next().then(() => peer.write(fromHex(V10B_FRAME_HEX)));
    });
    closers.push(() => agent.close());
    const c = await client(path);
    const response = await c.sendEvent('request_headers', v10aEvent());
    expect(hex(Buffer.concat(agent.peers[0]?.received ?? []))).toBe(V10A_FRAME_HEX);
    expect(response.version).toBe(1);
    expect(response.decision).toEqual({
      block: { status: 403, body: 'Forbidden path', headers: null },
    });
    expect(response.audit.reason_codes).toEqual(['PATH_BLOCKED']);
  });

  for (const [name, handler] of [
    ['an inline denylist handler', inlineDenylist],
    ['@picket/agents DenylistAgent', new DenylistAgent({ blockedPaths: ['/admin'] })],
  ] as const) {
    it(`AgentServer running ${name} answers V10a with exactly V10b`, async () => {
      const path = await serve(handler);
      const peer = await RawPeer.connect(path);
      closers.push(async () => peer.destroy());
      peer.write(fromHex(V10A_FRAME_HEX));
      const answer = await peer.next();
      expect(answer).toBeDefined();
      expect(hex(encodeV1Frame(answer as Uint8Array))).toBe(V10B_FRAME_HEX);
    });
  }
});

describe('reference agents in v1 mode (spec §1.5)', () => {
  it('EchoAgent adds exactly one request header, X-Echo-Agent = correlation id', async () => {
    const path = await serve(new EchoAgent({ mode: 'v1' }));
    const c = await client(path);
    const r = await c.sendEvent('request_headers', headersEvent('corr-42', '/anything'));
    expect(r.version).toBe(1);
    expect(r.decision).toBe('allow');
    expect(r.request_headers).toEqual([{ set: { name: 'X-Echo-Agent', value: 'corr-42' } }]);
    expect(r.audit.tags).toEqual(['echo']);
  });

  it('DenylistAgent blocks /admin/secret with 403 "Forbidden path" and allows the rest', async () => {
    const path = await serve(
      new DenylistAgent({ blockedPaths: ['/admin'], blockedIps: ['10.0.0.1'] }),
    );
    const c = await client(path);
    const blocked = await c.sendEvent('request_headers', headersEvent('a', '/admin/secret'));
    expect(blocked.decision).toEqual({
      block: { status: 403, body: 'Forbidden path', headers: null },
    });
    expect(blocked.audit.tags).toEqual(['denylist', 'blocked_path']);
    const ok = await c.sendEvent('request_headers', headersEvent('b', '/public'));
    expect(ok.decision).toBe('allow');
    const fromIp = headersEvent('c', '/public');
    fromIp.metadata.client_ip = '10.0.0.1';
    const ipBlocked = await c.sendEvent('request_headers', fromIp);
    expect(ipBlocked.decision).toEqual({
      block: { status: 403, body: 'Forbidden IP', headers: null },
    });
    expect(ipBlocked.audit.reason_codes).toEqual(['IP_BLOCKED']);
  });
});

const EVENTS: { [K in EventType]: EventMap[K] } = {
  configure: { correlation_id: '', config: { rules: ['a', 'b'], level: 3 }, config_version: null },
  request_headers: headersEvent('r1'),
  request_body_chunk: {
    correlation_id: 'r1',
    data: utf8('hello'),
    is_last: true,
    total_size: 5,
    chunk_index: 0,
    bytes_received: 5,
  },
  response_headers: {
    correlation_id: 'r1',
    status: 200,
    headers: { 'content-type': ['text/html'] },
  },
  response_body_chunk: {
    correlation_id: 'r1',
    data: new Uint8Array([0, 1, 2, 255]),
    is_last: false,
    total_size: null,
    chunk_index: 2,
    bytes_sent: 10,
  },
  request_complete: {
    correlation_id: 'r1',
    status: 200,
    duration_ms: 12,
    request_body_size: 5,
    response_body_size: 10,
    upstream_attempts: 1,
    error: null,
  },
  web_socket_frame: {
    correlation_id: 'r1',
    opcode: 'text',
    data: utf8('hi'),
    client_to_server: true,
    frame_index: 0,
    fin: true,
    route_id: null,
    client_ip: '127.0.0.1',
  },
  guardrail_inspect: {
    correlation_id: 'r1',
    inspection_type: 'pii_detection',
    content: 'my ssn is …',
    categories: ['ssn'],
    metadata: {},
  },
};

describe('v1 request encoding', () => {
  it('writes sorted payload keys, snake_case event types and no injected correlation id', () => {
    const text = (t: EventType) =>
      Buffer.from(
        requestFrame(t, EVENTS[t] as never, {
          agentId: 'waf-1',
          version: 1,
          maxMessageSize: MAX_V1_MESSAGE_SIZE,
        }).subarray(4),
      ).toString();
    expect(text('request_body_chunk')).toBe(
      '{"version":1,"event_type":"request_body_chunk","payload":{"bytes_received":5,"chunk_index":0,"correlation_id":"r1","data":"aGVsbG8=","is_last":true,"total_size":5}}',
    );
    expect(text('web_socket_frame')).toContain('"event_type":"web_socket_frame"');
    expect(text('configure')).toBe(
      '{"version":1,"event_type":"configure","payload":{"agent_id":"waf-1","config":{"level":3,"rules":["a","b"]}}}',
    );
    expect(text('guardrail_inspect')).toBe(
      '{"version":1,"event_type":"guardrail_inspect","payload":{"categories":["ssn"],"content":"my ssn is …","correlation_id":"r1","inspection_type":"pii_detection","metadata":{}}}',
    );
  });

  it('every event type travels client → server → handler unchanged', async () => {
    const seen: { type: string; event: unknown; transport: string }[] = [];
    const record =
      (type: string) =>
      (event: unknown, ctx: { transport: string }): AgentResponse => {
        seen.push({ type, event, transport: ctx.transport });
        return allow({ tags: [type] });
      };
    const handler: AgentHandler = {
      capabilities: () => createCapabilities({ agentId: 'rec' }),
      onConfigure: record('configure'),
      onRequestHeaders: record('request_headers'),
      onRequestBodyChunk: record('request_body_chunk'),
      onResponseHeaders: record('response_headers'),
      onResponseBodyChunk: record('response_body_chunk'),
      onRequestComplete: record('request_complete'),
      onWebSocketFrame: record('web_socket_frame'),
      onGuardrailInspect: record('guardrail_inspect'),
    };
    const path = await serve(handler);
    const c = await client(path);
    for (const type of Object.keys(EVENTS) as EventType[]) {
      const r = await c.sendEvent(type, EVENTS[type] as never);
      expect(r.audit.tags).toEqual([type]);
    }
    expect(seen.map((s) => s.type)).toEqual(Object.keys(EVENTS));
    for (const s of seen) {
      expect(s.transport).toBe('v1');
      expect(s.event).toEqual(EVENTS[s.type as EventType]);
    }
  });
});
