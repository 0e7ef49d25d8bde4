// A prox plugin as a picket agent: start it, ask it about one request, stop it.
import { decisionKind } from '@picket/protocol';
import { ProxPluginTransport } from '@picket/prox';

export async function askPlugin(endpoint: string, path: string): Promise<string> {
  // e.g. endpoint = 'prox+exec:/usr/local/bin/auth-plugin --strict'
  const agent = await ProxPluginTransport.connect('auth', endpoint, {
    routes: [{ routeId: 'web:0', match: { domain: 'api.example.com', path: '/v1/*' } }],
    maxConnections: 32, // socket connections to the plugin; more calls wait their turn
    readyTimeoutMs: 5_000,
  });
  agent.on('targets', (push) => console.log('targets', push.routeId, push.targets));
  try {
    const answer = await agent.sendRequestHeaders({
      metadata: {
        correlation_id: 'req-1',
        request_id: 'req-1',
        client_ip: '203.0.113.9',
        client_port: 51_000,
        server_name: 'api.example.com',
        protocol: 'HTTP/1.1',
        route_id: 'web:0',
        timestamp: new Date().toISOString(),
      },
      method: 'GET',
      uri: path,
      headers: { host: ['api.example.com'], authorization: ['Bearer abc'] },
    });
    return decisionKind(answer.decision); // 'allow' or 'block'
  } finally {
    await agent.close(); // stops the plugin
  }
}
