import { readFileSync } from 'node:fs';
import { MessageType } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClientV2Uds, PICKET_UDS_VERSION, UdsAgentServerV2 } from '../src/index.js';
import { PICKET_PROXY_ID } from '../src/internal.js';
import {
  captureLogger,
  golden,
  goldenPayload,
  handler,
  RawPeer,
  rawFrame,
  rawServer,
  requestHeaders,
  tempSocket,
  until,
} from './helpers.js';

const EPOCH_MS = 1767225600000;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function frameBytes(f: { type: number; payload: Uint8Array }): Buffer {
  return rawFrame(f.type, f.payload);
}

/** A fake agent that answers the handshake with golden V2 and returns the raw peer. */
async function fakeAgent() {
  const tmp = tempSocket();
  cleanups.push(tmp.cleanup);
  const fake = await rawServer(tmp.path);
  cleanups.push(fake.close);
  const clientP = AgentClientV2Uds.connect('echo', tmp.path, {
    proxyId: 'zentinel-proxy',
    proxyVersion: '0.6.20',
    encodings: ['json'],
    clock: () => EPOCH_MS,
    logger: captureLogger(),
  });
  const peer = await fake.next();
  const hello = await peer.frame(0);
  peer.write(golden('V2'));
  const client = await clientP;
  cleanups.push(() => client.close());
  return { client, peer, hello };
}

describe('golden bytes: picket agent server', () => {
  it('answers golden V1 with a complete 0x02, V3 with a routed 0x20, and V7 with V7b', async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    const server = new UdsAgentServerV2(tmp.path, handler({}, 'echo-agent'), {
      logger: captureLogger(),
    });
    await server.listen();
    cleanups.push(() => server.close({ drainTimeoutMs: 100 }));

    const proxy = await RawPeer.connect(tmp.path);
    cleanups.push(() => proxy.destroy());
    proxy.write(golden('V1'));
    const reply = await proxy.frame(0);
    expect(reply.type).toBe(MessageType.HandshakeResponse);
    const text = Buffer.from(reply.payload).toString('utf8');
    const json = JSON.parse(text);
    // Declaration order of UdsHandshakeResponse, then picket's ignorable extension.
    expect(Object.keys(json)).toEqual([
      'protocol_version',
      'capabilities',
      'success',
      'error',
      'encoding',
      'picket',
    ]);
    expect(json).toMatchObject({
      protocol_version: 2,
      success: true,
      error: null,
      encoding: 'json',
    });
    expect(json.picket).toEqual({ version: 1, binary_bodies: true });
    expect(Object.keys(json.capabilities)).toEqual([
      'agent_id',
      'name',
      'version',
      'supported_events',
      'features',
      'limits',
    ]);
    expect(Object.keys(json.capabilities.features).sort()).toEqual(
      [
        'streaming_body',
        'websocket',
        'guardrails',
        'config_push',
        'metrics_export',
        'concurrent_requests',
        'cancellation',
        'flow_control',
        'health_reporting',
      ].sort(),
    );
    expect(Object.keys(json.capabilities.limits)).toEqual(
      expect.arrayContaining(['max_body_size', 'max_concurrency', 'preferred_chunk_size']),
    );
    expect(json.capabilities.agent_id).toBe('echo-agent');

    proxy.write(golden('V3'));
    const answer = await proxy.frame(1);
    expect(answer.type).toBe(MessageType.AgentResponse);
    const resp = JSON.parse(Buffer.from(answer.payload).toString('utf8'));
    expect(resp.version).toBe(2);
    expect(resp.decision).toBe('allow');
    expect(resp.audit.custom).toEqual({ correlation_id: 'req-1' });

    proxy.write(golden('V7'));
    const pong = await proxy.frame(2);
    expect(frameBytes(pong)).toEqual(golden('V7b'));
  });
});

