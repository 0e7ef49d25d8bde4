import { type ComplianceFixture, runComplianceSuite } from '@picket/compliance';
import { MAX_UDS_FRAME_LENGTH } from '@picket/protocol';
import { silentLogger } from '@picket/uds';
import { connectReverse, ReverseConnectionListener } from '../src/index.js';
import { tempSocket } from './helpers.js';

/** Binds a listener, lets an agent dial it, and hands the suite the accepted connection. */
function fixture(kind: 'uds' | 'tcp'): ComplianceFixture {
  return async (handler) => {
    const sock = kind === 'uds' ? tempSocket() : undefined;
    const listener =
      sock === undefined
        ? await ReverseConnectionListener.bindTcp('127.0.0.1:0', { logger: silentLogger })
        : await ReverseConnectionListener.bindUds(sock.path, { logger: silentLogger });
    const first = listener.connections().next();
    const agent = connectReverse({
      endpoint: listener.endpoint,
      agentId: 'compliance',
      handler,
      logger: silentLogger,
    });
    const { value: transport } = await first;
    if (transport === undefined) throw new Error('listener closed before the agent registered');
    // the agent side has taken the registration answer too (its push API reaches the proxy)
    await agent.ready();
    return {
      transport,
      push: agent,
      crash: async () => {
        // No goodbye: the agent's sockets are destroyed (it will try to reconnect).
        for (const c of agent.connections) c.destroy();
      },
      close: async () => {
        await agent.stop();
        await listener.close();
        sock?.cleanup();
      },
    };
  };
}

// Largest raw chunk that still fits one JSON frame once base64-encoded (4/3) with its envelope.
const maxJsonBody = Math.floor(((MAX_UDS_FRAME_LENGTH - 1024) * 3) / 4);

// Reverse connections are JSON only (spec §3): no encoding negotiation after registration.
runComplianceSuite('reverse over uds', fixture('uds'), { maxBodyBytes: maxJsonBody });
runComplianceSuite('reverse over tcp', fixture('tcp'), { maxBodyBytes: maxJsonBody });
