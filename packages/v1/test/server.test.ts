import * as fs from 'node:fs';
import * as net from 'node:net';
import {
  type AgentHandler,
  type AgentResponse,
  allow,
  createCapabilities,
  type RequestContext,
  type RequestHeadersEvent,
} from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_HANDLER_ERROR, AgentServer, DEFAULT_V1_MAX_CONNECTIONS } from '../src/index.js';
import {
  captureLogger,
  closeAll,
  connectPeer,
  headersEvent,
  onClose,
  type RawPeer,
  rejection,
  socketPath,
  startServer,
  until,
  utf8,
} from './helpers.js';

afterEach(closeAll);

const request = (cid: string, uri = '/') => ({
  version: 1,
  event_type: 'request_headers',
  payload: headersEvent(cid, uri),
});

/** Handler whose answer depends on the path: `/throw`, `/garbage`, `/slow`, `/hang`, else allow + x-cid. */
function testHandler(seen: RequestContext[] = []): AgentHandler {
  return {
    capabilities: () => createCapabilities({ agentId: 'srv' }),
    async onRequestHeaders(e: RequestHeadersEvent, ctx): Promise<AgentResponse> {
      seen.push(ctx);
      if (e.uri === '/throw') throw new Error('boom');
      if (e.uri === '/garbage') return { nope: true } as unknown as AgentResponse;
      if (e.uri === '/slow') await new Promise((r) => setTimeout(r, 20));
      if (e.uri === '/hang') {
        await new Promise<void>((r) => ctx.signal.addEventListener('abort', () => r()));
      }
      return allow({
        requestHeaders: [{ set: { name: 'x-cid', value: e.metadata.correlation_id } }],
      });
    },
  };
}

const start = startServer;

const peer = connectPeer;

/** Sends one request on `p` and expects an answer naming `cid`. */
async function roundTrip(p: RawPeer, cid: string): Promise<void> {
  p.writeJson(request(cid));
  const r = await p.nextJson();
  expect(r.request_headers).toEqual([{ set: { name: 'x-cid', value: cid } }]);
}

