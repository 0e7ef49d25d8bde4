import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CpuProbe, measure, measureVariants, processCpuProbe } from '../harness.js';
import { type Aggregate, pairedRatio } from '../stats.js';
import type { BenchConfig, Row, Scenario } from '../types.js';
import { skippedTarget, target } from '../types.js';
import type { Hosted } from '../worker.js';
import { aggregateRow, loadOptions, sampleLogger, startWorkers, stopWorkers } from './common.js';
import { haproxyBinary, startHaproxy } from './proxies.js';

const ID = 'gateway';
const INFLIGHT = 32;
const SELF = new URL('./gateway.ts', import.meta.url).href;
const PROXIES = new URL('./proxies.ts', import.meta.url).href;
const GATEWAY_DIR = fileURLToPath(new URL('../../../gateway/', import.meta.url));
const GATEWAY_MAIN = join(GATEWAY_DIR, 'src', 'main.ts');

/** What a browser sends for an API call (15 headers). */
const REQUEST_HEADERS: Record<string, string> = {
  'user-agent':
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0',
  accept: 'application/json, text/plain, */*',
  'accept-language': 'en-GB,en;q=0.9',
  'accept-encoding': 'gzip, deflate, br',
  referer: 'https://shop.example.com/catalog/shoes',
  cookie: 'session=6f1c2e9a8b7d4c3e; cart=3; theme=dark',
  'x-requested-with': 'XMLHttpRequest',
  'sec-ch-ua': '"Chromium";v="126", "Not.A/Brand";v="24"',
  'sec-ch-ua-mobile': '?0',
  'sec-ch-ua-platform': '"Linux"',
  'sec-fetch-dest': 'empty',
  'sec-fetch-mode': 'cors',
  'sec-fetch-site': 'same-origin',
  'cache-control': 'no-cache',
  authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2ln',
};

/** Agent worker: the upstream origin and two UDS echo agents. */
export async function gatewayBackends(args: { dir: string }): Promise<Hosted> {
  const http = await import('node:http');
  const { EchoAgent } = await import('@picket/agents');
  const { UdsAgentServerV2, silentLogger } = await import('@picket/uds');
  const body = JSON.stringify({
    items: Array.from({ length: 8 }, (_, i) => ({ id: i, name: `item ${i}` })),
  });
  const upstream = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    });
  });
  upstream.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = (upstream.address() as { port: number }).port;
  const agents = ['echo-1', 'echo-2'].map(
    (id) =>
      new UdsAgentServerV2(join(args.dir, `${id}.sock`), new EchoAgent({ agentId: id }), {
        logger: silentLogger,
      }),
  );
  for (const a of agents) await a.listen();
  return {
    info: {
      upstream: `http://127.0.0.1:${port}`,
      agents: ['echo-1', 'echo-2'].map((id) => join(args.dir, `${id}.sock`)),
    },
    close: async () => {
      await Promise.all(agents.map((a) => a.close({ drainTimeoutMs: 200 })));
      upstream.closeAllConnections();
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    },
  };
}

/** Load worker: keep-alive HTTP/1.1 client (undici Pool) to one gateway path. */
export async function httpLoad(args: {
  origin: string;
  path: string;
  connections: number;
}): Promise<Hosted> {
  const { Pool } = await import('undici');
  const pool = new Pool(args.origin, { connections: args.connections, pipelining: 1 });
  return {
    call: async (seq: number) => {
      const res = await pool.request({
        path: `${args.path}?page=${seq & 7}`,
        method: 'GET',
        headers: REQUEST_HEADERS,
      });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode} for ${args.path}`);
    },
    close: () => pool.close(),
  };
}

/** Starts the gateway app as its own process; resolves with its origin once it is listening. */
function startGateway(
  config: BenchConfig,
  configFile: string,
): Promise<{ child: ChildProcess; origin: string }> {
  const execArgv = ['--import', 'tsx'];
  if (config.profileDir !== undefined) {
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${join(config.profileDir, `${ID}-gateway`)}`);
  }
  const child = spawn(
    process.execPath,
    [...execArgv, GATEWAY_MAIN, '--config', configFile, '--listen', '127.0.0.1:0', '--quiet'],
    { cwd: GATEWAY_DIR, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway did not start within 60 s: ${err.trim().slice(-500)}`));
    }, 60_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve({ child, origin: m[1] });
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code}) before listening: ${err.trim().slice(-500)}`));
    });
  });
}

