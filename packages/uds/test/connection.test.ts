import { join } from 'node:path';
import { AgentProtocolError, allow, MessageType } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClientV2Uds, UdsAgentServerV2 } from '../src/index.js';
import {
  captureLogger,
  golden,
  goldenPayload,
  handler,
  rawFrame,
  rawServer,
  requestHeaders,
  tempSocket,
  until,
} from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fakeAgent(options: Parameters<typeof AgentClientV2Uds.connect>[2] = {}) {
  const tmp = tempSocket();
  cleanups.push(tmp.cleanup);
  const fake = await rawServer(tmp.path);
  cleanups.push(fake.close);
  const clientP = AgentClientV2Uds.connect('fake', tmp.path, {
    logger: captureLogger(),
    ...options,
  });
  const peer = await fake.next();
  await peer.frame(0);
  return { peer, clientP, path: tmp.path };
}

describe('connection loss', () => {
  it('rejects every pending call with CONNECTION_CLOSED as soon as the agent goes away', {
    timeout: 5000,
  }, async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    let started = 0;
    const server = new UdsAgentServerV2(
      tmp.path,
      handler({
        onRequestHeaders: (_e, ctx) =>
          new Promise((resolve) => {
            started++;
            ctx.signal.addEventListener('abort', () => resolve(allow()));
          }),
      }),
      { logger: captureLogger() },
    );
    await server.listen();
    cleanups.push(() => server.close({ drainTimeoutMs: 10 }));
    const client = await AgentClientV2Uds.connect('t', tmp.path, {
      logger: captureLogger(),
      timeoutMs: 60_000,
    });
    cleanups.push(() => client.close());
    const closed = new Promise<AgentProtocolError | undefined>((r) => client.once('close', r));

    const calls = ['k1', 'k2', 'k3'].map((id) => client.sendRequestHeaders(requestHeaders(id)));
    await until(() => started === 3);
    for (const c of server.connections) c.destroy();

    for (const call of calls)
      await expect(call).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
    const err = await closed;
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect(client.isHealthy()).toBe(false);
    expect(client.inFlight).toBe(0);
    await expect(client.sendRequestHeaders(requestHeaders('after'))).rejects.toMatchObject({
      code: 'CONNECTION_CLOSED',
    });
    await expect(client.ping()).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  });

  it('an unknown type byte from the agent ends the connection and fails pending calls', {
    timeout: 5000,
  }, async () => {
    const { peer, clientP } = await fakeAgent({ timeoutMs: 60_000 });
    peer.write(golden('V2'));
    const client = await clientP;
    cleanups.push(() => client.close());
    const closed = new Promise<AgentProtocolError | undefined>((r) => client.once('close', r));
    const call = client.sendRequestHeaders(requestHeaders('req-1'));
    await peer.frame(1);
    peer.write(rawFrame(0x21, '{}'));
    await expect(call).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
    expect((await closed)?.message).toMatch(/UNKNOWN_TYPE/);
  });

  it('a reply that fails validation rejects its call with INVALID_MESSAGE, others unaffected', async () => {
    const { peer, clientP } = await fakeAgent({ timeoutMs: 60_000 });
    peer.write(golden('V2'));
    const client = await clientP;
    cleanups.push(() => client.close());
    const bad = client.sendRequestHeaders(requestHeaders('r-bad'));
    const good = client.sendRequestHeaders(requestHeaders('req-1'));
    await peer.frame(2);
    // `version` missing: invalid for Rust and picket alike, but the id can be salvaged.
    peer.write(
      rawFrame(
        MessageType.AgentResponse,
        JSON.stringify({ decision: 'allow', audit: { custom: { correlation_id: 'r-bad' } } }),
      ),
    );
    await expect(bad).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    peer.write(golden('V6a'));
    expect((await good).decision).toBe('allow');
    expect(client.stats.invalidReplies).toBe(1);
  });

  it('health, metrics and config-update frames from a raw agent are emitted', async () => {
    const { peer, clientP } = await fakeAgent();
    peer.write(golden('V2'));
    const client = await clientP;
    cleanups.push(() => client.close());
    const health: unknown[] = [];
    client.on('health', (h) => health.push(h));
    peer.write(rawFrame(MessageType.HealthStatus, '{"state":4}'));
    await until(() => health.length === 1);
    expect(health[0]).toEqual({ state: 'unhealthy' });
    expect(client.isHealthy()).toBe(false);
    peer.write(rawFrame(MessageType.HealthStatus, '{"state":1}'));
    await until(() => health.length === 2);
    expect(client.isHealthy()).toBe(true);
  });
});

describe('connect and handshake failures', () => {
  it('CONNECTION_FAILED when nothing listens', async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    await expect(AgentClientV2Uds.connect('x', join(tmp.dir, 'none.sock'))).rejects.toMatchObject({
      code: 'CONNECTION_FAILED',
    });
  });

  it('TIMEOUT when the agent never answers the handshake', { timeout: 5000 }, async () => {
    const { clientP } = await fakeAgent({ handshakeTimeoutMs: 100 });
    await expect(clientP).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

  it('HANDSHAKE_FAILED with the agent text on success:false', async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    const server = new UdsAgentServerV2(
      tmp.path,
      handler({ onHandshake: () => ({ accept: false, error: 'proxy not allowed here' }) }),
      { logger: captureLogger() },
    );
    await server.listen();
    cleanups.push(() => server.close({ drainTimeoutMs: 10 }));
    const err = await AgentClientV2Uds.connect('x', tmp.path, { logger: captureLogger() }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'HANDSHAKE_FAILED' });
    expect((err as Error).message).toContain('proxy not allowed here');
  });

  it('HANDSHAKE_FAILED when the first reply is not 0x02', async () => {
    const { peer, clientP } = await fakeAgent();
    peer.write(golden('V5'));
    await expect(clientP).rejects.toMatchObject({
      code: 'HANDSHAKE_FAILED',
      message: expect.stringMatching(/0x02/),
    });
  });

  it('HANDSHAKE_FAILED when the agent picks an encoding that was not offered', async () => {
    const { peer, clientP } = await fakeAgent({ encodings: ['json'] });
    const text = goldenPayload('V2')
      .toString('utf8')
      .replace('"encoding":"json"', '"encoding":"cbor"');
    peer.write(rawFrame(MessageType.HandshakeResponse, text));
    await expect(clientP).rejects.toMatchObject({
      code: 'HANDSHAKE_FAILED',
      message: expect.stringMatching(/cbor/),
    });
  });

  it('HANDSHAKE_FAILED on an incomplete capabilities object', async () => {
    const { peer, clientP } = await fakeAgent();
    peer.write(
      rawFrame(
        MessageType.HandshakeResponse,
        JSON.stringify({
          protocol_version: 2,
          capabilities: { agent_id: 'a', features: {} },
          success: true,
          error: null,
        }),
      ),
    );
    await expect(clientP).rejects.toMatchObject({ code: 'HANDSHAKE_FAILED' });
  });
});
