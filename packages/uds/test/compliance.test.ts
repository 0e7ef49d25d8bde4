import { type ComplianceFixture, runComplianceSuite } from '@picket/compliance';
import { type Encoding, MAX_UDS_FRAME_LENGTH } from '@picket/protocol';
import { AgentClientV2Uds, silentLogger, UdsAgentServerV2 } from '../src/index.js';
import { tempSocket } from './helpers.js';

const startUds: ComplianceFixture<Encoding> = async (handler, { encoding }) => {
  const sock = tempSocket();
  const server = new UdsAgentServerV2(sock.path, handler, { logger: silentLogger });
  await server.listen();
  const transport = await AgentClientV2Uds.connect('compliance', sock.path, {
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
      sock.cleanup();
    },
  };
};

// Largest raw chunk that still fits one JSON frame once base64-encoded (4/3) with its envelope.
const maxJsonBody = Math.floor(((MAX_UDS_FRAME_LENGTH - 1024) * 3) / 4);

runComplianceSuite('uds', startUds, {
  encodings: ['json', 'msgpack', 'cbor'],
  maxBodyBytes: maxJsonBody,
});
