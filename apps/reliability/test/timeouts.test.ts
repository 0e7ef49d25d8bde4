/**
 * Slow peers are dropped: a handshake or registration that trickles in byte by byte is cut
 * at its deadline (progress does not extend it), on both sides of UDS and reverse
 * connections. Idle peers (nothing sent at all) are tested by the owning packages:
 * packages/uds/test/bad-input.test.ts ("never handshakes", "hung onHandshake"),
 * packages/uds/test/connection.test.ts ("agent never answers the handshake"),
 * packages/reverse/test/listener.test.ts ("an idle peer"), packages/grpc/test/failures.test.ts.
 */
import * as net from 'node:net';
import { join } from 'node:path';
import { EchoAgent } from '@picket/agents';
import { encodeHandshakeResponse, encodeRegistrationRequest } from '@picket/codec';
import { encodeFrame } from '@picket/framing';
import {
  AgentProtocolError,
  createCapabilities,
  MessageType,
  PROTOCOL_VERSION,
  silentLogger,
} from '@picket/protocol';
import {
  connectReverse,
  type RegistrationRejection,
  ReverseConnectionListener,
} from '@picket/reverse';
import { AgentClientV2Uds, UdsAgentServerV2 } from '@picket/uds';
import { afterEach, describe, expect, it } from 'vitest';
import { captureLogger, renderEntry } from '../src/lib/capture-logger.js';
import { RawConn } from '../src/lib/raw-conn.js';
import { onCleanup, runCleanups, sleep, tempDir, until } from './helpers.js';

afterEach(runCleanups);

const HANDSHAKE = Buffer.from(
  encodeFrame(
    MessageType.HandshakeRequest,
    Buffer.from(
      '{"supported_versions":[2],"proxy_id":"zentinel-proxy","proxy_version":"0.6.20","config":null,"supported_encodings":["json"]}',
    ),
  ),
);

/**
 * Writes `bytes` one at a time, `gapMs` apart, until done or the socket closes; returns
 * how many bytes were written.
 */
async function drip(socket: net.Socket, bytes: Buffer, gapMs: number): Promise<number> {
  let i = 0;
  for (; i < bytes.length && !socket.destroyed && socket.writable; i++) {
    socket.write(bytes.subarray(i, i + 1));
    await sleep(gapMs);
  }
  return i;
}

describe('UDS', () => {
  it('the agent drops a proxy that trickles its handshake in slower than handshakeTimeoutMs', async () => {
    const path = join(tempDir(), 'agent.sock');
    const log = captureLogger();
    const server = new UdsAgentServerV2(path, new EchoAgent(), {
      logger: log,
      handshakeTimeoutMs: 300,
    });
    await server.listen();
    onCleanup(() => server.close({ drainTimeoutMs: 0 }));
    const peer = await RawConn.connect(path);
    onCleanup(() => peer.destroy());
    // 129 bytes, 25 ms apart: ~3 s if the server let progress extend the deadline
    const written = await drip(peer.socket, HANDSHAKE, 25);
    await peer.whenClosed(5000, 'the server closing the connection');
    expect(peer.peerClosed).toBe(true);
    expect(written).toBeLessThan(HANDSHAKE.length);
    expect(peer.frames).toHaveLength(0);
    expect(log.recent().map(renderEntry).join('\n')).toMatch(/no handshake request in time/);
    expect(server.connections.size).toBe(0);
  });

  it('the proxy gives up on an agent that trickles its handshake response', async () => {
    const path = join(tempDir(), 'slow-agent.sock');
    let dripped = 0;
    let total = 0;
    const fake = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        const response = Buffer.from(
          encodeFrame(
            MessageType.HandshakeResponse,
            encodeHandshakeResponse({
              protocol_version: PROTOCOL_VERSION,
              capabilities: createCapabilities({ agentId: 'slow' }),
              success: true,
              error: null,
              encoding: 'json',
            }),
          ),
        );
        total = response.length;
        void drip(socket, response, 25).then((n) => {
          dripped = n;
        });
      });
    });
    await new Promise<void>((r) => fake.listen(path, r));
    onCleanup(() => new Promise<void>((r) => fake.close(() => r())));
    onCleanup(() => fake.getConnections(() => undefined));
    const err = await AgentClientV2Uds.connect('slow', path, {
      handshakeTimeoutMs: 300,
      logger: silentLogger,
    }).then(
      (c) => {
        onCleanup(() => c.close());
        throw new Error('connect should have failed');
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect((err as AgentProtocolError).code).toBe('TIMEOUT');
    await until(() => dripped > 0, 10_000, 'the drip to stop');
    expect(dripped).toBeLessThan(total);
  });
});

describe('reverse connections', () => {
  it('the listener drops an agent that trickles its registration in (the deadline covers the whole frame)', async () => {
    const path = join(tempDir(), 'reverse.sock');
    const listener = await ReverseConnectionListener.bindUds(path, {
      logger: silentLogger,
      handshakeTimeout: 300,
    });
    onCleanup(() => listener.close());
    const rejected: RegistrationRejection[] = [];
    listener.on('rejected', (r) => rejected.push(r));
    const registration = Buffer.from(
      encodeFrame(
        MessageType.HandshakeRequest,
        encodeRegistrationRequest({
          protocol_version: PROTOCOL_VERSION,
          agent_id: 'slow',
          capabilities: createCapabilities({ agentId: 'slow' }),
          auth_token: null,
          metadata: null,
        }),
      ),
    );
    const peer = await RawConn.connect(path);
    onCleanup(() => peer.destroy());
    const written = await drip(peer.socket, registration, 10);
    await peer.whenClosed(5000, 'the listener dropping the socket');
    expect(written).toBeLessThan(registration.length);
    expect(peer.frames).toHaveLength(0);
    await until(() => rejected.length === 1, 5000, 'the rejection');
    expect(rejected[0]).toMatchObject({ code: 'TIMEOUT', responded: false });
    expect(listener.connectionCount).toBe(0);
    expect(listener.pendingCount).toBe(0);
  });

  it('an agent gives up on a proxy that accepts but never answers the registration', async () => {
    const path = join(tempDir(), 'mute-proxy.sock');
    const accepted: net.Socket[] = [];
    const mute = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.resume(); // reads the registration, never answers
      accepted.push(socket);
    });
    await new Promise<void>((r) => mute.listen(path, r));
    onCleanup(() => {
      for (const s of accepted) s.destroy();
      return new Promise<void>((r) => mute.close(() => r()));
    });
    const agent = connectReverse({
      endpoint: `unix:${path}`,
      agentId: 'waf',
      handler: new EchoAgent({ agentId: 'waf' }),
      registrationTimeoutMs: 300,
      reconnect: { initialDelayMs: 50, maxDelayMs: 100 },
      logger: silentLogger,
    });
    onCleanup(() => agent.stop());
    const failures: AgentProtocolError[] = [];
    agent.on('registrationFailed', (e) => failures.push(e));
    await until(() => failures.length >= 2, 10_000, 'two registration timeouts');
    expect(failures[0]?.code).toBe('TIMEOUT');
    expect(agent.connected).toBe(0);
    // every timed-out attempt closed its socket
    await until(
      () => accepted.filter((s) => !s.destroyed && !s.readableEnded).length <= 1,
      5000,
      'old sockets closing',
    );
  });
});
