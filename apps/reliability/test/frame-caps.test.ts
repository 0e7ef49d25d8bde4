/**
 * Frame and message size caps, in the directions the owning packages do not test yet:
 * a UDS agent announcing an oversize frame to the proxy, a configured (smaller) UDS cap
 * on both ends, an oversize frame on a registered reverse connection, and gRPC messages
 * over the 4 MiB limit in both directions from peers that do not enforce it themselves.
 * Already tested elsewhere: an oversize length towards a UDS agent
 * (packages/uds/test/bad-input.test.ts), v1 both ways (packages/v1/test/server.test.ts,
 * client.test.ts), an oversize registration (packages/reverse/test/listener.test.ts), a
 * picket gRPC client refusing to send > 4 MiB and an agent answer over the limit
 * (packages/grpc/test/compliance.test.ts).
 */

import * as net from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { EchoAgent } from '@picket/agents';
import { encodeHandshakeResponse } from '@picket/codec';
import { encodeFrame } from '@picket/framing';
import { AgentClientV2, GrpcAgentServerV2, METHOD_PATHS } from '@picket/grpc';
import {
  agentResponseToProto,
  capabilitiesToProto,
  encodeAgentToProxy,
  encodeProxyToAgent,
  handshakeRequestToProto,
} from '@picket/grpc/internal';
import {
  AgentProtocolError,
  allow,
  createCapabilities,
  MessageType,
  PROTOCOL_VERSION,
  silentLogger,
} from '@picket/protocol';
import { connectReverse, ReverseConnectionListener } from '@picket/reverse';
import { AgentClientV2Uds, UdsAgentServerV2 } from '@picket/uds';
import { afterEach, describe, expect, it } from 'vitest';
import { goodEvent } from '../src/fuzz/target.js';
import { captureLogger, renderEntry } from '../src/lib/capture-logger.js';
import { RawConn } from '../src/lib/raw-conn.js';
import { onCleanup, runCleanups, tempDir, until } from './helpers.js';

afterEach(runCleanups);

const MiB = 1024 * 1024;
/** A v2 header announcing 16 MiB + 1 (type byte included): one byte over the limit. */
const OVERSIZE_HEADER = Buffer.from([0x01, 0x00, 0x00, 0x01, MessageType.AgentResponse]);

async function settle<T>(p: Promise<T>): Promise<T | AgentProtocolError> {
  return p.catch((e: unknown) => {
    expect(e).toBeInstanceOf(AgentProtocolError);
    return e as AgentProtocolError;
  });
}

describe('UDS', () => {
  it('the proxy closes a connection whose agent announces a frame over 16 MiB, failing what is pending', async () => {
    const path = join(tempDir(), 'big-agent.sock');
    const fake = net.createServer((socket) => {
      socket.on('error', () => {});
      let n = 0;
      socket.on('data', () => {
        n++;
        if (n === 1) {
          socket.write(
            encodeFrame(
              MessageType.HandshakeResponse,
              encodeHandshakeResponse({
                protocol_version: PROTOCOL_VERSION,
                capabilities: createCapabilities({ agentId: 'big' }),
                success: true,
                error: null,
                encoding: 'json',
              }),
            ),
          );
        } else {
          socket.write(OVERSIZE_HEADER); // the header alone: nothing is allocated for it
        }
      });
    });
    await new Promise<void>((r) => fake.listen(path, r));
    onCleanup(() => new Promise<void>((r) => fake.close(() => r())));
    const log = captureLogger();
    const client = await AgentClientV2Uds.connect('big', path, { logger: log });
    onCleanup(() => client.close());
    const closed = new Promise<AgentProtocolError | undefined>((r) => client.once('close', r));
    const call = settle(client.sendRequestHeaders(goodEvent('big-1'), { timeoutMs: 5000 }));
    const why = await closed;
    expect(why?.code).toBe('MESSAGE_TOO_LARGE');
    const result = await call;
    expect(result).toBeInstanceOf(AgentProtocolError);
    expect((result as AgentProtocolError).code).toBe('CONNECTION_CLOSED');
    expect(log.recent().map(renderEntry).join('\n')).toMatch(
      /connection to agent lost.*FRAME_TOO_LARGE/,
    );
  });

  it('a configured maxFrameLength holds on both ends: the agent drops a bigger frame, the proxy refuses to send one', async () => {
    const path = join(tempDir(), 'small.sock');
    const log = captureLogger();
    const server = new UdsAgentServerV2(path, new EchoAgent(), {
      logger: log,
      maxFrameLength: 1024,
    });
    await server.listen();
    onCleanup(() => server.close({ drainTimeoutMs: 0 }));

    // proxy side: an event whose frame would exceed the cap is refused locally, connection intact
    const client = await AgentClientV2Uds.connect('small', path, {
      maxFrameLength: 1024,
      logger: silentLogger,
    });
    onCleanup(() => client.close());
    const big = goodEvent('big-2');
    big.headers['x-filler'] = ['y'.repeat(2048)];
    const refused = await settle(client.sendRequestHeaders(big));
    expect((refused as AgentProtocolError).code).toBe('MESSAGE_TOO_LARGE');
    expect((await client.sendRequestHeaders(goodEvent('ok-1'))).decision).toBe('allow');

    // agent side: a raw proxy that sends 2 KiB anyway is dropped, with the reason logged
    const raw = await RawConn.connect(path);
    onCleanup(() => raw.destroy());
    raw.write(
      encodeFrame(
        MessageType.HandshakeRequest,
        Buffer.from(
          '{"supported_versions":[2],"proxy_id":"p","proxy_version":"1","config":null,"supported_encodings":["json"]}',
        ),
      ),
    );
    await raw.until(() => raw.frames.length > 0, 5000, 'handshake response');
    raw.write(
      encodeFrame(MessageType.RequestHeaders, Buffer.alloc(2048, 0x20), { maxFrameLength: 4096 }),
    );
    await raw.whenClosed(5000, 'the agent dropping the connection');
    expect(raw.peerClosed).toBe(true);
    expect(log.recent().map(renderEntry).join('\n')).toMatch(/FRAME_TOO_LARGE/);
    // the well-behaved connection is unaffected
    expect((await client.sendRequestHeaders(goodEvent('ok-2'))).decision).toBe('allow');
  });
});

