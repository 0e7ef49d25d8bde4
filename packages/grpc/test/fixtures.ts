/**
 * `startGrpcFixture(handler, { tls })`: a GrpcAgentServerV2 on 127.0.0.1:0 serving
 * `handler`, and an AgentClientV2 connected to it — `{ transport, close }` (+ the server)
 * for this package's tests and the shared compliance suite.
 */
import type { AgentHandler } from '@picket/protocol';
import { AgentClientV2, type AgentClientV2Options } from '../src/client.js';
import { GrpcAgentServerV2, type GrpcAgentServerV2Options } from '../src/server.js';
import { testCerts } from './certs.js';

export interface GrpcFixtureOptions {
  /** false/absent: plaintext; true: TLS; 'mtls': TLS with a verified client certificate */
  tls?: boolean | 'mtls';
  client?: AgentClientV2Options;
  server?: GrpcAgentServerV2Options;
}

export interface GrpcFixture {
  transport: AgentClientV2;
  server: GrpcAgentServerV2;
  address: string;
  close(): Promise<void>;
}

export async function startGrpcFixture(
  handler: AgentHandler,
  o: GrpcFixtureOptions = {},
): Promise<GrpcFixture> {
  const certs = o.tls ? testCerts() : undefined;
  const server = new GrpcAgentServerV2(handler, {
    ...o.server,
    ...(certs
      ? {
          tls: {
            cert: certs.serverCert,
            key: certs.serverKey,
            ...(o.tls === 'mtls' ? { ca: certs.caCert, requireClientCert: true } : {}),
          },
        }
      : {}),
  });
  const { address, port } = await server.listen('127.0.0.1:0');
  const agentId = handler.capabilities().agent_id;
  const clientOptions: AgentClientV2Options = { timeoutMs: 10_000, ...o.client };
  let transport: AgentClientV2;
  try {
    transport = certs
      ? await AgentClientV2.connectWithTls(
          agentId,
          `localhost:${port}`,
          {
            ca: certs.caCert,
            ...(o.tls === 'mtls' ? { cert: certs.clientCert, key: certs.clientKey } : {}),
          },
          clientOptions,
        )
      : await AgentClientV2.connect(agentId, address, clientOptions);
  } catch (err) {
    server.forceShutdown();
    throw err;
  }
  return {
    transport,
    server,
    address,
    async close() {
      await transport.close();
      await server.close({ drainTimeoutMs: 200 });
    },
  };
}
