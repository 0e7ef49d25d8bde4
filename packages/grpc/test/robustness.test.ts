/**
 * Two grpc-js 1.14 behaviours the transport works around (found by apps/reliability's
 * fuzz and soak):
 * - a server handler that writes after grpc-js failed the call over undecodable bytes
 *   keeps grpc-js from ever sending the status: the proxy's stream hung;
 * - a channel closed while its subchannel waits to retry reconnects anyway once the agent
 *   is back, and that connection is never closed: every failed connect leaked a socket.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Client, credentials, status as grpcStatus, type StatusObject } from '@grpc/grpc-js';
import { AgentProtocolError, allow, createCapabilities, PROTOCOL_VERSION } from '@picket/protocol';
import { afterEach, describe, expect, test } from 'vitest';
import { AgentClientV2 } from '../src/client.js';
import { eventToProto, handshakeRequestToProto } from '../src/convert.js';
import { encodeProxyToAgent, METHOD_PATHS } from '../src/proto.js';
import { GrpcAgentServerV2 } from '../src/server.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const pass = (b: Buffer): Buffer => b;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function headers(cid: string) {
  return eventToProto('request_headers', {
    metadata: {
      correlation_id: cid,
      request_id: cid,
      client_ip: '127.0.0.1',
      client_port: 1,
      protocol: 'HTTP/1.1',
      timestamp: '2026-01-01T00:00:00Z',
    },
    method: 'GET',
    uri: '/',
    headers: {},
  });
}

describe('undecodable ProcessStream messages', () => {
  test('end the stream with INVALID_ARGUMENT and a logged reason, also while handlers are answering', async () => {
    const warnings: string[] = [];
    const server = new GrpcAgentServerV2(
      {
        capabilities: () => createCapabilities({ agentId: 'slow' }),
        // answers arrive while (and after) the junk is read
        onRequestHeaders: async () => {
          await sleep(Math.random() * 4);
          return allow();
        },
      },
      {
        logger: {
          debug: () => {},
          info: () => {},
          warn: (m) => void warnings.push(m),
          error: () => {},
        },
      },
    );
    cleanups.push(() => server.forceShutdown());
    const { address } = await server.listen('127.0.0.1:0');
    const client = new Client(address, credentials.createInsecure());
    cleanups.push(() => client.close());

    const one = async (i: number): Promise<StatusObject> => {
      const call = client.makeBidiStreamRequest(METHOD_PATHS.ProcessStream, pass, pass);
      call.on('data', () => {});
      call.on('error', () => {});
      const status = new Promise<StatusObject>((r) => call.on('status', r));
      call.write(
        encodeProxyToAgent({
          handshake: handshakeRequestToProto({
            supported_versions: [PROTOCOL_VERSION],
            proxy_id: 'p',
            proxy_version: '0',
            config: null,
            supported_encodings: [],
          }),
        }),
      );
      for (let j = 0; j < 8; j++) call.write(encodeProxyToAgent(headers(`c${i}-${j}`)));
      call.write(Buffer.from([0xff, 0xff, 0xff])); // not a ProxyToAgent
      call.end();
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          call.cancel();
          reject(new Error(`stream ${i} got no status`));
        }, 5000);
      });
      return Promise.race([status, hung]).finally(() => clearTimeout(timer));
    };
    // the race needed dozens of streams to show up reliably
    const statuses = await Promise.all(Array.from({ length: 60 }, (_, i) => one(i)));
    for (const s of statuses) {
      expect(s.code).toBe(grpcStatus.INVALID_ARGUMENT);
      expect(s.details).toMatch(/undecodable ProxyToAgent message/);
    }
    expect(warnings.filter((w) => /undecodable/.test(w))).toHaveLength(60);
    expect(server.connections).toBe(0);
  });
});

/** Established TCP connections from this process to `port` on 127.0.0.1 (Linux /proc). */
function connectionsTo(port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/self/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[2]?.endsWith(`:${hexPort}`) && f[3] === '01' && inodes.has(f[9] ?? '')).length;
}

describe.skipIf(process.platform !== 'linux')('connecting to an agent that is down', () => {
  test('leaves no connection behind once the agent is back', async () => {
    const first = new GrpcAgentServerV2({
      capabilities: () => createCapabilities({ agentId: 'a' }),
    });
    const { port } = await first.listen('127.0.0.1:0');
    first.forceShutdown();
    for (let i = 0; i < 3; i++) {
      const err = await AgentClientV2.connect('a', `127.0.0.1:${port}`, { timeoutMs: 2000 }).then(
        (c) => {
          cleanups.push(() => c.close());
          throw new Error('expected a failure');
        },
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AgentProtocolError);
      expect((err as AgentProtocolError).code).toBe('CONNECTION_FAILED');
    }
    const again = new GrpcAgentServerV2({
      capabilities: () => createCapabilities({ agentId: 'a' }),
    });
    cleanups.push(() => again.forceShutdown());
    await again.listen(`127.0.0.1:${port}`);
    await sleep(2500); // longer than grpc-js' first reconnect backoff (1 s + jitter)
    expect(connectionsTo(port)).toBe(0);
  });
});
