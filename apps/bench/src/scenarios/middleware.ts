import { measure, measureVariants } from '../harness.js';
import type { Aggregate } from '../stats.js';
import { type BenchConfig, type Scenario, skippedScenario } from '../types.js';
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

const ID = 'middleware';
const INFLIGHT = 32;
/** AgentPool connections to the agent (the gateway scenario's `connections: 2`) */
const AGENT_CONNECTIONS = 2;
const EP = new URL('../endpoints-middleware.ts', import.meta.url).href;
const GATEWAY = new URL('./gateway.ts', import.meta.url).href;
const VARIANTS = [
  { key: 'plain', label: 'plain node:http handler' },
  { key: 'none', label: 'wrapListener, no agents' },
  { key: 'one', label: 'wrapListener + 1 UDS EchoAgent' },
] as const;

const DESCRIPTION =
  `HTTP/1.1 keep-alive GETs with 15 browser-like headers, ${INFLIGHT} in flight over ` +
  `${INFLIGHT} connections (the gateway scenario's undici load generator, its own ` +
  'process) to three node:http servers in one server process, all answering the same ' +
  '~200-byte JSON: the plain handler; the handler wrapped by `wrapListener` of ' +
  '@picket/http with `agents: []` (the exchange engine: request hygiene, ids, the ' +
  'response phase); and wrapped with one agent on request headers (fail-closed, 5 s) — ' +
  '`UdsAgentServerV2(EchoAgent)` in a third process, reached through an `AgentPool` ' +
  `with ${AGENT_CONNECTIONS} msgpack connections. "server" CPU is the HTTP server ` +
  "process (the agent's CPU is not in it).";

/**
 * Scenario 11: @picket/http's node:http adapter ([6/9]) — the same small handler plain and
 * wrapped by `wrapListener` with no agents and with one UDS agent.
 */
export const middlewareScenario: Scenario = {
  id: ID,
  title: 'HTTP middleware: wrapListener with no agents and one UDS agent vs a plain handler',
  async run(config: BenchConfig) {
    const missing = await packageAvailable('@picket/http');
    if (missing !== undefined) {
      return {
        ...skippedScenario(ID, middlewareScenario.title, DESCRIPTION, '', missing),
        targets: [],
      };
    }
    const [agent, server, load] = await startWorkers(config, [
      `${ID}-agent`,
      `${ID}-server`,
      `${ID}-load`,
    ]);
    if (agent === undefined || server === undefined || load === undefined) {
      throw new Error('workers did not start');
    }
    try {
      const agentPath = socketPath(config, 'middleware-agent');
      await agent.create(ENDPOINTS, 'udsAgentServer', { path: agentPath });
      const { info: origins } = await server.create<Record<string, string>>(
        EP,
        'middlewareServers',
        { agentPath, connections: AGENT_CONNECTIONS },
      );
      const handles = new Map<string, number>();
      for (const v of VARIANTS) {
        const h = await load.create(GATEWAY, 'httpLoad', {
          origin: origins[v.key],
          path: '/api/items',
          connections: INFLIGHT,
        });
        handles.set(v.key, h.handle);
      }
      const opts = loadOptions(config, INFLIGHT);
      // one unmeasured round: each server is JIT-compiled during its first moments of load
      for (const v of VARIANTS) await load.run(handles.get(v.key) as number, opts);
      const aggs = await measureVariants(
        VARIANTS.map((v) => ({
          key: v.key,
          run: () => measure(load, handles.get(v.key) as number, opts, server),
        })),
        config.reps,
        sampleLogger(config, ID),
      );
      const agg = (key: string) => aggs.get(key) as Aggregate;
      const base = { name: VARIANTS[0].label, agg: agg('plain') };
      return {
        id: ID,
        title: middlewareScenario.title,
        description: DESCRIPTION,
        rows: VARIANTS.map((v) => aggregateRow(ID, v.label, agg(v.key), base)),
        targets: [],
        charts: [
          {
            id: 'middleware',
            title: `node:http with @picket/http, ${INFLIGHT} in flight (HTTP req/s)`,
            unit: 'req/s',
            bars: VARIANTS.map((v) => ({
              label: v.label,
              value: agg(v.key).opsPerSec,
              baseline: v.key === 'plain',
            })),
          },
        ],
        notes: [],
      };
    } finally {
      await stopWorkers([load, server, agent]);
    }
  },
};
