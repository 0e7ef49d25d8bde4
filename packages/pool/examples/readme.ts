// The README's example, compiled by `tsc -p tsconfig.json` so it never rots.
import { AgentPool } from '@picket/pool';
import { decisionKind } from '@picket/protocol';
import { AgentClientV2Uds } from '@picket/uds';

const pool = new AgentPool({ strategy: 'least_connections', requestTimeoutMs: 1_000 });
pool.on('status', (s) => console.log('pool:', s.type, s.agentId));

// the factory is called for each of the 4 connections and again for every reconnect
await pool.addAgent('waf', () => AgentClientV2Uds.connect('waf', '/run/picket/waf.sock'), {
  failureMode: 'closed', // agent down ⇒ block 503 with reason code AGENT_UNAVAILABLE / AGENT_TIMEOUT …
  circuitBreaker: { failureThreshold: 5, openTimeoutMs: 10_000 },
});

const reply = await pool.sendRequestHeaders('waf', {
  metadata: {
    correlation_id: 'req-1',
    request_id: 'req-1',
    client_ip: '127.0.0.1',
    client_port: 50000,
    protocol: 'HTTP/1.1',
    timestamp: new Date().toISOString(),
  },
  method: 'GET',
  uri: '/admin',
  headers: { host: ['example.com'] },
});
console.log(decisionKind(reply.decision), reply.audit.reason_codes);
console.log(pool.stats()[0]?.circuitState, pool.metrics().split('\n').length, 'metric lines');
await pool.close({ drainTimeoutMs: 5_000 });
