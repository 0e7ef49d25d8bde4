/**
 * End to end with every party in its own process, started as a user would:
 * the gateway (`src/main.ts` with a YAML config), the built `picket` CLI
 * serving a denylist over UDS, an echo agent over gRPC and an echo agent that
 * dials the gateway's reverse listener, and a user-written agent script run
 * with tsx. Only the upstream (the echo HTTP server) lives in the test process.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EchoReply, type EchoUpstream, startEchoUpstream } from '../src/echo-upstream.js';
import {
  type GatewayProcess,
  killAll,
  type Spawned,
  spawnPicket,
  spawnTs,
  startGateway,
  tempDir,
  until,
  writeYaml,
} from './helpers.js';

let dir: string;
let upstream: EchoUpstream;
let upstreamRequests: string[];

beforeEach(async () => {
  dir = tempDir();
  upstream = await startEchoUpstream('echo');
  upstreamRequests = [];
  upstream.server.on('request', (req) => upstreamRequests.push(req.url ?? ''));
});

afterEach(async () => {
  await killAll();
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The running processes of one test. */
interface Setup {
  gw: GatewayProcess;
  /** `picket serve denylist` over UDS, agent id `deny` */
  deny: Spawned;
  /** `picket serve echo` over gRPC, agent id `echo-grpc` */
  echoGrpc: Spawned;
  /** `picket serve echo --reverse`, agent id `echo-rev` */
  echoRev: Spawned;
  /** test/fixtures/script-agent.ts over UDS */
  script: Spawned;
}

/** Escapes a string for use inside a RegExp. */
const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Starts the agents, the gateway once the gRPC agent printed its port, then
 * the reverse agent (it dials the listener the gateway opened), and waits
 * until the gateway reports every agent healthy.
 */
async function startAll(): Promise<Setup> {
  const denySock = join(dir, 'deny.sock');
  const scriptSock = join(dir, 'script.sock');
  const reverse = `reverse+unix:${join(dir, 'reverse.sock')}`;
  const token = randomBytes(8).toString('hex');

  const deny = spawnPicket([
    'serve',
    'denylist',
    '--listen',
    `unix:${denySock}`,
    '--block-path',
    '/admin',
    '--block-ip',
    '203.0.113.0/24',
    '--agent-id',
    'deny',
    '--log-events',
  ]);
  const echoGrpc = spawnPicket([
    'serve',
    'echo',
    '--listen',
    '127.0.0.1:0',
    '--agent-id',
    'echo-grpc',
    '--log-events',
  ]);
  const script = spawnTs('test/fixtures/script-agent.ts', [scriptSock]);
  const agentsReady = Promise.all([
    deny.waitFor(/deny listening on unix:\S+ \(uds\)/),
    script.waitFor(/^ready$/m),
  ]);
  // the gateway needs the gRPC port; it redials the Unix socket agents until they are up
  const grpc = await echoGrpc.waitFor(
    /echo-grpc listening on grpc:\/\/(127\.0\.0\.1:\d+) \(gRPC\)/,
  );

  const gw = await startGateway([
    '--quiet',
    '--config',
    writeYaml(dir, {
      listen: '127.0.0.1:0',
      // lets the test play a blocked client; never do that without a trusted front proxy
      client_ip_header: 'x-forwarded-for',
      upstreams: { echo: upstream.url },
      agents: {
        deny: { endpoint: `unix:${denySock}`, failure_mode: 'closed' },
        'deny-open': { endpoint: `unix:${denySock}`, failure_mode: 'open' },
        'echo-grpc': {
          endpoint: grpc[1],
          events: ['request_headers', 'response_headers'],
          failure_mode: 'closed',
        },
        'echo-rev': { endpoint: reverse, auth_token: token, connections: 1 },
        script: {
          endpoint: `unix:${scriptSock}`,
          events: ['request_headers', 'request_body'],
          // /hang is held until the client goes away: only a hang guard
          timeout_ms: 20_000,
        },
      },
      routes: [
        {
          name: 'open',
          path_prefix: '/open',
          upstream: 'echo',
          agents: ['deny-open', 'echo-grpc'],
        },
        { name: 'grpc', path_prefix: '/grpc', upstream: 'echo', agents: ['deny', 'echo-grpc'] },
        {
          name: 'main',
          upstream: 'echo',
          agents: ['deny', 'echo-grpc', 'echo-rev', 'script'],
        },
      ],
    }),
  ]);

  const echoRev = spawnPicket([
    'serve',
    'echo',
    '--reverse',
    reverse,
    '--agent-id',
    'echo-rev',
    '--token',
    token,
    '--log-events',
  ]);
  await Promise.all([agentsReady, echoRev.waitFor(/echo-rev registered with reverse\+unix:/)]);
  const health = await until(async () => {
    const h = await get(gw, '/_picket/healthz');
    return h.status === 200 && h;
  }, 20_000);
  expect(JSON.parse(health.text)).toMatchObject({ healthy_agents: 5, min_healthy_agents: 5 });
  return { gw, deny, echoGrpc, echoRev, script };
}

