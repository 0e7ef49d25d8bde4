/** ReverseAgent as an AgentServer: listen = dial and register, endpoints = where it dialled. */
import { cid, requestHeaders } from '@picket/compliance';
import { type AgentServer, allow, createCapabilities, type HealthReport } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { ReverseAgent, ReverseConnectionListener } from '../src/index.js';
import { captureLogger, stampHandler, tempSocket, until } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('ReverseAgent as AgentServer', () => {
  it('listen() registers and resolves to the reverse endpoint it dialled; close() empties it', async () => {
    const sock = tempSocket();
    const listener = await ReverseConnectionListener.bindUds(sock.path, {
      logger: captureLogger(),
    });
    cleanups.push(async () => {
      await listener.close();
      sock.cleanup();
    });
    const first = listener.connections().next();
    const server: AgentServer = new ReverseAgent({
      endpoint: sock.path,
      agentId: 'a1',
      handler: stampHandler('a1'),
      logger: captureLogger(),
    });
    cleanups.push(() => server.close());
    expect(server.endpoints).toEqual([]);
    expect(await server.listen()).toEqual([`reverse+unix:${sock.path}`]);
    expect(server.endpoints).toEqual([`reverse+unix:${sock.path}`]);
    const { value: conn } = await first;
    expect(conn).toBeDefined();
    const r = await conn?.sendRequestHeaders(requestHeaders(cid()), { timeoutMs: 5000 });
    expect(r?.decision).toBe('allow');
    await server.close();
    expect(server.endpoints).toEqual([]);
    await expect(server.listen()).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  });

  it('listen() over TCP names reverse+tcp://host:port; drain() lets a running handler answer', async () => {
    const listener = await ReverseConnectionListener.bindTcp('127.0.0.1:0', {
      logger: captureLogger(),
    });
    cleanups.push(() => listener.close());
    const first = listener.connections().next();
    let release!: () => void;
    let started = false;
    const gate = new Promise<void>((r) => (release = r));
    const agent = new ReverseAgent({
      endpoint: listener.endpoint,
      agentId: 'a2',
      handler: {
        capabilities: () => createCapabilities({ agentId: 'a2', name: 'a2', version: '1' }),
        onRequestHeaders: async () => {
          started = true;
          await gate;
          return allow({ tags: ['late'] });
        },
      },
      logger: captureLogger(),
    });
    cleanups.push(() => agent.close());
    const [endpoint] = await agent.listen();
    expect(endpoint).toMatch(/^reverse\+tcp:\/\/127\.0\.0\.1:\d+$/);
    const { value: conn } = await first;
    const health: string[] = [];
    conn?.on('health', (h: HealthReport) => health.push(h.state));
    const pending = conn?.sendRequestHeaders(requestHeaders(cid()), { timeoutMs: 10_000 });
    await until(() => started);
    const draining = agent.drain(10_000);
    await until(() => health.includes('draining'));
    release();
    expect((await pending)?.audit.tags).toEqual(['late']);
    await draining;
    expect(agent.stopped).toBe(true);
  });

  it("refuses errorPolicy 'allow' up front", () => {
    expect(
      () =>
        new ReverseAgent({
          endpoint: '/tmp/x.sock',
          agentId: 'a3',
          handler: stampHandler('a3'),
          errorPolicy: 'allow' as never,
        }),
    ).toThrow(/errorPolicy must be/);
  });
});
