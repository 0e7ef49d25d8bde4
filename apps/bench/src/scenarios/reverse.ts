import { measure, measureVariants } from '../harness.js';
import { type Aggregate, pairedRatio } from '../stats.js';
import type { BenchConfig, Scenario } from '../types.js';
import { skippedScenario, target } from '../types.js';
import type { Hosted } from '../worker.js';
import {
  aggregateRow,
  ENDPOINTS,
  loadOptions,
  packageAvailable,
  sampleLogger,
  socketPath,
  startWorkers,
  stopWorkers,
} from './common.js';

const ID = 'reverse';
const INFLIGHT = 128;
const SELF = new URL('./reverse.ts', import.meta.url).href;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** Load worker (proxy side): a `ReverseConnectionListener` on a Unix socket; calls go to the first registered connection. */
export async function reverseListener(args: { path: string }): Promise<Hosted> {
  const { ReverseConnectionListener } = await import('@picket/reverse');
  const { eventCall } = await import('../endpoints.js');
  const listener = await ReverseConnectionListener.bindUds(args.path, {
    logger: quiet,
    requestTimeout: 10_000,
  });
  let connection: import('@picket/reverse').ReverseConnection | undefined;
  const registered = new Promise<void>((resolve) => {
    listener.on('connection', (c) => {
      connection ??= c;
      resolve();
    });
  });
  const send = eventCall('headers', 'rev-');
  return {
    info: { path: args.path },
    waitConnection: async () => {
      await registered;
      return connection?.encoding;
    },
    call: (seq: number) => {
      if (connection === undefined) return Promise.reject(new Error('no reverse connection yet'));
      return send(connection, seq);
    },
    close: () => listener.close(),
  };
}

/** Server worker (agent side): `connectReverse` serving the EchoAgent over one connection. */
export async function reverseAgent(args: { path: string }): Promise<Hosted> {
  const { connectReverse } = await import('@picket/reverse');
  const { EchoAgent } = await import('@picket/agents');
  const agent = connectReverse({
    endpoint: `unix:${args.path}`,
    agentId: 'echo',
    handler: new EchoAgent(),
    connections: 1,
    logger: quiet,
  });
  await agent.ready({ timeoutMs: 10_000 });
  return { close: () => agent.stop({ drainTimeoutMs: 200 }) };
}

/** Scenario 3: a reverse connection (the agent dials the proxy) vs a plain UDS connection, same agent. */
export const reverseScenario: Scenario = {
  id: ID,
  title: 'Reverse connection vs plain UDS with the same agent',
  async run(config: BenchConfig) {
    const description =
      `${INFLIGHT} request-headers calls in flight, one connection each way. Reverse: the agent ` +
      'process dials the proxy process with `connectReverse` and registers (frame 0x01/0x02); ' +
      'the proxy side calls through the registered `ReverseConnection`. Reverse connections ' +
      'speak JSON only (spec §3: no encoding negotiation), so the baseline is a plain ' +
      '`AgentClientV2Uds` → `UdsAgentServerV2` connection with JSON, to the same EchoAgent ' +
      'code in the same agent process.';
    const missing = await packageAvailable('@picket/reverse');
    if (missing !== undefined) {
      return skippedScenario(
        ID,
        reverseScenario.title,
        description,
        'reverse ≥ 0.9 × plain UDS',
        missing,
      );
    }
    const [server, load] = await startWorkers(config, [`${ID}-server`, `${ID}-load`], {
      serverAndLoad: true,
    });
    if (server === undefined || load === undefined) throw new Error('workers did not start');
    try {
      const udsPath = socketPath(config, 'reverse-plain');
      const listenPath = socketPath(config, 'reverse-listener');
      await server.create(ENDPOINTS, 'udsAgentServer', { path: udsPath });
      const plain = await load.create(ENDPOINTS, 'udsClient', { path: udsPath, encoding: 'json' });
      const rev = await load.create(SELF, 'reverseListener', { path: listenPath });
      await server.create(SELF, 'reverseAgent', { path: listenPath });
      const encoding = await load.invoke<string>(rev.handle, 'waitConnection');
      const opts = loadOptions(config, INFLIGHT);
      const aggs = await measureVariants(
        [
          { key: 'plain', run: () => measure(load, plain.handle, opts, server) },
          { key: 'reverse', run: () => measure(load, rev.handle, opts, server) },
        ],
        config.reps,
        sampleLogger(config, ID),
      );
      const base = { name: `plain UDS json @${INFLIGHT}`, agg: aggs.get('plain') as Aggregate };
      const r = aggs.get('reverse') as Aggregate;
      return {
        id: ID,
        title: reverseScenario.title,
        description,
        rows: [
          aggregateRow(ID, base.name, base.agg, base),
          { ...aggregateRow(ID, `reverse UDS ${encoding} @${INFLIGHT}`, r, base) },
        ],
        targets: [
          target(
            ID,
            'reverse connection vs plain UDS',
            pairedRatio(r.runs, base.agg.runs),
            '>=',
            0.9,
            'ratio',
          ),
        ],
        charts: [
          {
            id: 'reverse',
            title: `Reverse vs plain UDS, ${INFLIGHT} in flight (req/s)`,
            unit: 'req/s',
            bars: [
              { label: 'plain UDS (json)', value: base.agg.opsPerSec, baseline: true },
              { label: 'reverse connection', value: r.opsPerSec },
            ],
          },
        ],
        notes: [],
      };
    } finally {
      await stopWorkers([load, server]);
    }
  },
};
