/**
 * picket gateway — command line.
 *
 *   tsx src/main.ts                      embedded default on 127.0.0.1:8080
 *   tsx src/main.ts --listen 0.0.0.0:9000
 *   tsx src/main.ts --config gateway.yaml
 *   tsx src/main.ts --demo               scripted requests, a table, exit 0 if all as expected
 *
 * The listen address is tried before any agent starts, so a port in use is reported at once.
 * SIGINT/SIGTERM print "stopping…", close listeners and agents (the embedded setup removes
 * its temp dir), print "stopped" and exit 0.
 *
 * Once listening it prints `picket gateway listening on http://HOST:PORT` on
 * stdout (tests parse that line; with `--listen 127.0.0.1:0` it has the real port).
 */
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { ExchangeSummary } from '@picket/http';
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
import { type BoundAddress, Gateway, type GatewayLogger, stderrLogger } from './gateway.js';

const USAGE = `usage: picket-gateway [--listen HOST:PORT] [--config FILE] [--demo] [--quiet]

  --listen HOST:PORT  where the gateway listens (default 127.0.0.1:8080; overrides the config's)
  --config FILE       a YAML or JSON config instead of the embedded default (a relative
                      path is taken from the directory the command was run in)
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

/** Binds and releases `address`: a busy port is reported before any agent is started. */
function tryListen(address: string): Promise<NodeJS.ErrnoException | undefined> {
  const { host, port } = parseListen(address);
  const probe = createServer();
  return new Promise((done) => {
    probe.once('error', done);
    probe.listen(port, host, () => probe.close(() => done(undefined)));
  });
}

/** "cannot listen on …" with the reason in words and what to do instead. */
function listenError(address: string, e: NodeJS.ErrnoException, hint: string): string {
  const why =
    e.code === 'EADDRINUSE'
      ? 'the port is already in use (EADDRINUSE)'
      : e.code === 'EACCES'
        ? 'permission denied (EACCES; ports below 1024 need privileges)'
        : e.code === 'EADDRNOTAVAIL'
          ? 'no such address on this machine (EADDRNOTAVAIL)'
          : e.message;
  return `cannot listen on ${address}: ${why}\n${hint}`;
}

const LISTEN_HINT =
  'use another address with --listen HOST:PORT, e.g. `pnpm start -- --listen 127.0.0.1:8081`' +
  ' (`--listen 127.0.0.1:0` picks a free port)';

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

  // Ctrl-C / SIGTERM stop the gateway cleanly at any point. Under `pnpm start` one Ctrl-C
  // arrives twice (from the terminal, and forwarded by pnpm): repeats are ignored, not fatal.
  let interrupted = false;
  // a signal while supervised agents start stops them (the wait for ready can be long)
  const starting = new AbortController();
  /** the longest stop of an agent process (2 × stop_grace_ms + 1 s), once a config is loaded */
  let stopBoundMs = 0;
  let onInterrupt = () => {};
  const interruption = new Promise<void>((r) => {
    onInterrupt = r;
  });
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    starting.abort();
    console.log('picket gateway stopping…');
    // a hang guard: the embedded setup's exit hook still removes its temp dir. Agent
    // processes get their whole stop bound first (they are in their own process groups:
    // exiting before they are stopped would orphan them)
    const guardMs = Math.max(10_000, stopBoundMs + 3_000);
    setTimeout(() => {
      console.error(`picket gateway: still stopping after ${guardMs / 1000} s; exiting`);
      process.exit(1);
    }, guardMs).unref();
    onInterrupt();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const log: GatewayLogger = o.demo ? { ...stderrLogger, info: () => {} } : stderrLogger;
  let config: GatewayConfig;
  let agents: AgentLayer;
  let setup: EmbeddedSetup | undefined;
  try {
    if (o.config) {
      // pnpm runs a script inside its package folder; INIT_CWD is where the user ran it
      const file = resolve(process.env.INIT_CWD ?? process.cwd(), o.config);
      config = loadConfigFile(file);
      if (o.listen !== undefined) config = { ...config, listen: o.listen };
      for (const a of config.agents.values()) {
        if (a.process) stopBoundMs = Math.max(stopBoundMs, 2 * a.process.stopGraceMs + 1_000);
      }
      const listens: [string, string][] = [
        [
          config.listen,
          o.listen !== undefined ? LISTEN_HINT : `${LISTEN_HINT}, or change listen in ${file}`,
        ],
      ];
      if (config.admin.listen)
        listens.push([config.admin.listen, `change admin.listen in ${file}`]);
      for (const [address, hint] of listens) {
        const e = await tryListen(address);
        if (e) {
          console.error(listenError(address, e, hint));
          return 1;
        }
      }
      agents = await createAgentLayer(config, log, starting.signal);
    } else {
      const listen = o.demo ? '127.0.0.1:0' : (o.listen ?? '127.0.0.1:8080');
      const e = await tryListen(listen);
      if (e) {
        console.error(listenError(listen, e, LISTEN_HINT));
        return 1;
      }
      setup = await startEmbedded(listen, log);
      config = setup.config;
      agents = setup.agents;
    }
  } catch (e) {
    if (interrupted && !(e instanceof ConfigError)) {
      console.log('picket gateway stopped');
      return 0;
    }
    console.error(e instanceof ConfigError ? e.message : `cannot start: ${(e as Error).message}`);
    return 1;
  }
  if (interrupted) {
    await (setup ? setup.close() : agents.close());
    console.log('picket gateway stopped');
    return 0;
  }

  const gateway = new Gateway(config, {
    pool: agents.pool,
    agentTransports: agents.transports,
    processes: agents.processes,
    logger: log,
  });
  let bound: BoundAddress;
  try {
    bound = await gateway.listen();
  } catch (e) {
    console.error(listenError(config.listen, e as NodeJS.ErrnoException, LISTEN_HINT));
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
  await interruption;
  await stop();
  console.log('picket gateway stopped');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
