import { readFileSync } from 'node:fs';
import { EchoAgent } from '@picket/agents';
import { connectReverse, ReverseConnectionListener } from '@picket/reverse';

// Proxy: TLS with client certificates required; the verifier sees the certificate too.
const listener = await ReverseConnectionListener.bindTcp('0.0.0.0:7443', {
  tls: {
    cert: readFileSync('server.pem'),
    key: readFileSync('server.key'),
    ca: readFileSync('ca.pem'),
    requireClientCert: true,
  },
  verifyToken: async (agentId, token, info) =>
    info.peerCertificate?.subject?.CN === agentId && token === process.env.AGENT_TOKEN,
});
for await (const connection of listener) {
  console.log('agent', connection.agentId, 'from', connection.info.remoteAddress);
}

// Agent: dials with its own certificate and retries forever with backoff.
const agent = connectReverse({
  endpoint: 'tls://proxy.internal:7443',
  agentId: 'waf-1',
  authToken: process.env.AGENT_TOKEN,
  handler: new EchoAgent({ agentId: 'waf-1' }),
  tls: {
    ca: readFileSync('ca.pem'),
    cert: readFileSync('waf-1.pem'),
    key: readFileSync('waf-1.key'),
  },
  reconnect: { initialDelayMs: 200, maxDelayMs: 60_000 },
});
agent.on('registrationFailed', (err, info) => console.error(info.proxyError ?? err.message));
