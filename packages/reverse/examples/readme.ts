import { EchoAgent } from '@picket/agents';
import { AgentPool } from '@picket/pool';
import { connectReverse, ReverseConnectionListener } from '@picket/reverse';

// --- proxy side: agents dial in, registered connections join the pool -----------
const pool = new AgentPool();
const listener = await ReverseConnectionListener.bindTcp('127.0.0.1:7070', {
  allowedAgents: ['echo-*'],
  tokens: { 'echo-1': ['s3cret-token'] },
  pool,
});
listener.on('connection', (_conn, info) => console.log('registered', info.connectionId));
listener.on('rejected', (r) => console.warn('refused', r.reason));

// --- agent side (normally another host, behind NAT) ------------------------------
const agent = connectReverse({
  endpoint: 'tcp://127.0.0.1:7070',
  agentId: 'echo-1',
  authToken: 's3cret-token',
  handler: new EchoAgent({ agentId: 'echo-1' }),
  connections: 2,
});
agent.on('registrationFailed', (err) => console.error(err.message));
await agent.ready({ timeoutMs: 5000 });

console.log(pool.agentStats('echo-1')?.activeConnections); // 2
await agent.stop();
await listener.close();
await pool.close();
