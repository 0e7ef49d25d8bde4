// The README's example, compiled by `tsc -p tsconfig.json` so it never rots.
import { decisionKind } from '@picket/protocol';
import { createPool, detectTransport, V2Transport } from '@picket/transport';

console.log(detectTransport('https://waf.internal:8443')); // { kind: 'grpc', target: 'waf.internal:8443', tls: true, … }

// one connection, whatever the endpoint says
const waf = await V2Transport.connect('waf', '/run/picket/waf.sock', { timeoutMs: 200 });
console.log(waf.kind, waf.capabilities.name); // 'uds' …
await waf.close();

// a pool over mixed transports: addAgent picks the transport from the endpoint
const pool = createPool({ requestTimeoutMs: 1_000, failureMode: 'closed' });
await pool.addAgent('waf', '/run/picket/waf.sock'); // UDS
await pool.addAgent('auth', 'auth.internal:50051'); // gRPC, plaintext
await pool.addAgent('bot', 'https://bot.example.com', { tls: { ca: '/etc/picket/ca.pem' } }); // gRPC + TLS
await pool.addAgent('legacy', 'v1+unix:/run/picket/legacy.sock'); // protocol v1
await pool.addAgent('edge', 'reverse+tcp://0.0.0.0:9090', { reverse: { tokens: ['s3cret'] } }); // agents dial in

const reply = await pool.sendRequestHeaders('waf', {
  metadata: {
    correlation_id: 'req-1',
    request_id: 'req-1',
    client_ip: '203.0.113.7',
    client_port: 50000,
    protocol: 'HTTP/1.1',
    timestamp: new Date().toISOString(),
  },
  method: 'GET',
  uri: '/admin',
  headers: { host: ['example.com'] },
});
console.log(decisionKind(reply.decision), pool.reverseListeners());
await pool.close();
