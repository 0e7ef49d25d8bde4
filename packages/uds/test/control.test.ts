import { spawn } from 'node:child_process';
import { promises as fsp, writeFileSync } from 'node:fs';
import type { ConfigUpdateRequest, HealthReport, MetricsReport } from '@picket/protocol';
import { allow } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClientV2Uds, UdsAgentServerV2 } from '../src/index.js';
import { captureLogger, handler, requestHeaders, tempSocket, until } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const tmp = tempSocket();
  cleanups.push(tmp.cleanup);
  const calls: string[] = [];
  const server = new UdsAgentServerV2(
    tmp.path,
    handler({
      onRequestHeaders: (_e, ctx) => {
        calls.push(ctx.correlationId);
        return allow();
      },
    }),
    { logger: captureLogger() },
  );
  await server.listen();
  cleanups.push(() => server.close({ drainTimeoutMs: 100 }));
  const client = await AgentClientV2Uds.connect('t', tmp.path, {
    logger: captureLogger(),
    timeoutMs: 10_000,
  });
  cleanups.push(() => client.close());
  await until(() => server.connections.size === 1);
  const actions: string[] = [];
  client.on('flowControl', (a) => actions.push(a));
  return { server, client, calls, actions, path: tmp.path };
}

describe('flow control', () => {
  // fail_open / wait are the pool's policy (packages/pool); the transport only refuses
  it('a paused agent gets no events: calls reject FLOW_CONTROL_PAUSED at once until resume', async () => {
    const { server, client, calls, actions } = await setup();
    expect(server.pause()).toBe(1);
    await until(() => client.paused);
    expect(actions).toEqual(['pause']);
    expect(client.isHealthy()).toBe(false);
    await expect(client.sendRequestHeaders(requestHeaders('f1'))).rejects.toMatchObject({
      code: 'FLOW_CONTROL_PAUSED',
    });
    expect(client.inFlight).toBe(0);
    expect(client.stats.requests).toBe(0);
    server.resume();
    await until(() => !client.paused);
    await client.sendRequestHeaders(requestHeaders('f2'));
    expect(calls).toEqual(['f2']);
    expect(actions).toEqual(['pause', 'resume']);
  });

  it('a proxy connecting while the agent is paused is told so right after the handshake', async () => {
    const { server, path } = await setup();
    server.pause();
    const late = await AgentClientV2Uds.connect('t2', path, { logger: captureLogger() });
    cleanups.push(() => late.close());
    await until(() => late.paused);
  });
});

describe('health, metrics, config updates', () => {
  it('health reports are emitted and reflected in isHealthy()', async () => {
    const { server, client } = await setup();
    const seen: HealthReport[] = [];
    client.on('health', (h) => seen.push(h));
    server.reportHealth('degraded', 'slow disk');
    await until(() => seen.length === 1);
    expect(seen[0]).toEqual({ state: 'degraded', message: 'slow disk' });
    expect(client.isHealthy()).toBe(true);
    server.reportHealth('draining');
    await until(() => seen.length === 2);
    expect(client.isHealthy()).toBe(false);
    server.reportHealth('unhealthy');
    await until(() => seen.length === 3);
    expect(client.health?.state).toBe('unhealthy');
    expect(client.isHealthy()).toBe(false);
    server.reportHealth('healthy');
    await until(() => seen.length === 4);
    expect(client.isHealthy()).toBe(true);
  });

  it('metrics and config update requests are emitted', async () => {
    const { server, client } = await setup();
    const metrics: MetricsReport[] = [];
    const updates: ConfigUpdateRequest[] = [];
    client.on('metrics', (m) => metrics.push(m));
    client.on('configUpdate', (u) => updates.push(u));
    const report: MetricsReport = {
      agent_id: 'test-agent',
      timestamp_ms: 1767225600000,
      interval_ms: 10_000,
      counters: [{ name: 'agent_requests_total', labels: { route: 'a' }, value: 42 }],
      gauges: [{ name: 'agent_in_flight_requests', labels: {}, value: 1.5 }],
      histograms: [],
    };
    server.reportMetrics(report);
    const update: ConfigUpdateRequest = {
      update_type: { type: 'request_reload' },
      request_id: 'u-1',
      timestamp_ms: 1767225600000,
    };
    server.requestConfigUpdate(update);
    await until(() => metrics.length === 1 && updates.length === 1);
    expect(metrics[0]).toMatchObject({
      agent_id: 'test-agent',
      counters: [{ name: 'agent_requests_total', value: 42 }],
    });
    expect(metrics[0]?.gauges[0]?.value).toBe(1.5);
    expect(updates[0]).toEqual(update);
  });
});