async function stopGateway(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

const GATEWAY_VARIANTS = [
  { key: 'none', path: '/none/api/items', label: 'gateway, no agents' },
  { key: 'one', path: '/one/api/items', label: 'gateway + 1 UDS agent' },
  { key: 'two', path: '/two/api/items', label: 'gateway + 2-agent chain' },
] as const;
const PLAIN_LABEL = 'plain Node proxy (node:http + undici)';
const HAPROXY_LABEL = 'HAProxy (1 thread)';

/** One measured target of the scenario: where the load goes and whose CPU is the "server". */
interface Target {
  key: string;
  label: string;
  origin: string;
  path: string;
  probe: CpuProbe;
}

/** Scenario 6: HTTP through the gateway app with no agent, one UDS agent and a two-agent chain. */
export const gatewayScenario: Scenario = {
  id: ID,
  title: 'Gateway end to end vs a plain Node proxy: no agents, one UDS agent, a two-agent chain',
  async run(config: BenchConfig) {
    const description =
      `HTTP/1.1 keep-alive GETs with 15 browser-like headers, ${INFLIGHT} in flight over ` +
      `${INFLIGHT} connections, from a load process to the gateway app (\`apps/gateway\`, its own ` +
      'process, started with a JSON config and `--quiet`), which proxies to a small JSON origin. ' +
      'The origin and two `UdsAgentServerV2(EchoAgent)` agents live in a third process. Routes: ' +
      '`/none` (no agents), `/one` (echo-1 on request headers), `/two` (echo-1 then echo-2). ' +
      'The gateway talks to agents through its `AgentPool` with 2 connections each, offering ' +
      'msgpack then JSON (the agents pick msgpack). Baseline: a plain Node proxy in its own ' +
      'process (node:http in, an undici Pool out, `pipeline` for the body, hop-by-hop headers ' +
      'dropped, no other feature) on the same origin; plus HAProxy with one thread when ' +
      '`haproxy` is on PATH. "server" CPU is the proxy process of each row.';
    if (!existsSync(GATEWAY_MAIN)) {
      const why = 'apps/gateway not built';
      return {
        id: ID,
        title: gatewayScenario.title,
        description,
        rows: [
          { scenario: ID, name: '(all)', baseline: '', value: Number.NaN, unit: '', skipped: why },
        ],
        targets: [skippedTarget(ID, 'one UDS agent ≥ 0.6 × no agents', why)],
        charts: [],
        notes: [],
      };
    }
    const [backends, load, plain] = await startWorkers(config, [
      `${ID}-agents`,
      `${ID}-load`,
      `${ID}-plain-proxy`,
    ]);
    if (backends === undefined || load === undefined || plain === undefined) {
      throw new Error('workers did not start');
    }
    let gateway: ChildProcess | undefined;
    let haproxy: ChildProcess | undefined;
    try {
      const { info } = await backends.create<{ upstream: string; agents: string[] }>(
        SELF,
        'gatewayBackends',
        { dir: config.tmpDir },
      );
      const agent = (endpoint: string) => ({
        endpoint: `unix:${endpoint}`,
        events: ['request_headers'],
        timeout_ms: 5_000,
        failure_mode: 'closed',
        connections: 2,
      });
      const gatewayConfig = {
        listen: '127.0.0.1:0',
        upstreams: { origin: { url: info.upstream, timeout_ms: 10_000 } },
        agents: {
          'echo-1': agent(info.agents[0] as string),
          'echo-2': agent(info.agents[1] as string),
        },
        routes: [
          { name: 'none', path_prefix: '/none', upstream: 'origin', agents: [] },
          { name: 'one', path_prefix: '/one', upstream: 'origin', agents: ['echo-1'] },
          { name: 'two', path_prefix: '/two', upstream: 'origin', agents: ['echo-1', 'echo-2'] },
        ],
      };
      const configFile = join(config.tmpDir, 'gateway.json');
      writeFileSync(configFile, JSON.stringify(gatewayConfig, null, 2));
      let origin: string;
      try {
        ({ child: gateway, origin } = await startGateway(config, configFile));
      } catch (err) {
        const why = `apps/gateway did not start: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
        return {
          id: ID,
          title: gatewayScenario.title,
          description,
          rows: [
            {
              scenario: ID,
              name: '(all)',
              baseline: '',
              value: Number.NaN,
              unit: '',
              skipped: why,
            },
          ],
          targets: [skippedTarget(ID, 'one UDS agent ≥ 0.6 × no agents', why)],
          charts: [],
          notes: [],
        };
      }
      const gatewayProbe = processCpuProbe(gateway.pid as number);
      // The plain proxy gets its own worker process, so its CPU is measured like the gateway's.
      const { info: plainInfo } = await plain.create<{ origin: string }>(PROXIES, 'plainProxy', {
        upstream: info.upstream,
        connections: INFLIGHT,
      });
      const targets: Target[] = [
        {
          key: 'plain',
          label: PLAIN_LABEL,
          origin: plainInfo.origin,
          path: '/api/items',
          probe: plain,
        },
        ...GATEWAY_VARIANTS.map((v) => ({ ...v, origin, probe: gatewayProbe })),
      ];
      const binary = haproxyBinary();
      let haproxySkipped: string | undefined = 'haproxy is not on PATH';
      if (binary !== undefined) {
        try {
          const started = await startHaproxy(binary, info.upstream, config.tmpDir);
          haproxy = started.child;
          haproxySkipped = undefined;
          targets.push({
            key: 'haproxy',
            label: HAPROXY_LABEL,
            origin: started.origin,
            path: '/api/items',
            probe: processCpuProbe(started.child.pid as number),
          });
        } catch (err) {
          haproxySkipped = `haproxy did not start: ${err instanceof Error ? err.message : String(err)}`;
        }
      }
      const handles = new Map<string, number>();
      for (const t of targets) {
        const h = await load.create(SELF, 'httpLoad', {
          origin: t.origin,
          path: t.path,
          connections: INFLIGHT,
        });
        handles.set(t.key, h.handle);
      }
      // Every proxy here is JIT-compiled during its first second of load: the --quick windows
      // (150 ms warmup) would compare warm-up phases, so this scenario keeps a 1 s floor.
      const opts = {
        ...loadOptions(config, INFLIGHT),
        warmupMs: Math.max(config.warmupMs, 1_000),
        durationMs: Math.max(config.durationMs, 1_000),
      };
      // One unmeasured round first: each proxy process is still being JIT-compiled for a
      // second or more under load, which would otherwise land in whichever repetition ran first.
      for (const t of targets) await load.run(handles.get(t.key) as number, opts);
      const aggs = await measureVariants(
        targets.map((t) => ({
          key: t.key,
          run: () => measure(load, handles.get(t.key) as number, opts, t.probe),
        })),
        config.reps,
        sampleLogger(config, ID),
      );
      const agg = (key: string) => aggs.get(key) as Aggregate;
      const base = { name: PLAIN_LABEL, agg: agg('plain') };
      const rows: Row[] = targets.map((t) => aggregateRow(ID, t.label, agg(t.key), base));
      if (haproxySkipped !== undefined) {
        rows.push({
          scenario: ID,
          name: HAPROXY_LABEL,
          baseline: PLAIN_LABEL,
          value: Number.NaN,
          unit: '',
          skipped: haproxySkipped,
        });
      }
      const none = agg('none');
      const one = agg('one');
      const loadCpu = targets
        .map((t) => `${t.label} ${agg(t.key).clientCpuUs?.toFixed(1) ?? '?'}`)
        .join(', ');
      return {
        id: ID,
        title: gatewayScenario.title,
        description,
        rows,
        targets: [
          target(
            ID,
            'gateway, no agents vs the plain Node proxy',
            pairedRatio(none.runs, base.agg.runs),
            '>=',
            0.8,
            'ratio',
          ),
          target(
            ID,
            'gateway + one UDS agent vs the plain Node proxy',
            pairedRatio(one.runs, base.agg.runs),
            '>=',
            0.6,
            'ratio',
          ),
          target(
            ID,
            'gateway with one UDS agent vs no agents',
            pairedRatio(one.runs, none.runs),
            '>=',
            0.6,
            'ratio',
          ),
        ],
        charts: [
          {
            id: 'gateway',
            title: `Gateway end to end, ${INFLIGHT} in flight (HTTP req/s)`,
            unit: 'req/s',
            bars: targets.map((t) => ({
              label: t.label,
              value: agg(t.key).opsPerSec,
              baseline: t.key === 'plain',
            })),
            reference: { value: base.agg.opsPerSec * 0.8, label: 'target 0.8× plain' },
          },
        ],
        notes: [
          `Load generator CPU per request (µs, one undici Pool in its own process): ${loadCpu}. ` +
            "When a row's load CPU × its req/s approaches 1 s/s, the load process and not the " +
            'proxy limits that row.',
          ...(haproxySkipped === undefined ? [] : [`HAProxy row skipped: ${haproxySkipped}.`]),
        ],
      };
    } finally {
      await stopWorkers([load]);
      await stopGateway(gateway);
      await stopGateway(haproxy);
      await stopWorkers([plain]);
      await stopWorkers([backends]);
    }
  },
};
