/**
 * `pnpm soak [--quick] [--duration 60s] [--seed N] [--concurrency 16] [--deadline 10s]
 *            [--kill-every 4s] [--victims uds,grpc,reverse] [--fd-tolerance 1] [--verbose]`
 *
 * Chaos soak: the gateway (apps/gateway, a child process) with three agents, each a real
 * `picket serve echo` child process — one over UDS (fail-closed route), one over gRPC
 * (fail-open route), one dialling in over a reverse connection (fail-closed route) — under
 * constant HTTP load, while the agents are SIGKILLed and restarted every few seconds.
 *
 * Passes when every request got an HTTP response that is either a decision or its route's
 * failure-mode answer (nothing lost, nothing past its client-side deadline), the pool is
 * back to full health after every restart, and the gateway's open file descriptors and
 * sockets are back where they started once the load stops and the agents are back.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Agent, request } from 'undici';
import { durationArg, numberArg, parseArgs } from '../lib/args.js';
import { Rng, randomSeed } from '../lib/prng.js';
import { installCrashHooks } from '../lib/process-guard.js';
import { countFds, describeSockets, ManagedProcess } from './proc.js';

const require = createRequire(import.meta.url);
const CLI_MAIN = join(dirname(require.resolve('@picket/cli/package.json')), 'dist/main.js');
const GATEWAY_DIR = dirname(require.resolve('@picket/gateway/package.json'));
const TOKEN = 'soak-reverse-token';

/** What each route may answer: a decision of its agents, or its failure mode. */
const ROUTES: Record<string, { allowed: number[]; note: string }> = {
  '/uds': { allowed: [200, 503], note: 'uds agent, fail-closed' },
  '/grpc': { allowed: [200], note: 'gRPC agent, fail-open' },
  '/reverse': { allowed: [200, 503], note: 'reverse agent, fail-closed' },
  '/all': { allowed: [200, 503], note: 'uds → reverse → gRPC' },
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The upstream: echoes the request headers it got, so we can see which agents stamped them. */
async function startUpstream(): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({ path: req.url, headers: req.headers });
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    });
  });
  // Idle gateway→upstream connections close soon, so the fd baseline and the final count
  // both see none (their number under load depends only on the load's concurrency).
  server.keepAliveTimeout = 1000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}` };
}

function gatewayConfig(dir: string, upstream: string, grpcPort: number): string {
  const agent = (endpoint: string, failure: string, extra = ''): string =>
    `    endpoint: ${endpoint}\n    timeout_ms: 1000\n    failure_mode: ${failure}\n    connections: 2\n${extra}`;
  const route = (name: string, agents: string): string =>
    `  - name: ${name}\n    path_prefix: /${name}\n    upstream: echo\n    agents: [${agents}]\n`;
  return [
    'listen: 127.0.0.1:0',
    'admin:',
    '  prefix: /_picket',
    '  min_healthy_agents: all',
    'upstreams:',
    `  echo: ${upstream}`,
    'agents:',
    '  uds:',
    agent(`unix:${join(dir, 'uds.sock')}`, 'closed'),
    '  grpc:',
    agent(`127.0.0.1:${grpcPort}`, 'open'),
    '  reverse:',
    agent(`reverse+unix:${join(dir, 'reverse.sock')}`, 'closed', `    auth_token: ${TOKEN}\n`),
    'routes:',
    route('uds', 'uds'),
    route('grpc', 'grpc'),
    route('reverse', 'reverse'),
    route('all', 'uds, reverse, grpc'),
  ].join('\n');
}

interface Health {
  ok: boolean;
  detail: string;
  /** agents whose circuit breaker is not closed */
  openCircuits: string[];
}

async function health(base: string): Promise<Health> {
  try {
    // reset: a fresh connection each time, so health polling leaves no keep-alive socket behind
    const res = await request(`${base}/_picket/healthz`, {
      signal: AbortSignal.timeout(2000),
      reset: true,
    });
    const body = (await res.body.json()) as {
      agents?: Record<
        string,
        { healthy: boolean; healthy_connections: number; circuit_state?: string }
      >;
    };
    const agents = body.agents ?? {};
    const full = Object.values(agents).every((a) => a.healthy && a.healthy_connections >= 2);
    const detail = Object.entries(agents)
      .map(([n, a]) => `${n}:${a.healthy_connections}`)
      .join(' ');
    const openCircuits = Object.entries(agents)
      .filter(([, a]) => a.circuit_state !== undefined && a.circuit_state !== 'closed')
      .map(([n, a]) => `${n}:${a.circuit_state}`);
    return {
      ok: res.statusCode === 200 && full && Object.keys(agents).length === 3,
      detail,
      openCircuits,
    };
  } catch (err) {
    return { ok: false, detail: (err as Error).message, openCircuits: [] };
  }
}

/** Polls /healthz until every agent has all its connections healthy; returns the ms it took. */
async function waitFullHealth(
  base: string,
  timeoutMs: number,
): Promise<{ ms: number; openCircuits: string[] }> {
  const started = Date.now();
  let last: Health = { ok: false, detail: 'not asked yet', openCircuits: [] };
  while (Date.now() - started < timeoutMs) {
    last = await health(base);
    if (last.ok) return { ms: Date.now() - started, openCircuits: last.openCircuits };
    await sleep(100);
  }
  throw new Error(`pool not back to full health within ${timeoutMs} ms (${last.detail})`);
}

/** Waits until the fd count stops moving (two equal readings 500 ms apart) or `untilMs` passes. */
async function settledFds(
  pid: number,
  target: number | undefined,
  untilMs: number,
): Promise<{ fds: number; sockets: number }> {
  const end = Date.now() + untilMs;
  let prev = countFds(pid);
  for (;;) {
    await sleep(500);
    const now = countFds(pid);
    const stable = now.fds === prev.fds && now.sockets === prev.sockets;
    if ((stable && (target === undefined || now.fds <= target)) || Date.now() > end) return now;
    prev = now;
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2), ['quick', 'verbose']);
  const quick = args.get('quick') === true;
  const durationMs = durationArg(args, 'duration', quick ? 25_000 : 60_000);
  const seed = numberArg(args, 'seed', randomSeed()) >>> 0;
  const concurrency = numberArg(args, 'concurrency', 16);
  const deadlineMs = durationArg(args, 'deadline', 10_000);
  const killEveryMs = durationArg(args, 'kill-every', quick ? 3000 : 4000);
  const fdTolerance = numberArg(args, 'fd-tolerance', 1);
  const verbose = args.get('verbose') === true;
  const rng = new Rng(seed);
  let phase = 'setup';
  installCrashHooks(() => `soak seed ${seed}, ${phase}`);
  if (process.platform !== 'linux')
    throw new Error('the soak counts file descriptors through /proc (Linux only)');

  console.log(
    `picket soak: seed ${seed}, duration ${durationMs / 1000}s, concurrency ${concurrency}, ` +
      `client deadline ${deadlineMs} ms, an agent killed every ~${killEveryMs / 1000}s`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'picket-soak-'));
  // also when the run ends abruptly (a signal, a crash hook): children are killed by proc.ts
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const upstream = await startUpstream();
  const grpcPort = await freePort();
  const configPath = join(dir, 'gateway.yaml');
  writeFileSync(configPath, gatewayConfig(dir, upstream.url, grpcPort));

  const node = process.execPath;
  const agents = {
    uds: new ManagedProcess(
      'uds agent',
      node,
      [CLI_MAIN, 'serve', 'echo', '--listen', join(dir, 'uds.sock')],
      { echo: verbose },
    ),
    grpc: new ManagedProcess(
      'grpc agent',
      node,
      [CLI_MAIN, 'serve', 'echo', '--listen', `127.0.0.1:${grpcPort}`],
      { echo: verbose },
    ),
    reverse: new ManagedProcess(
      'reverse agent',
      node,
      [
        CLI_MAIN,
        'serve',
        'echo',
        '--reverse',
        `reverse+unix:${join(dir, 'reverse.sock')}`,
        '--agent-id',
        'reverse',
        '--token',
        TOKEN,
        '--connections',
        '2',
      ],
      { echo: verbose },
    ),
  };
  const ready: Record<keyof typeof agents, RegExp> = {
    uds: /listening on/,
    grpc: /listening on/,
    reverse: /registered with/,
  };
  const gateway = new ManagedProcess(
    'gateway',
    node,
    [
      '--import',
      'tsx',
      join(GATEWAY_DIR, 'src/main.ts'),
      '--config',
      configPath,
      '--listen',
      '127.0.0.1:0',
      '--quiet',
    ],
    { cwd: GATEWAY_DIR, echo: verbose },
  );

  const failures: string[] = [];
  const stats = {
    sent: 0,
    answered: 0,
    lost: 0,
    hung: 0,
    unexpected: 0,
    failOpenAllows: 0,
    byStatus: new Map<string, number>(),
    restartsAttempted: 0,
    restartsSurvived: 0,
    recoveryMs: [] as number[],
    /** restarts after which some agent's circuit breaker was still open once its connections were back */
    circuitsOpen: 0,
  };
  const examples: string[] = [];
  /** gateway sockets by kind whose count changed between the baseline and the end */
  const socketDiff: string[] = [];
  const dispatcher = new Agent({ connections: concurrency, keepAliveTimeout: 30_000 });
  let base = '';
  let baseline = { fds: 0, sockets: 0 };
  let final = { fds: 0, sockets: 0 };
  const started = Date.now();

  try {
    await Promise.all([agents.uds.start(ready.uds), agents.grpc.start(ready.grpc)]);
    // The gateway binds the reverse listener; the reverse agent dials it (and retries until it can).
    const gatewayReady = gateway.start(/listening on http:\/\/\S+/, 60_000);
    const reverseReady = agents.reverse.start(ready.reverse, 60_000);
    const line = (await gatewayReady) as string;
    await reverseReady;
    base = (/http:\/\/\S+/.exec(line) as RegExpExecArray)[0];
    await waitFullHealth(base, 30_000);
    const gwPid = gateway.pid as number;

    // ------------------------------------------------------------ load
    let loadRunning = true;
    let i = 0;
    const routeNames = Object.keys(ROUTES);
    const note = (text: string): void => {
      if (examples.length < 5) examples.push(text);
    };
    /** One request with a client-side deadline; classifies what came back. */
    const one = async (d: Agent): Promise<void> => {
      const route = routeNames[i % routeNames.length] as string;
      const n = i++;
      stats.sent++;
      const signal = AbortSignal.timeout(deadlineMs);
      try {
        const res = await request(`${base}${route}/item-${n}`, {
          dispatcher: d,
          signal,
          headersTimeout: deadlineMs * 2,
          bodyTimeout: deadlineMs * 2,
        });
        const text = await res.body.text();
        stats.answered++;
        const key = `${route} ${res.statusCode}`;
        stats.byStatus.set(key, (stats.byStatus.get(key) ?? 0) + 1);
        const spec = ROUTES[route] as { allowed: number[] };
        if (!spec.allowed.includes(res.statusCode)) {
          stats.unexpected++;
          note(`${route}: status ${res.statusCode}: ${text.slice(0, 200)}`);
        } else if (res.statusCode === 200) {
          // An allow must carry the echo agent's stamp unless the route fails open.
          const headers = (JSON.parse(text) as { headers: Record<string, string> }).headers;
          if (headers['x-echo-agent'] === undefined) {
            if (route === '/grpc' || route === '/all') stats.failOpenAllows++;
            else {
              stats.unexpected++;
              note(`${route}: 200 without the agent's stamp`);
            }
          }
        }
      } catch (err) {
        if (signal.aborted) stats.hung++;
        else {
          stats.lost++;
          note(`${route}: no response: ${(err as Error).message}`);
        }
      }
    };
    const loops = (d: Agent, more: () => boolean): Promise<void>[] =>
      Array.from({ length: concurrency }, async () => {
        while (more()) await one(d);
      });

    // Warm-up at full concurrency, close the client connections, then take the fd baseline.
    phase = 'warm-up';
    const warmEnd = Date.now() + 2000;
    await Promise.all(loops(dispatcher, () => Date.now() < warmEnd));
    await dispatcher.close();
    baseline = await settledFds(gwPid, undefined, 10_000);
    const baselineKinds = describeSockets(gwPid);

    phase = 'load + chaos';
    const load = new Agent({ connections: concurrency, keepAliveTimeout: 30_000 });
    const endAt = Date.now() + durationMs;
    const loadLoops = loops(load, () => loadRunning);

    // ------------------------------------------------------------ chaos
    const victims = args.get('victims');
    const names = (typeof victims === 'string' ? victims.split(',') : Object.keys(agents)).filter(
      (n): n is keyof typeof agents => n in agents,
    );
    let round: (keyof typeof agents)[] = [];
    while (Date.now() < endAt) {
      const wait = Math.round(killEveryMs * (0.7 + 0.6 * rng.float()));
      if (Date.now() + wait > endAt) break;
      await sleep(wait);
      if (round.length === 0) round = rng.shuffle(names);
      const victim = round.shift() as keyof typeof agents;
      const proc = agents[victim];
      stats.restartsAttempted++;
      phase = `killing the ${victim} agent`;
      await proc.stop('SIGKILL');
      await sleep(rng.int(200, 1000));
      phase = `restarting the ${victim} agent`;
      try {
        await proc.start(ready[victim], 30_000);
        const back = await waitFullHealth(base, 30_000);
        stats.recoveryMs.push(back.ms);
        if (back.openCircuits.length > 0) stats.circuitsOpen++;
        stats.restartsSurvived++;
        if (verbose) console.log(`  ${victim} agent restarted, pool healthy again`);
      } catch (err) {
        failures.push(`restart of the ${victim} agent: ${(err as Error).message}`);
        if (!proc.running) await proc.start(ready[victim], 30_000).catch(() => undefined);
      }
    }
    while (Date.now() < endAt) await sleep(100);

    // ------------------------------------------------------------ wind down
    phase = 'wind-down';
    if (!gateway.running) failures.push('the gateway process exited during the soak');
    loadRunning = false;
    await Promise.all(loadLoops);
    await waitFullHealth(base, 30_000).catch((err: unknown) =>
      failures.push(`after the load: ${(err as Error).message}`),
    );
    await load.close();
    final = await settledFds(gwPid, baseline.fds + fdTolerance, 15_000);
    if (final.sockets !== baseline.sockets || verbose) {
      const now = describeSockets(gwPid);
      const keys = new Set([...baselineKinds.keys(), ...now.keys()]);
      for (const k of [...keys].sort()) {
        const a = baselineKinds.get(k) ?? 0;
        const b = now.get(k) ?? 0;
        if (a !== b || verbose) socketDiff.push(`${k}: ${a} → ${b}`);
      }
    }
  } catch (err) {
    failures.push(`${phase}: ${(err as Error).message}`);
  } finally {
    phase = 'shutdown';
    await dispatcher.destroy().catch(() => undefined);
    await gateway.stop('SIGTERM');
    await Promise.all(Object.values(agents).map((a) => a.stop('SIGTERM')));
    upstream.server.closeAllConnections();
    upstream.server.close();
    rmSync(dir, { recursive: true, force: true });
  }

  if (stats.lost > 0) failures.push(`${stats.lost} requests lost (no HTTP response)`);
  if (stats.hung > 0)
    failures.push(`${stats.hung} requests hit the ${deadlineMs} ms client deadline`);
  if (stats.unexpected > 0)
    failures.push(
      `${stats.unexpected} answers were neither a decision nor the route's failure mode`,
    );
  if (stats.answered === 0) failures.push('no request was answered');
  if (stats.restartsAttempted === 0) failures.push('no agent was restarted (duration too short?)');
  if (final.fds > baseline.fds + fdTolerance) {
    failures.push(
      `gateway fds ${baseline.fds} → ${final.fds} (tolerance ${fdTolerance}): leaked descriptors`,
    );
  }
  if (final.sockets > baseline.sockets + fdTolerance) {
    failures.push(
      `gateway sockets ${baseline.sockets} → ${final.sockets} (tolerance ${fdTolerance}): leaked sockets`,
    );
  }

  const rec = stats.recoveryMs;
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log('');
  console.log(`soak summary (seed ${seed})`);
  console.log(`  duration: ${durationMs / 1000}s of load + chaos (${seconds}s in all)`);
  console.log(
    `  requests: sent ${stats.sent}, answered ${stats.answered}, lost ${stats.lost}, hung ${stats.hung}, unexpected ${stats.unexpected}`,
  );
  console.log(
    `  answers: ${[...stats.byStatus.entries()]
      .sort()
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ')}; fail-open allows ${stats.failOpenAllows}`,
  );
  console.log(
    `  agent restarts survived: ${stats.restartsSurvived}/${stats.restartsAttempted}` +
      (rec.length > 0
        ? ` (back to full pool health in avg ${Math.round(rec.reduce((a, b) => a + b, 0) / rec.length)} ms, max ${Math.max(...rec)} ms)`
        : ''),
  );
  if (stats.circuitsOpen > 0) {
    console.log(
      `  circuit breaker still open after ${stats.circuitsOpen} of ${stats.restartsSurvived} recoveries ` +
        '(connections back, calls fail per the failure mode until the breaker half-opens: the pool default is 30 s)',
    );
  }
  console.log(
    `  gateway fds: ${baseline.fds} → ${final.fds}, sockets ${baseline.sockets} → ${final.sockets} (tolerance ${fdTolerance})`,
  );
  for (const d of socketDiff) console.log(`  socket kind ${d}`);
  for (const e of examples) console.log(`  e.g. ${e}`);
  if (failures.length > 0) {
    console.log(`  FAILED (${failures.length}):`);
    for (const f of failures) console.log(`    - ${f}`);
    console.log(`  gateway output (last lines):\n    ${gateway.tail(15).join('\n    ')}`);
    return 1;
  }
  console.log('  result: PASS');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`soak: ${(err as Error).stack ?? String(err)}`);
    process.exit(2);
  },
);
