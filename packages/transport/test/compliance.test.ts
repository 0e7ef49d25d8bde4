/**
 * The shared compliance suite over transports opened by endpoint string: one UDS
 * and one gRPC endpoint (each transport's own package runs the full matrix).
 */
import { type ComplianceFixture, runComplianceSuite, unixSocketFixture } from '@picket/compliance';
import { GrpcAgentServerV2 } from '@picket/grpc';
import type { Encoding } from '@picket/protocol';
import { silentLogger, UdsAgentServerV2 } from '@picket/uds';
import { V2Transport } from '../src/index.js';

const udsEndpoint = unixSocketFixture<Encoding>(
  (path, handler) => new UdsAgentServerV2(path, handler, { logger: silentLogger }),
  (path, encoding) =>
    V2Transport.connect('compliance', `unix:${path}`, {
      encodings: [encoding],
      timeoutMs: 5000,
      logger: silentLogger,
    }),
);

const grpcEndpoint: ComplianceFixture = async (handler) => {
  const server = new GrpcAgentServerV2(handler);
  const { port } = await server.listen('127.0.0.1:0');
  const transport = await V2Transport.connect('compliance', `grpc://127.0.0.1:${port}`, {
    timeoutMs: 5000,
  });
  return {
    transport,
    push: server,
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
  oversizeBodyBytes: 17 * 1024 * 1024,
  concurrency: 200,
});

runComplianceSuite('transport facade, grpc://', grpcEndpoint, {
  encodings: ['protobuf'],
  maxBodyBytes: 1024 * 1024,
  oversizeBodyBytes: 5 * 1024 * 1024,
  concurrency: 200,
});