describe('golden bytes: picket proxy client', () => {
  it('sends exactly golden V1 first when configured like the Rust proxy', async () => {
    const { hello } = await fakeAgent();
    expect(frameBytes(hello)).toEqual(golden('V1'));
  });

  it('identifies as picket by default', async () => {
    const tmp = tempSocket();
    cleanups.push(tmp.cleanup);
    const fake = await rawServer(tmp.path);
    cleanups.push(fake.close);
    const clientP = AgentClientV2Uds.connect('echo', tmp.path, { logger: captureLogger() });
    const peer = await fake.next();
    const hello = JSON.parse(Buffer.from((await peer.frame(0)).payload).toString('utf8'));
    expect(hello.proxy_id).toBe(PICKET_PROXY_ID);
    expect(hello.proxy_version).toBe(PICKET_UDS_VERSION);
    expect(hello.supported_versions).toEqual([2]);
    expect(hello.config).toBeNull();
    peer.write(golden('V2'));
    const client = await clientP;
    cleanups.push(() => client.close());
    expect(client.capabilities.agent_id).toBe('echo-agent');
  });

  it('accepts golden V2, sends V3 byte for byte and resolves golden V5 and V6a replies', async () => {
    const { client, peer } = await fakeAgent();
    expect(client.encoding).toBe('json');
    expect(client.capabilities.name).toBe('Echo Agent');

    const blocked = client.sendRequestHeaders(requestHeaders('req-1'));
    const event = await peer.frame(1);
    expect(frameBytes(event)).toEqual(golden('V3'));
    peer.write(golden('V5'));
    const r1 = await blocked;
    expect(r1.decision).toEqual({ block: { status: 403, body: 'Forbidden path', headers: null } });
    expect(r1.audit.reason_codes).toEqual(['PATH_BLOCKED']);

    const allowed = client.sendRequestHeaders(requestHeaders('req-1'));
    await peer.frame(2);
    peer.write(golden('V6a'));
    const r2 = await allowed;
    expect(r2.decision).toBe('allow');
    expect(r2.request_headers).toEqual([{ set: { name: 'X-Echo-Agent', value: 'req-1' } }]);
    expect(client.inFlight).toBe(0);
  });

  it('pings with golden V7 and resolves on the V7b echo', async () => {
    const { client, peer } = await fakeAgent();
    const rtt = client.ping();
    const ping = await peer.frame(1);
    expect(frameBytes(ping)).toEqual(golden('V7'));
    peer.write(golden('V7b'));
    expect(await rtt).toBeGreaterThanOrEqual(0);
    // the next ping carries sequence 1
    const second = client.ping();
    const ping2 = JSON.parse(Buffer.from((await peer.frame(2)).payload).toString('utf8'));
    expect(ping2).toEqual({ sequence: 1, timestamp_ms: EPOCH_MS });
    peer.write(rawFrame(MessageType.Pong, (await peer.frame(2)).payload));
    await second;
  });

  it('cancels with golden V8 (explicit cancel and on timeout)', async () => {
    const { client, peer } = await fakeAgent();
    const call = client.sendRequestHeaders(requestHeaders('req-1'));
    await peer.frame(1);
    await client.cancel('req-1', 'timeout');
    await expect(call).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(frameBytes(await peer.frame(2))).toEqual(golden('V8'));

    const timed = client.sendRequestHeaders(requestHeaders('req-1'), { timeoutMs: 30 });
    await expect(timed).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect((await peer.frame(3)).type).toBe(MessageType.RequestHeaders);
    expect(frameBytes(await peer.frame(4))).toEqual(golden('V8'));
    // the late reply is dropped, not misrouted
    peer.write(golden('V5'));
    await until(() => client.stats.droppedReplies === 1, 3000, 'the late reply to be dropped');
    expect(goldenPayload('V8').toString()).toContain('"reason":1');
  });
});

describe('package metadata', () => {
  it('PICKET_UDS_VERSION matches package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(PICKET_UDS_VERSION).toBe(pkg.version);
  });
});