describe('socket file', () => {
  it('replaces a stale socket, sets mode 0660, removes the file on close', async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    // a stale socket file, as a crashed agent leaves it: a child binds it and is SIGKILLed
    const child = spawn(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(tmp.path)}, () => console.log('up'))`,
    ]);
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    expect((await fsp.lstat(tmp.path)).isSocket()).toBe(true);

    const logger = captureLogger();
    const server = new UdsAgentServerV2(tmp.path, handler(), { logger });
    await server.listen();
    expect(logger.text()).toMatch(/replacing stale socket file/);
    const st = await fsp.stat(tmp.path);
    expect(st.mode & 0o777).toBe(0o660);
    const client = await AgentClientV2Uds.connect('t', tmp.path, { logger: captureLogger() });
    await client.ping();
    await client.close();
    await server.close();
    await expect(fsp.lstat(tmp.path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses to delete a path that is not a socket', async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    writeFileSync(tmp.path, 'precious');
    const server = new UdsAgentServerV2(tmp.path, handler(), { logger: captureLogger() });
    await expect(server.listen()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await fsp.readFile(tmp.path)).toString()).toBe('precious');
  });

  it('refuses to take over a socket another server is listening on', async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    const first = new UdsAgentServerV2(tmp.path, handler(), { logger: captureLogger() });
    await first.listen();
    cleanups.push(() => first.close({ drainTimeoutMs: 10 }));
    const second = new UdsAgentServerV2(tmp.path, handler(), { logger: captureLogger() });
    await expect(second.listen()).rejects.toMatchObject({ code: 'CONNECTION_FAILED' });
  });

  it('honours a custom mode', async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    const server = new UdsAgentServerV2(tmp.path, handler(), {
      logger: captureLogger(),
      mode: 0o600,
    });
    await server.listen();
    cleanups.push(() => server.close({ drainTimeoutMs: 10 }));
    expect((await fsp.stat(tmp.path)).mode & 0o777).toBe(0o600);
  });
});

describe('graceful close', () => {
  it('lets in-flight requests finish within the drain timeout, then closes', {
    timeout: 5000,
  }, async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    let release: () => void = () => {};
    let started = false;
    const server = new UdsAgentServerV2(
      tmp.path,
      handler({
        onRequestHeaders: async () => {
          started = true;
          await new Promise<void>((r) => {
            release = r;
          });
          return allow({ tags: ['finished'] });
        },
      }),
      { logger: captureLogger() },
    );
    await server.listen();
    const client = await AgentClientV2Uds.connect('t', tmp.path, {
      logger: captureLogger(),
      timeoutMs: 60_000,
    });
    cleanups.push(() => client.close());
    const health: HealthReport[] = [];
    client.on('health', (h) => health.push(h));
    const call = client.sendRequestHeaders(requestHeaders('d1'));
    await until(() => started);
    const closing = server.close({ drainTimeoutMs: 60_000 });
    await until(() => health.length === 1);
    expect(health[0]?.state).toBe('draining');
    // the listener stops accepting at once
    await expect(
      AgentClientV2Uds.connect('t2', tmp.path, { logger: captureLogger() }),
    ).rejects.toBeDefined();
    release();
    expect((await call).audit.tags).toEqual(['finished']);
    await closing;
    await until(() => client.closed);
  });

  it('closes connections with requests still running when the drain timeout passes', {
    timeout: 5000,
  }, async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    let started = false;
    const server = new UdsAgentServerV2(
      tmp.path,
      handler({
        onRequestHeaders: () => {
          started = true;
          return new Promise(() => {});
        },
      }),
      { logger: captureLogger() },
    );
    await server.listen();
    const client = await AgentClientV2Uds.connect('t', tmp.path, {
      logger: captureLogger(),
      timeoutMs: 60_000,
    });
    cleanups.push(() => client.close());
    const call = client.sendRequestHeaders(requestHeaders('d2'));
    await until(() => started);
    const rejected = expect(call).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
    await server.close({ drainTimeoutMs: 50 });
    await rejected;
  });
});
