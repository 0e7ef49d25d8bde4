import { runComplianceSuite, unixSocketFixture } from '@picket/compliance';
import { type Encoding, MAX_UDS_FRAME_LENGTH } from '@picket/protocol';
import { AgentClientV2Uds, silentLogger, UdsAgentServerV2 } from '../src/index.js';

const startUds = unixSocketFixture<Encoding>(
  (path, handler) => new UdsAgentServerV2(path, handler, { logger: silentLogger }),
  (path, encoding) =>
    AgentClientV2Uds.connect('compliance', path, {
      encodings: [encoding],
      timeoutMs: 5000,
      logger: silentLogger,
    }),
);

// Largest raw chunk that still fits one JSON frame once base64-encoded (4/3) with its envelope.
const maxJsonBody = Math.floor(((MAX_UDS_FRAME_LENGTH - 1024) * 3) / 4);

runComplianceSuite('uds', startUds, {
  encodings: ['json', 'msgpack', 'cbor'],
  maxBodyBytes: maxJsonBody,
});
