import { DenylistAgent, EchoAgent } from '@picket/agents';
import { UdsAgentServerV2 } from '@picket/uds';

// Serve the reference agents on Unix sockets; any Zentinel-compatible proxy can use them.
const denylist = new DenylistAgent({
  blockedPaths: ['/admin', '/.git'],
  blockedIps: ['203.0.113.0/24', '2001:db8::/32'],
});
const servers = [
  new UdsAgentServerV2('/tmp/denylist.sock', denylist),
  new UdsAgentServerV2('/tmp/echo.sock', new EchoAgent({ verbose: true })),
];
await Promise.all(servers.map((s) => s.listen()));

process.on('SIGINT', async () => {
  await Promise.all(servers.map((s) => s.close()));
  process.exit(0);
});
