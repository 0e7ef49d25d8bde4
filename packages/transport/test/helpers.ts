/** Test helpers: temp dirs, openssl certificates made at test time, agent servers. */

import { EchoAgent } from '@picket/agents';
import { testCerts as sharedCerts } from '@picket/compliance';
import { GrpcAgentServerV2 } from '@picket/grpc';
import type { AgentHandler, AgentResponse, AgentTransport } from '@picket/protocol';
import { UdsAgentServerV2, silentLogger as udsSilent } from '@picket/uds';
import { AgentServer, silentLogger as v1Silent } from '@picket/v1';

export { tempDir } from '@picket/compliance';

/** Closes everything registered, in reverse order; for afterEach. */
export class Closer {
  private items: (() => Promise<unknown> | unknown)[] = [];
  add<T>(item: T, close: (t: T) => Promise<unknown> | unknown): T {
    this.items.push(() => close(item));
    return item;
  }
  async closeAll(): Promise<void> {
    const items = this.items.splice(0).reverse();
    for (const f of items)
      await Promise.resolve()
        .then(f)
        .catch(() => {});
  }
}

export interface Certs {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** The shared test certificates, named as this package's tests use them. */
export function testCerts(): Certs {
  const c = sharedCerts();
  return {
    ca: c.caCert,
    serverCert: c.serverCert,
    serverKey: c.serverKey,
    clientCert: c.clientCert,
    clientKey: c.clientKey,
  };
}

/** An echo agent with a given id. */
export const echo = (agentId: string): AgentHandler => new EchoAgent({ agentId });

export async function startUds(path: string, handler: AgentHandler): Promise<UdsAgentServerV2> {
  const server = new UdsAgentServerV2(path, handler, { logger: udsSilent });
  await server.listen();
  return server;
}

export async function startV1(path: string, handler: AgentHandler): Promise<AgentServer> {
  const server = new AgentServer('v1-agent', path, handler, { logger: v1Silent });
  await server.run();
  return server;
}

/** A gRPC agent on 127.0.0.1 (a free port), plaintext or TLS / mTLS. */
export async function startGrpc(
  handler: AgentHandler,
  tls?: { mtls?: boolean },
): Promise<{ server: GrpcAgentServerV2; port: number }> {
  const c = tls ? testCerts() : undefined;
  const server = new GrpcAgentServerV2(handler, {
    ...(c && {
      tls: { cert: c.serverCert, key: c.serverKey, ...(tls?.mtls && { ca: c.ca }) },
    }),
  });
  const bound = await server.listen('127.0.0.1:0');
  return { server, port: bound.port };
}

let seq = 0;
/** A request-headers event. */
export function headers(uri = '/', correlationId = `cid-${process.pid}-${++seq}`) {
  return {
    metadata: {
      correlation_id: correlationId,
      request_id: correlationId,
      client_ip: '127.0.0.1',
      client_port: 40000,
      protocol: 'HTTP/1.1',
      timestamp: '2026-01-01T00:00:00Z',
    },
    method: 'GET',
    uri,
    headers: { host: ['example.com'] },
  };
}

/** The value of a header the agent set, if any. */
export function setHeader(r: AgentResponse, name: string): string | undefined {
  for (const op of r.request_headers) {
    if ('set' in op && op.set.name.toLowerCase() === name.toLowerCase()) return op.set.value;
  }
  return undefined;
}

/** Sends request headers and checks the echo agent answered on this transport. */
export async function roundTrip(t: AgentTransport, uri = '/hello'): Promise<AgentResponse> {
  return t.sendRequestHeaders(headers(uri), { timeoutMs: 5000 });
}
