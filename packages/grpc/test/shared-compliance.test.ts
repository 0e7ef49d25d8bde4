/**
 * The shared @picket/compliance suite over gRPC: plaintext, TLS and mTLS, with
 * certificates generated at test time.
 */
import { type ComplianceFixture, runComplianceSuite } from '@picket/compliance';
import { DEFAULT_GRPC_MAX_MESSAGE_SIZE } from '@picket/protocol';
import { hasOpenssl } from './certs.js';
import { startGrpcFixture } from './fixtures.js';

const fixture =
  (tls: boolean | 'mtls'): ComplianceFixture =>
  async (handler) => {
    const f = await startGrpcFixture(handler, { tls, server: { logger: silent } });
    let crashed = false;
    return {
      transport: f.transport,
      push: f.server,
      crash: async () => {
        crashed = true;
        f.server.forceShutdown();
      },
      close: async () => {
        if (crashed) await f.transport.close();
        else await f.close();
      },
    };
  };

const silent = { debug() {}, info() {}, warn() {}, error() {} };
// A body chunk plus its envelope must fit the 4 MiB message limit.
const maxBodyBytes = DEFAULT_GRPC_MAX_MESSAGE_SIZE - 64 * 1024;
const options = { encodings: ['protobuf' as const], maxBodyBytes, concurrency: 1000 };

runComplianceSuite('grpc plaintext', fixture(false), options);
if (hasOpenssl()) {
  runComplianceSuite('grpc tls', fixture(true), options);
  runComplianceSuite('grpc mtls', fixture('mtls'), options);
}
