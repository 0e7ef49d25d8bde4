/** UdsAgentServerV2 as an AgentServer (listen -> endpoints, drain) and its push API counts. */
import { type AgentServer, allow, type HealthReport } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClientV2Uds, UdsAgentServerV2 } from '../src/index.js';
import { captureLogger, handler, requestHeaders, tempSocket, until } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('UdsAgentServerV2 as AgentServer', () => {
  it('listen() resolves to unix:<path>; endpoints empty before listen and after close', async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    const server: AgentServer = new UdsAgentServerV2(tmp.path, handler(), {
      logger: captureLogger(),
    });
    expect(server.endpoints).toEqual([]);
    expect(await server.listen()).toEqual([`unix:${tmp.path}`]);
    expect(server.endpoints).toEqual([`unix:${tmp.path}`]);
    await server.close();
    expect(server.endpoints).toEqual([]);
  });

  it('drain() tells the proxy draining, lets the running request answer, then closes', async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    let release!: () => void;
    let started = false;
    const gate = new Promise<void>((r) => (release = r));
    const server = new UdsAgentServerV2(
      tmp.path,
      handler({
        onRequestHeaders: async () => {
          started = true;
          await gate;
          return allow({ tags: ['late'] });
        },
      }),
      { logger: captureLogger() },
    );
    await server.listen();
    cleanups.push(() => server.close({ drainTimeoutMs: 0 }));
    const client = await AgentClientV2Uds.connect('t', tmp.path, { logger: captureLogger() });
    cleanups.push(() => client.close());
    const health: HealthReport[] = [];
    client.on('health', (h) => health.push(h));
    const pending = client.sendRequestHeaders(requestHeaders('d-1'), { timeoutMs: 10_000 });
    await until(() => started);
    const draining = server.drain(10_000);
    await until(() => health.some((h) => h.state === 'draining'));
    release();
    expect((await pending).audit.tags).toEqual(['late']);
    await draining;
    expect(server.listening).toBe(false);
  });

  it('push calls return how many proxies were told; pause is remembered for later proxies', async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    const server = new UdsAgentServerV2(tmp.path, handler(), { logger: captureLogger() });
    await server.listen();
    cleanups.push(() => server.close({ drainTimeoutMs: 0 }));
    expect(server.pause()).toBe(0);
    expect(server.paused).toBe(true);
    const client = await AgentClientV2Uds.connect('t', tmp.path, { logger: captureLogger() });
    cleanups.push(() => client.close());
    await until(() => client.paused);
    expect(server.resume()).toBe(1);
    await until(() => !client.paused);
    const seen: string[] = [];
    client.on('configUpdate', (r) => seen.push(r.request_id));
    expect(server.requestConfigUpdate({ update_type: { type: 'request_reload' } })).toBe(1);
    await until(() => seen.length === 1);
    expect(seen[0]).toMatch(/^cfg-/);
  });
});
