/**
 * picket demo: serves the reference agents over Unix sockets, drives scripted
 * requests through them the way a proxy would (a chain: the first non-allow
 * decision wins), prints what each agent decided, then keeps the agents serving
 * until Ctrl-C. `--once` exits after the table (non-zero if an outcome is wrong).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DenylistAgent, EchoAgent } from '@picket/agents';
import {
  type AgentResponse,
  type AgentTransport,
  decisionKind,
  type RequestHeadersEvent,
} from '@picket/protocol';
import { AgentClientV2Uds, UdsAgentServerV2 } from '@picket/uds';

const once = process.argv.includes('--once');
const quiet = process.argv.includes('--quiet');
const say = (line = ''): void => {
  if (!quiet) console.log(line);
};

interface Scenario {
  method: string;
  uri: string;
  clientIp: string;
  expect: string;
}
const scenarios: Scenario[] = [
  { method: 'GET', uri: '/', clientIp: '198.51.100.10', expect: 'allow' },
  { method: 'GET', uri: '/admin/secret', clientIp: '198.51.100.10', expect: 'block 403' },
  { method: 'GET', uri: '/api/items?page=2', clientIp: '203.0.113.7', expect: 'block 403' },
  { method: 'POST', uri: '/api/items', clientIp: '2001:db8::1', expect: 'allow' },
];

function event(n: number, s: Scenario): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: `demo-${n}`,
      request_id: `demo-${n}`,
      client_ip: s.clientIp,
      client_port: 40000 + n,
      server_name: 'demo.local',
      protocol: 'HTTP/1.1',
      timestamp: new Date().toISOString(),
    },
    method: s.method,
    uri: s.uri,
    headers: { host: ['demo.local'], 'user-agent': ['picket-demo'] },
  };
}

function describe(r: AgentResponse): string {
  const d = r.decision;
  if (d === 'allow') {
    const ops = r.request_headers.length;
    return ops > 0 ? `allow (+${ops} headers)` : 'allow';
  }
  if ('block' in d) return `block ${d.block.status} "${d.block.body ?? ''}"`;
  if ('redirect' in d) return `redirect ${d.redirect.status} ${d.redirect.url}`;
  return `challenge ${d.challenge.challenge_type}`;
}

const dir = mkdtempSync(join(tmpdir(), 'picket-demo-'));
const denylistPath = join(dir, 'denylist.sock');
const echoPath = join(dir, 'echo.sock');
const servers = [
  new UdsAgentServerV2(
    denylistPath,
    new DenylistAgent({ blockedPaths: ['/admin'], blockedIps: ['203.0.113.0/24'] }),
  ),
  new UdsAgentServerV2(echoPath, new EchoAgent()),
];
const clients: AgentTransport[] = [];

async function shutdown(code: number): Promise<never> {
  await Promise.allSettled(clients.map((c) => c.close()));
  await Promise.allSettled(servers.map((s) => s.close({ drainTimeoutMs: 1000 })));
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}

await Promise.all(servers.map((s) => s.listen()));
const chain = [
  await AgentClientV2Uds.connect('denylist', denylistPath, { encodings: ['msgpack', 'json'] }),
  await AgentClientV2Uds.connect('echo', echoPath, { encodings: ['msgpack', 'json'] }),
];
clients.push(...chain);

say('picket demo: two reference agents over Unix sockets, consulted as a chain\n');
say(`  denylist  ${denylistPath}  (${chain[0]?.encoding})`);
say(`  echo      ${echoPath}  (${chain[1]?.encoding})\n`);
const rows: string[][] = [['request', 'client', 'denylist', 'echo', 'outcome']];
let wrong = 0;
for (const [i, s] of scenarios.entries()) {
  const cells = [`${s.method} ${s.uri}`, s.clientIp];
  let outcome = 'allow';
  for (const agent of chain) {
    if (outcome !== 'allow') {
      cells.push('-');
      continue;
    }
    const r = await agent.sendRequestHeaders(event(i, s));
    cells.push(describe(r));
    if (decisionKind(r.decision) !== 'allow') outcome = describe(r).split(' "')[0] ?? '';
  }
  if (outcome !== s.expect) wrong++;
  rows.push([...cells, outcome]);
}
const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
for (const r of rows) say(`  ${r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  ')}`);
const rtts = await Promise.all(chain.map((c) => c.ping()));
say(`\n  ping: ${rtts.map((ms) => `${ms.toFixed(2)} ms`).join(', ')}`);

if (wrong > 0) {
  console.error(`demo: ${wrong} outcome(s) differ from what the agents should decide`);
  await shutdown(1);
}
if (once) await shutdown(0);
say('\nagents keep serving on the sockets above; Ctrl-C stops them');
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