async function get(gw: GatewayProcess, path: string, init: Parameters<typeof request>[1] = {}) {
  const res = await request(gw.base + path, init);
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

describe('gateway and agents as separate processes', () => {
  it('allows with every agent’s header changes, blocks path and IP, redirects, rewrites a body', async () => {
    const { gw, deny, echoGrpc, echoRev } = await startAll();

    // allowed: the chain deny → echo-grpc → echo-rev → script, each in its own process
    const ok = await get(gw, '/items?page=2');
    expect(ok.status).toBe(200);
    const echoed = JSON.parse(ok.text) as EchoReply;
    expect(echoed.path).toBe('/items?page=2');
    const cid = echoed.headers['x-echo-correlation-id'] as string;
    expect(cid).toMatch(/^[0-9a-f-]{36}$/);
    expect(echoed.headers).toMatchObject({
      // both echo agents set X-Echo-*; the later one in the chain (reverse) wins
      'x-echo-agent': 'echo-rev/1.0',
      'x-echo-method': 'GET',
      'x-echo-path': '/items?page=2',
      'x-echo-request-num': '1',
      'x-script-agent': 'seen',
    });
    // echo-grpc's response-header changes reach the client
    expect(ok.headers['x-echo-response-status']).toBe('200');
    expect(ok.headers['x-echo-response-correlation-id']).toBe(cid);
    // each agent process logged the same request (picket serve --log-events)
    const seen = `request_headers ${re(cid)} GET /items\\?page=2 from 127\\.0\\.0\\.1 => allow`;
    await deny.waitFor(new RegExp(`deny ${seen}`));
    await echoGrpc.waitFor(new RegExp(`echo-grpc ${seen}`));
    await echoRev.waitFor(new RegExp(`echo-rev ${seen}`));
    await echoGrpc.waitFor(new RegExp(`echo-grpc response_headers ${re(cid)} status 200 => allow`));

    // the gRPC echo agent's own request-header changes, on a route without the reverse one
    const viaGrpc = JSON.parse((await get(gw, '/grpc/items')).text) as EchoReply;
    expect(viaGrpc.headers).toMatchObject({
      'x-echo-agent': 'echo-grpc/1.0',
      'x-echo-path': '/grpc/items',
    });

    // blocked path and blocked IP: the denylist's 403 and body; the upstream never asked
    const before = upstreamRequests.length;
    expect(await get(gw, '/admin/panel')).toMatchObject({ status: 403, text: 'Forbidden path' });
    const ip = await get(gw, '/items', { headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(ip).toMatchObject({ status: 403, text: 'Forbidden IP' });
    expect(upstreamRequests.length).toBe(before);
    await deny.waitFor(
      /deny request_headers \S+ GET \/admin\/panel from 127\.0\.0\.1 => block 403/,
    );
    await deny.waitFor(/deny request_headers \S+ GET \/items from 203\.0\.113\.7 => block 403/);

    // redirect by the script agent
    const moved = await get(gw, '/old/docs/page');
    expect(moved.status).toBe(308);
    expect(moved.headers.location).toBe('https://new.example/docs/page');
    expect(upstreamRequests.length).toBe(before);

    // request body rewritten by the script agent, with a matching Content-Length
    const pay = await get(gw, '/pay', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=Zoë&card=4111 1111 1111 1111&amount=12',
    });
    expect(pay.status).toBe(200);
    const paid = JSON.parse(pay.text) as EchoReply;
    const masked = 'name=Zoë&card=[card]&amount=12';
    expect(paid.body).toBe(masked);
    expect(paid.headers['content-length']).toBe(String(Buffer.byteLength(masked)));
    expect(paid.headers['transfer-encoding']).toBeUndefined();
    expect(upstreamRequests).toContain('/pay');
  });

  it('a client disconnect reaches every agent process as a cancel (client_disconnect)', async () => {
    const { gw, deny, echoGrpc, echoRev, script } = await startAll();
    const req = httpRequest(`${gw.base}/hang`);
    req.on('error', () => {});
    req.end();
    // the script agent holds the request; the agents before it have answered already
    const cid = (await script.waitFor(/^hang (\S+)$/m))[1] as string;
    req.destroy();
    // in flight at the script agent (UDS)
    await script.waitFor(new RegExp(`^cancel ${re(cid)} client_disconnect$`, 'm'));
    // already answered: told over UDS, gRPC and the reverse connection
    await deny.waitFor(new RegExp(`deny cancel ${re(cid)} client_disconnect`));
    await echoGrpc.waitFor(new RegExp(`echo-grpc cancel ${re(cid)} client_disconnect`));
    await echoRev.waitFor(new RegExp(`echo-rev cancel ${re(cid)} client_disconnect`));
    expect(upstreamRequests).not.toContain('/hang');
  });

  it('the denylist process killed: the fail-open route passes, the fail-closed route gets 503', async () => {
    const { gw, deny } = await startAll();
    expect((await get(gw, '/open/before')).status).toBe(200);
    expect((await get(gw, '/items')).status).toBe(200);

    deny.proc.kill('SIGKILL');
    await deny.exited;

    const open = await get(gw, '/open/after');
    expect(open.status).toBe(200);
    // the agent after the dead one still ran
    expect(JSON.parse(open.text).headers['x-echo-agent']).toBe('echo-grpc/1.0');
    expect((await get(gw, '/items')).status).toBe(503);
    expect((await get(gw, '/grpc/x')).status).toBe(503);
    expect(upstreamRequests).toEqual(['/open/before', '/items', '/open/after']);

    const h = await until(async () => {
      const r = await get(gw, '/_picket/healthz');
      return r.status === 503 && r;
    });
    const report = JSON.parse(h.text);
    expect(report.agents.deny.healthy).toBe(false);
    expect(report.agents['echo-rev'].healthy).toBe(true);
  });
});
