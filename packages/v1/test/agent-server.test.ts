/** The v1 AgentServer as an AgentServer role and its errorPolicy. */
import {
  type AgentHandler,
  type AgentResponse,
  type AgentServer as AgentServerRole,
  allow,
  createCapabilities,
  HANDLER_ERROR_BODY,
  type RequestHeadersEvent,
} from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, connectPeer, headersEvent, makeServer, until } from './helpers.js';

afterEach(closeAll);

const request = (cid: string, uri = '/') => ({
  version: 1,
  event_type: 'request_headers',
  payload: headersEvent(cid, uri),
});

const make = makeServer;

const peer = connectPeer;

const throwing: AgentHandler = {
  capabilities: () => createCapabilities({ agentId: 'srv' }),
  onRequestHeaders(e: RequestHeadersEvent): AgentResponse {
    if (e.uri === '/throw') throw new Error('boom');
    return allow({ tags: ['ok'] });
  },
  onWebSocketFrame(): AgentResponse {
    throw new Error('ws boom');
  },
};

describe('v1 AgentServer as AgentServer', () => {
  it('listen() resolves to v1+unix:<path>; endpoints empty before and after', async () => {
    const { path, server } = make(throwing);
    const role: AgentServerRole = server;
    expect(role.endpoints).toEqual([]);
    expect(await role.listen()).toEqual([`v1+unix:${path}`]);
    expect(role.endpoints).toEqual([`v1+unix:${path}`]);
    await role.close();
    expect(role.endpoints).toEqual([]);
  });

  it('drain() lets the request being handled answer, then closes', async () => {
    let release!: () => void;
    let started = false;
    const gate = new Promise<void>((r) => (release = r));
    const { path, server } = make({
      capabilities: () => createCapabilities({ agentId: 'srv' }),
      async onRequestHeaders() {
        started = true;
        await gate;
        return allow({ tags: ['late'] });
      },
    });
    await server.listen();
    const p = await peer(path);
    p.writeJson(request('d-1'));
    await until(() => started, 'the handler to start');
    const draining = server.drain(10_000);
    release();
    const r = await p.nextJson();
    expect((r.audit as { tags: string[] }).tags).toEqual(['late']);
    await draining;
    expect(server.listening).toBe(false);
  });
});

describe('v1 errorPolicy', () => {
  it('a WebSocket frame handler error is the same answer plus close 1011', async () => {
    const { path, server } = make(throwing);
    await server.listen();
    const p = await peer(path);
    p.writeJson({
      version: 1,
      event_type: 'web_socket_frame',
      payload: {
        correlation_id: 'w-1',
        opcode: 'text',
        data: '',
        client_to_server: true,
        frame_index: 0,
        fin: true,
        route_id: null,
        client_ip: '127.0.0.1',
      },
    });
    const r = await p.nextJson();
    expect(r.decision).toEqual({
      block: { status: 500, body: HANDLER_ERROR_BODY, headers: null },
    });
    expect(r.websocket_decision).toEqual({ close: { code: 1011, reason: 'agent error' } });
  });

  it("'close' drops the connection unanswered; other connections keep working", async () => {
    const { path, server, log } = make(throwing, { errorPolicy: 'close' });
    await server.listen();
    const bad = await peer(path);
    bad.writeJson(request('c-1', '/throw'));
    expect(await bad.next()).toBeUndefined();
    expect(log.lines.some((l) => /errorPolicy "close"/.test(l.message))).toBe(true);
    const good = await peer(path);
    good.writeJson(request('c-2'));
    expect(((await good.nextJson()).audit as { tags: string[] }).tags).toEqual(['ok']);
  });

  it("refuses 'allow', naming the option", () => {
    expect(() => make(throwing, { errorPolicy: 'allow' as never })).toThrow(
      /errorPolicy must be 'block', 'close'/,
    );
  });
});