describe('reverse connections', () => {
  it('an oversize frame after registration closes only that connection, with the reason logged', async () => {
    const path = join(tempDir(), 'reverse.sock');
    const log = captureLogger();
    const listener = await ReverseConnectionListener.bindUds(path, { logger: log });
    onCleanup(() => listener.close());
    const good = connectReverse({
      endpoint: `unix:${path}`,
      agentId: 'good',
      handler: new EchoAgent({ agentId: 'good' }),
      logger: silentLogger,
    });
    onCleanup(() => good.stop());
    await good.ready({ timeoutMs: 5000 });

    const raw = await RawConn.connect(path);
    onCleanup(() => raw.destroy());
    raw.write(
      encodeFrame(
        MessageType.HandshakeRequest,
        Buffer.from(
          JSON.stringify({
            protocol_version: PROTOCOL_VERSION,
            agent_id: 'big',
            capabilities: createCapabilities({ agentId: 'big' }),
            auth_token: null,
            metadata: null,
          }),
        ),
      ),
    );
    await raw.until(() => raw.frames.length > 0, 5000, 'registration response');
    await until(() => listener.list('big').length === 1, 5000, 'the registration');
    raw.write(OVERSIZE_HEADER);
    await raw.whenClosed(5000, 'the listener dropping the connection');
    await until(() => listener.list('big').length === 0, 5000, 'the connection to go');
    expect(log.recent().map(renderEntry).join('\n')).toMatch(
      /reverse connection closed.*FRAME_TOO_LARGE/,
    );
    const conn = listener.list('good')[0];
    expect((await conn?.sendRequestHeaders(goodEvent('still-fine')))?.decision).toBe('allow');
  });
});

describe('gRPC (4 MiB default, tonic’s)', () => {
  const pass = (b: Buffer): Buffer => b;

  it('the agent ends a stream whose message is over the limit and keeps serving others', async () => {
    const server = new GrpcAgentServerV2(new EchoAgent(), { logger: silentLogger });
    onCleanup(() => server.forceShutdown());
    const { address } = await server.listen('127.0.0.1:0');
    // a raw client that does not enforce the limit itself
    const raw = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': 64 * MiB,
    });
    onCleanup(() => raw.close());
    const call = raw.makeBidiStreamRequest(METHOD_PATHS.ProcessStream, pass, pass);
    call.on('error', () => {});
    call.on('data', () => {});
    const status = new Promise<grpc.StatusObject>((r) => call.on('status', r));
    call.write(
      encodeProxyToAgent({
        handshake: handshakeRequestToProto({
          supported_versions: [PROTOCOL_VERSION],
          proxy_id: 'raw',
          proxy_version: '0',
          config: null,
          supported_encodings: [],
        }),
      }),
    );
    const body = Buffer.alloc(4 * MiB + 1, 0x61);
    call.write(
      encodeProxyToAgent({
        request_body_chunk: { correlation_id: 'huge', data: body, is_last: true },
      }),
    );
    expect((await status).code).toBe(grpc.status.RESOURCE_EXHAUSTED);

    const good = await AgentClientV2.connect('echo', address, { timeoutMs: 5000 });
    onCleanup(() => good.close());
    expect((await good.sendRequestHeaders(goodEvent('after-huge'))).decision).toBe('allow');
  });

  it('the proxy fails the call (and does not hang) when an agent answers with more than the limit', async () => {
    const server = new grpc.Server({ 'grpc.max_send_message_length': 64 * MiB });
    onCleanup(() => server.forceShutdown());
    server.register(
      METHOD_PATHS.ProcessStream,
      (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('error', () => {});
        let n = 0;
        call.on('data', () => {
          n++;
          if (n === 1) {
            call.write(
              encodeAgentToProxy({
                handshake: {
                  protocol_version: PROTOCOL_VERSION,
                  capabilities: capabilitiesToProto(createCapabilities({ agentId: 'huge' })),
                  success: true,
                },
              }),
            );
            return;
          }
          call.write(
            encodeAgentToProxy({
              response: agentResponseToProto(
                allow({ custom: { filler: 'z'.repeat(5 * MiB) } }),
                'huge-answer',
                1,
              ),
            }),
          );
        });
      },
      pass,
      pass,
      'bidi',
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const client = await AgentClientV2.connect('huge', `127.0.0.1:${port}`, {
      timeoutMs: 10_000,
      controlStream: false,
    });
    onCleanup(() => client.close());
    const closed = new Promise<unknown>((r) => client.once('close', r));
    const result = await settle(client.sendRequestHeaders(goodEvent('huge-answer')));
    expect(result).toBeInstanceOf(AgentProtocolError);
    expect(['MESSAGE_TOO_LARGE', 'CONNECTION_CLOSED', 'UNAVAILABLE']).toContain(
      (result as AgentProtocolError).code,
    );
    await closed;
  });
});
