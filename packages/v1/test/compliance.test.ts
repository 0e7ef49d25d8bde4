import { runComplianceSuite } from '@picket/compliance';
import { afterAll } from 'vitest';
import { AgentServer, connectV1, silentLogger } from '../src/index.js';
import { cleanupDirs, socketPath } from './helpers.js';

afterAll(() => cleanupDirs());

// v1 JSON carries at most 10 MiB, and body bytes travel as base64 (4/3 larger).
const MAX_BODY_BYTES = 7 * 1024 * 1024;

runComplianceSuite(
  'v1',
  async (handler) => {
    const path = socketPath();
    const server = new AgentServer('compliance-agent', path, handler, { logger: silentLogger });
    await server.run();
    const transport = await connectV1('compliance-agent', path, { connections: 4 });
    return {
      transport,
      // Closing the server destroys every connection without an answer and removes the socket.
      crash: () => server.close(),
      close: async () => {
        await transport.close();
        await server.close();
      },
    };
  },
  // v1 has no cancel message (a cancel drops the connection) and no control channel
  { maxBodyBytes: MAX_BODY_BYTES, unsupported: { cancelMessage: true } },
);
