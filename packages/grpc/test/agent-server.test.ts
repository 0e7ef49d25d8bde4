/** GrpcAgentServerV2 as an AgentServer (listen -> endpoints, drain) and its push API. */
import { type AgentServer, allow, createCapabilities, silentLogger } from '@picket/protocol';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { AgentClientV2 } from '../src/client.js';
import { GrpcAgentServerV2 } from '../src/server.js';
import { bareRequest } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const caps = () => createCapabilities({ agentId: 'srv', name: 'srv', version: '1' });

describe('GrpcAgentServerV2 as AgentServer', () => {
  test('listen() binds options.address and resolves to grpc://host:<real port>', async () => {
    const server = new GrpcAgentServerV2(
      { capabilities: caps },
      { address: '127.0.0.1:0', logger: silentLogger },
    );
    cleanups.push(() => server.forceShutdown());
    const role: AgentServer = server;
    expect(role.endpoints).toEqual([]);
    const [endpoint] = await role.listen();
    expect(endpoint).toMatch(/^grpc:\/\/127\.0\.0\.1:[1-9]\d*$/);
    expect(role.endpoints).toEqual([endpoint]);
    const t = await AgentClientV2.connect('srv', (endpoint as string).slice(7));
    cleanups.push(() => t.close());
    expect((await t.sendRequestHeaders(bareRequest('a', ''))).decision).toBe('allow');
    await role.close();
    expect(role.endpoints).toEqual([]);
  });

  test('listen() without any address is refused, naming the option', async () => {
    const server = new GrpcAgentServerV2({ capabilities: caps }, { logger: silentLogger });
    cleanups.push(() => server.forceShutdown());
    await expect(server.listen()).rejects.toThrow(/options\.address/);
  });

  test('a unix: address is grpc+unix:<path>', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(`${tmpdir()}/picket-grpc-`);
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const server = new GrpcAgentServerV2(
      { capabilities: caps },
      { address: `unix:${dir}/a.sock`, logger: silentLogger },
    );
    cleanups.push(() => server.forceShutdown());
    expect(await server.listen()).toEqual([`grpc+unix:${dir}/a.sock`]);
  });

  test('drain() announces draining, lets the running event answer, then closes', async () => {
    let release!: () => void;
    let started = false;
    const gate = new Promise<void>((r) => (release = r));
    const server = new GrpcAgentServerV2(
      {
        capabilities: caps,
        onRequestHeaders: async () => {
          started = true;
          await gate;
          return allow({ tags: ['late'] });
        },
      },
      { logger: silentLogger },
    );
    cleanups.push(() => server.forceShutdown());
    const { address } = await server.listen('127.0.0.1:0');
    const t = await AgentClientV2.connect('srv', address);
    cleanups.push(() => t.close());
    const states: string[] = [];
    t.on('health', (h) => states.push(h.state));
    const pending = t.sendRequestHeaders(bareRequest('d', ''));
    await vi.waitFor(() => expect(started).toBe(true));
    const draining = server.drain(10_000);
    await vi.waitFor(() => expect(states).toContain('draining'));
    release();
    expect((await pending).audit.tags).toEqual(['late']);
    await draining;
    expect(server.endpoints).toEqual([]);
  });

  test('push API returns how many proxies were told; pause is remembered', async () => {
    const server = new GrpcAgentServerV2({ capabilities: caps }, { logger: silentLogger });
    cleanups.push(() => server.forceShutdown());
    const { address } = await server.listen('127.0.0.1:0');
    expect(server.pause()).toBe(0);
    expect(server.paused).toBe(true);
    const t = await AgentClientV2.connect('srv', address);
    cleanups.push(() => t.close());
    await vi.waitFor(() => expect(t.paused).toBe(true));
    expect(server.resume()).toBe(1);
    await vi.waitFor(() => expect(t.paused).toBe(false));
    expect(server.reportHealth('degraded', 'slow')).toBe(1);
    expect(
      server.reportMetrics({
        agent_id: '',
        timestamp_ms: 1,
        interval_ms: 1,
        counters: [],
        gauges: [],
        histograms: [],
      }),
    ).toBe(1);
    const seen: string[] = [];
    t.on('configUpdate', (r) => seen.push(r.request_id));
    expect(server.requestConfigUpdate({ update_type: { type: 'request_reload' } })).toBe(1);
    await vi.waitFor(() => expect(seen).toHaveLength(1));
    expect(seen[0]).toMatch(/^cfg-/);
  });
});
