/**
 * The shared compliance suite over transports opened by endpoint string: one UDS
 * and one gRPC endpoint (each transport's own package runs the full matrix).
 */
import { type ComplianceFixture, runComplianceSuite } from '@picket/compliance';
import { GrpcAgentServerV2 } from '@picket/grpc';
import type { Encoding } from '@picket/protocol';
import { silentLogger, UdsAgentServerV2 } from '@picket/uds';
import { V2Transport } from '../src/index.js';
import { tempDir } from './helpers.js';

const udsEndpoint: ComplianceFixture<Encoding> = async (handler, { encoding }) => {
  const tmp = tempDir();
  const server = new UdsAgentServerV2(tmp.path('agent.sock'), handler, { logger: silentLogger });
  await server.listen();
  const transport = await V2Transport.connect('compliance', `unix:${tmp.path('agent.sock')}`, {
    encodings: [encoding],
    timeoutMs: 5000,
    logger: silentLogger,
  });
  return {
    transport,
    crash: async () => {
      for (const c of server.connections) c.destroy();
    },
    close: async () => {
      await transport.close();
      await server.close({ drainTimeoutMs: 0 });
      tmp.cleanup();
    },
  };
};

const grpcEndpoint: ComplianceFixture = async (handler) => {
  const server = new GrpcAgentServerV2(handler);
  const { port } = await server.listen('127.0.0.1:0');
  const transport = await V2Transport.connect('compliance', `grpc://127.0.0.1:${port}`, {
    timeoutMs: 5000,
  });
  return {
    transport,
    crash: async () => server.forceShutdown(),
    close: async () => {
      await transport.close();
      await server.close({ drainTimeoutMs: 0 });
    },
  };
};

runComplianceSuite('transport facade, unix:', udsEndpoint, {
  encodings: ['msgpack'],
  maxBodyBytes: 1024 * 1024,
  concurrency: 200,
});

runComplianceSuite('transport facade, grpc://', grpcEndpoint, {
  encodings: ['protobuf'],
  maxBodyBytes: 1024 * 1024,
  concurrency: 200,
});