describe('AgentServer: socket file', () => {
  it('listens with mode 0660 and removes the socket on close', async () => {
    const { path, server } = await start(testHandler());
    const st = fs.statSync(path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    expect(server.listening).toBe(true);
    await server.close();
    expect(fs.existsSync(path)).toBe(false);
  });

  it('replaces a stale socket file', async () => {
    const path = socketPath();
    // A socket file nobody listens on: bind and let the handle go without unlinking.
    const stale = net.createServer();
    await new Promise<void>((r) => stale.listen(path, r));
    const copy = `${path}.keep`;
    fs.linkSync(path, copy);
    await new Promise<void>((r) => stale.close(() => r()));
    fs.renameSync(copy, path);
    expect(fs.statSync(path).isSocket()).toBe(true);

    const server = new AgentServer('srv', path, testHandler(), { logger: captureLogger().logger });
    await server.run();
    onClose(() => server.close());
    await roundTrip(await peer(path), 'after-stale');
  });

  it('refuses to replace a live socket or a regular file', async () => {
    const { path } = await start(testHandler());
    const second = new AgentServer('srv2', path, testHandler());
    const live = await rejection(second.run());
    expect(live.code).toBe('CONNECTION_FAILED');
    expect(live.message).toContain('already listening');

    const filePath = socketPath('not-a-socket');
    fs.writeFileSync(filePath, 'data');
    const third = new AgentServer('srv3', filePath, testHandler());
    expect((await rejection(third.run())).code).toBe('INVALID_ARGUMENT');
    expect(fs.readFileSync(filePath, 'utf8')).toBe('data');
  });
});

describe('AgentServer: bad input closes only that connection', () => {
  const cases: [string, (p: RawPeer) => void, string][] = [
    [
      'bad JSON',
      (p) => {
        const body = utf8('{"version":1,');
        const frame = Buffer.alloc(4 + body.length);
        frame.writeUInt32BE(body.length);
        frame.set(body, 4);
        p.write(frame);
      },
      'invalid JSON',
    ],
    [
      'an unknown event type',
      (p) => p.writeJson({ version: 1, event_type: 'websocket_frame', payload: {} }),
      'websocket_frame',
    ],
    [
      'an invalid payload',
      (p) => p.writeJson({ version: 1, event_type: 'request_headers', payload: { method: 'GET' } }),
      'metadata',
    ],
    ['an oversize length', (p) => p.write(Buffer.from([0x00, 0xa0, 0x00, 0x01])), 'exceeds'],
    ['a zero length', (p) => p.write(Buffer.from([0, 0, 0, 0])), 'zero-length'],
  ];

  for (const [name, send, reason] of cases) {
    it(`${name}: that connection is closed unanswered and logged, another keeps working`, async () => {
      const { path, log } = await start(testHandler());
      const good = await peer(path);
      const bad = await peer(path);
      await roundTrip(good, 'before');
      send(bad);
      expect(await bad.next()).toBeUndefined();
      await bad.waitClosed();
      const warn = log.lines.find((l) => l.level === 'warn');
      expect(warn?.message).toContain(reason);
      expect(warn?.fields?.connectionId).toBeTruthy();
      await roundTrip(good, 'after');
    });
  }
});

describe('AgentServer: handlers', () => {
  it('answers a handler exception with block 500 AGENT_HANDLER_ERROR, never allow', async () => {
    const { path, log } = await start(testHandler());
    const p = await peer(path);
    p.writeJson(request('t', '/throw'));
    const r = await p.nextJson();
    expect(r.version).toBe(1);
    expect(r.decision).toEqual({
      block: { status: 500, body: 'Agent handler error', headers: null },
    });
    expect((r.audit as { reason_codes: string[] }).reason_codes).toEqual([AGENT_HANDLER_ERROR]);
    expect(log.lines.some((l) => l.level === 'error' && l.fields?.error === 'boom')).toBe(true);
    // The connection survives a handler error.
    await roundTrip(p, 'next');
  });

  it('answers a malformed handler response with block 500 too', async () => {
    const { path } = await start(testHandler());
    const p = await peer(path);
    p.writeJson(request('g', '/garbage'));
    const r = await p.nextJson();
    expect(r.decision).toMatchObject({ block: { status: 500 } });
  });

  it('defaults: allow for missing hooks, websocket_decision "allow" for frames, version 1', async () => {
    const { path } = await start({ capabilities: () => createCapabilities({ agentId: 'x' }) });
    const p = await peer(path);
    p.writeJson(request('a'));
    const r = await p.nextJson();
    expect(r).toMatchObject({ version: 1, decision: 'allow', websocket_decision: null });
    p.writeJson({
      version: 1,
      event_type: 'web_socket_frame',
      payload: {
        correlation_id: 'w',
        opcode: 'text',
        data: 'aGk=',
        client_to_server: true,
        frame_index: 0,
        fin: true,
        client_ip: '127.0.0.1',
      },
    });
    expect(await p.nextJson()).toMatchObject({ decision: 'allow', websocket_decision: 'allow' });
  });

  it('writes responseVersion when configured', async () => {
    const { path } = await start(testHandler(), { responseVersion: 2 });
    const p = await peer(path);
    p.writeJson(request('a'));
    expect((await p.nextJson()).version).toBe(2);
  });

  it('passes a v1 RequestContext: transport v1, one connection id per connection', async () => {
    const seen: RequestContext[] = [];
    const { path } = await start(testHandler(seen));
    const a = await peer(path);
    const b = await peer(path);
    await roundTrip(a, 'a1');
    await roundTrip(a, 'a2');
    await roundTrip(b, 'b1');
    expect(seen.map((c) => c.transport)).toEqual(['v1', 'v1', 'v1']);
    expect(seen.map((c) => c.correlationId)).toEqual(['a1', 'a2', 'b1']);
    expect(seen[0]?.connectionId).toBe(seen[1]?.connectionId);
    expect(seen[0]?.connectionId).not.toBe(seen[2]?.connectionId);
  });

  it('aborts ctx.signal when the connection drops mid-request', async () => {
    const seen: RequestContext[] = [];
    const { path, server } = await start(testHandler(seen));
    const p = await peer(path);
    p.writeJson(request('h', '/hang'));
    await until(() => seen.length === 1, 'the handler to start');
    expect(seen[0]?.signal.aborted).toBe(false);
    p.destroy();
    await until(() => seen[0]?.signal.aborted === true, 'the signal to abort');
    await until(() => server.connectionCount === 0, 'the connection to be forgotten');
  });

  it('serves one request at a time per connection, in order, even when pipelined', async () => {
    let active = 0;
    let maxActive = 0;
    const order: string[] = [];
    const handler: AgentHandler = {
      capabilities: () => createCapabilities({ agentId: 'x' }),
      async onRequestHeaders(e) {
        active++;
        maxActive = Math.max(maxActive, active);
        await new Promise((r) => setTimeout(r, 5));
        active--;
        order.push(e.metadata.correlation_id);
        return allow({ tags: [e.metadata.correlation_id] });
      },
    };
    const { path } = await start(handler);
    const p = await peer(path);
    for (const id of ['1', '2', '3', '4']) p.writeJson(request(id));
    const tags: unknown[] = [];
    for (let i = 0; i < 4; i++) tags.push((await p.nextJson()).audit);
    expect(tags.map((a) => (a as { tags: string[] }).tags[0])).toEqual(['1', '2', '3', '4']);
    expect(order).toEqual(['1', '2', '3', '4']);
    expect(maxActive).toBe(1);
  });

  it('serves many connections at once', async () => {
    let active = 0;
    let maxActive = 0;
    const handler: AgentHandler = {
      capabilities: () => createCapabilities({ agentId: 'x' }),
      async onRequestHeaders(e) {
        active++;
        maxActive = Math.max(maxActive, active);
        await until(() => maxActive >= 5 || active >= 5, 'all five to be active');
        active--;
        return allow({
          requestHeaders: [{ set: { name: 'x-cid', value: e.metadata.correlation_id } }],
        });
      },
    };
    const { path, server } = await start(handler);
    const peers = await Promise.all([1, 2, 3, 4, 5].map(() => peer(path)));
    await until(() => server.connectionCount === 5, 'five connections');
    await Promise.all(peers.map((p, i) => roundTrip(p, `c${i}`)));
    expect(maxActive).toBe(5);
  });

  it('treats end of stream as the client leaving: the handler is aborted, nothing is answered', async () => {
    const seen: RequestContext[] = [];
    const { path } = await start(testHandler(seen));
    const p = await peer(path);
    p.writeJson(request('gone', '/hang'));
    await until(() => seen.length === 1, 'the handler to start');
    p.socket.end();
    await until(() => seen[0]?.signal.aborted === true, 'the signal to abort');
    expect(await p.next()).toBeUndefined();
  });

  it('close() ends open connections and aborts their handlers', async () => {
    const seen: RequestContext[] = [];
    const { path, server } = await start(testHandler(seen));
    const p = await peer(path);
    p.writeJson(request('h', '/hang'));
    await until(() => seen.length === 1, 'the handler to start');
    await server.close();
    await p.waitClosed();
    expect(seen[0]?.signal.aborted).toBe(true);
    expect(server.listening).toBe(false);
  });
});

describe('AgentServer: maxConnections', () => {
  it('is 1024 by default; nonsense values are refused naming the option', () => {
    expect(DEFAULT_V1_MAX_CONNECTIONS).toBe(1024);
    const h = testHandler();
    expect(() => new AgentServer('srv', socketPath(), h, { maxConnections: 0 })).toThrow(
      /maxConnections/,
    );
    expect(() => new AgentServer('srv', socketPath(), h, { maxConnections: 2.5 })).toThrow(
      /maxConnections/,
    );
    expect(
      () => new AgentServer('srv', socketPath(), h, { maxConnections: Infinity }),
    ).not.toThrow();
  });

  it('closes the (n+1)th connection with a log line naming the limit, accepts again after one closes', async () => {
    const { path, server, log } = await start(testHandler(), { maxConnections: 2 });
    const a = await peer(path);
    const b = await peer(path);
    await until(() => server.connectionCount === 2, 'two connections');
    const extra = await peer(path);
    await extra.waitClosed();
    expect(await extra.next()).toBeUndefined();
    const warn = log.lines.find((l) => l.level === 'warn');
    expect(warn?.message).toMatch(/connection limit reached \(2 open, maxConnections 2\)/);
    expect(warn?.fields?.maxConnections).toBe(2);
    expect(server.connectionCount).toBe(2);
    // the connections inside the cap are untouched
    await roundTrip(a, 'a');
    await roundTrip(b, 'b');
    a.destroy();
    await until(() => server.connectionCount === 1, 'the slot to be freed');
    const c = await peer(path);
    await roundTrip(c, 'c');
    expect(server.connectionCount).toBe(2);
  });
});
