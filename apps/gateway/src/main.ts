/**
 * picket gateway — command line.
 *
 *   tsx src/main.ts                      embedded default on 127.0.0.1:8080
 *   tsx src/main.ts --listen 0.0.0.0:9000
 *   tsx src/main.ts --config gateway.yaml
 *   tsx src/main.ts --demo               scripted requests, a table, exit 0 if all as expected
 *
 * Once listening it prints `picket gateway listening on http://HOST:PORT` on
 * stdout (tests parse that line; with `--listen 127.0.0.1:0` it has the real port).
 */
import { parseArgs } from 'node:util';
import { escapeForLog } from '@picket/protocol';
import { type AgentLayer, createAgentLayer } from './agents.js';
import { ConfigError, type GatewayConfig, loadConfigFile, parseListen } from './config.js';
import { runDemo } from './demo.js';
import {
  DEMO_BLOCKED_PATH,
  DEMO_BLOCKED_RANGE,
  type EmbeddedSetup,
  startEmbedded,
} from './embedded.js';
import type { ExchangeSummary } from './exchange.js';
import { type BoundAddress, Gateway, type GatewayLogger, stderrLogger } from './gateway.js';

const USAGE = `usage: picket-gateway [--listen HOST:PORT] [--config FILE] [--demo] [--quiet]

  --listen HOST:PORT  where the gateway listens (default 127.0.0.1:8080; overrides the config's)
  --config FILE       a YAML or JSON config instead of the embedded default
  --demo              start the embedded setup on a free port, send scripted requests,
                      print what each agent decided, exit 0 when every outcome is as expected
  --quiet             no access log
  --help              this text`;

function accessLine(s: ExchangeSummary): string {
  const verdicts = s.verdicts
    .filter((v) => v.event !== 'request_complete')
    .map(
      (v) =>
        `${v.agent}:${v.event.replace('request_', 'req_').replace('response_', 'resp_')}=${v.decision}`,
    )
    .join(' ');
  return `${s.method} ${s.uri} ${s.status} ${s.outcome} route=${s.route ?? '-'} ${s.durationMs.toFixed(1)}ms ${verdicts}`.trimEnd();
}

function urlOf(a: BoundAddress): string {
  const host = a.host.includes(':') ? `[${a.host}]` : a.host;
  return `http://${host}:${a.port}`;
}

/** Ready-to-paste commands with their comments lined up. */
function tryLines(base: string, admin: string): string {
  const rows: [string, string][] = [
    [`curl -i ${base}/api/items`, 'allowed: the upstream echoes what it got'],
    [`curl -i ${base}/admin/secret`, 'blocked path: 403 "Forbidden path"'],
    [
      `curl -i -H 'x-forwarded-for: 203.0.113.7' ${base}/api/items`,
      'blocked IP: 403 "Forbidden IP"',
    ],
    [`curl -i -d 'my secret note' ${base}/api/notes`, 'body rewritten by the inspector'],
    [`curl -i -d 'x; DROP TABLE users' ${base}/api/query`, 'body blocked: 403'],
    [`curl -s ${admin}/metrics`, 'Prometheus metrics (gateway + pool)'],
    [`curl -s ${admin}/healthz`, 'per-agent health'],
  ];
  const w = Math.max(...rows.map(([c]) => c.length));
  return rows.map(([c, why]) => `  ${c.padEnd(w)}  # ${why}`).join('\n');
}

function banner(base: string, gw: Gateway, setup: EmbeddedSetup): string {
  const p = gw.config.admin.prefix;
  const admin = gw.adminAddress ? urlOf(gw.adminAddress) : `${base}${p}`;
  return `
picket gateway — embedded demo setup
  upstream   echo HTTP server            ${setup.upstream.url}
  agent      denylist   (UDS)            ${setup.endpoints.denylist}
             blocks paths ${DEMO_BLOCKED_PATH}*, client IPs ${DEMO_BLOCKED_RANGE}
  agent      echo       (gRPC)           ${setup.endpoints.echo}
             stamps X-Echo-* request and response headers (fail-open)
  agent      inspector  (reverse conn.)  ${setup.endpoints.inspector}
             stamps x-inspected-by, redacts "secret" in bodies, blocks "DROP TABLE"
  routes     /api → denylist, inspector, echo      / → denylist, echo
  demo mode  the client IP is taken from x-forwarded-for (never do that in production)

try:
${tryLines(base, admin)}
`;
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({
      // `pnpm start -- --demo` passes the `--` through
      args: process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--')),
      options: {
        listen: { type: 'string' },
        config: { type: 'string' },
        demo: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    });
  try {
    args = parse();
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const o = args.values;
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  if (o.demo && o.config) {
    console.error('--demo runs the embedded setup; it cannot be combined with --config');
    return 2;
  }
  if (o.listen !== undefined) {
    try {
      parseListen(o.listen);
    } catch (e) {
      console.error(`--listen: ${(e as Error).message}`);
      return 2;
    }
  }

  const log: GatewayLogger = o.demo ? { ...stderrLogger, info: () => {} } : stderrLogger;
  let config: GatewayConfig;
  let agents: AgentLayer;
  let setup: EmbeddedSetup | undefined;
  try {
    if (o.config) {
      config = loadConfigFile(o.config);
      if (o.listen !== undefined) config = { ...config, listen: o.listen };
      agents = await createAgentLayer(config, log);
    } else {
      setup = await startEmbedded(o.demo ? '127.0.0.1:0' : (o.listen ?? '127.0.0.1:8080'), log);
      config = setup.config;
      agents = setup.agents;
    }
  } catch (e) {
    console.error(e instanceof ConfigError ? e.message : `cannot start: ${(e as Error).message}`);
    return 1;
  }

  const gateway = new Gateway(config, {
    pool: agents.pool,
    agentTransports: agents.transports,
    logger: log,
  });
  let bound: BoundAddress;
  try {
    bound = await gateway.listen();
  } catch (e) {
    console.error(`cannot listen on ${config.listen}: ${(e as Error).message}`);
    await (setup ? setup.close() : agents.close());
    return 1;
  }
  const base = urlOf(bound);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await gateway.close();
      await (setup ? setup.close() : agents.close());
    })();
    return stopping;
  };

  if (o.demo) {
    console.log(`picket gateway listening on ${base}`);
    console.log('picket gateway demo: scripted requests through the embedded setup\n');
    const wrong = await runDemo(gateway, base, [...config.agents.keys()]);
    await stop();
    if (wrong > 0) {
      console.error(`\ndemo: ${wrong} outcome(s) were not the expected ones`);
      return 1;
    }
    console.log('\ndemo: every outcome as expected');
    return 0;
  }

  console.log(`picket gateway listening on ${base}`);
  if (gateway.adminAddress) console.log(`picket gateway admin on ${urlOf(gateway.adminAddress)}`);
  if (setup) console.log(banner(base, gateway, setup));
  if (!o.quiet) gateway.on('exchange', (s) => console.log(escapeForLog(accessLine(s))));
  await new Promise<void>((resolve) => {
    const onSignal = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  await stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
