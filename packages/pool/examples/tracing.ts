// docs/observability.md's example, compiled by `tsc -p tsconfig.json` so it never rots.
import { trace } from '@opentelemetry/api';
import { AgentPool } from '@picket/pool';
import { allow, createCapabilities } from '@picket/protocol';
import { AgentClientV2Uds, UdsAgentServerV2 } from '@picket/uds';

// Proxy side: a CLIENT span `picket.agent <event type>` per call. `tracing: true` takes the
// tracer `@picket/pool` of the globally registered provider instead.
const pool = new AgentPool({ tracer: trace.getTracer('my-proxy') });

// Agent side (usually another process): a SERVER span `picket.handle <event type>` per event,
// child of the proxy's span through the traceparent the pool writes into request headers.
const agent = new UdsAgentServerV2(
  '/run/picket/waf.sock',
  {
    capabilities: () => createCapabilities({ agentId: 'waf' }),
    // spans the hook starts nest under picket.handle (with a context manager registered)
    onRequestHeaders: () => allow(),
  },
  { tracer: trace.getTracer('waf-agent') },
);
await agent.listen();

await pool.addAgent('waf', () => AgentClientV2Uds.connect('waf', '/run/picket/waf.sock'));
const tracer = trace.getTracer('my-proxy');
await tracer.startActiveSpan('http request', async (request) => {
  // the active span (or `parentContext` in the call options) is the call span's parent
  await pool.sendRequestHeaders('waf', {
    metadata: {
      correlation_id: 'req-1',
      request_id: 'req-1',
      client_ip: '127.0.0.1',
      client_port: 50000,
      protocol: 'HTTP/1.1',
      timestamp: new Date().toISOString(),
    },
    method: 'GET',
    uri: '/',
    headers: { host: ['example.com'] },
  });
  request.end();
});
await pool.close();
await agent.close();
