import { measure, measureVariants } from '../harness.js';
import { type Aggregate, pairedRatio } from '../stats.js';
import { type BenchConfig, type Scenario, target } from '../types.js';
import {
  aggregateRow,
  ENDPOINTS,
  loadOptions,
  sampleLogger,
  socketPath,
  startWorkers,
  stopWorkers,
} from './common.js';

const ID = 'pool';
const CONNECTIONS = 4;
const INFLIGHT = 128;
const ENCODING = 'msgpack';

/**
 * Scenario 4: `AgentPool` with 4 UDS connections vs the same request-headers
 * calls spread round-robin over 4 direct `AgentClientV2Uds` connections.
 */
export const poolScenario: Scenario = {
  id: ID,
  title: 'Pool overhead: AgentPool vs direct transports (4 connections)',
  async run(config: BenchConfig) {
    const [server, load] = await startWorkers(config, [`${ID}-server`, `${ID}-load`], {
      serverAndLoad: true,
    });
    if (server === undefined || load === undefined) throw new Error('workers did not start');
    try {
      const path = socketPath(config, 'pool-agent');
      await server.create(ENDPOINTS, 'udsAgentServer', { path });
      const args = { path, encoding: ENCODING, connections: CONNECTIONS };
      const direct = await load.create(ENDPOINTS, 'directClients', args);
      const pool = await load.create(ENDPOINTS, 'poolClient', args);
      const opts = loadOptions(config, INFLIGHT);
      const aggs = await measureVariants(
        [
          { key: 'direct', run: () => measure(load, direct.handle, opts, server) },
          { key: 'pool', run: () => measure(load, pool.handle, opts, server) },
        ],
        config.reps,
        sampleLogger(config, ID),
      );
      const base = {
        name: `${CONNECTIONS} direct connections @${INFLIGHT}`,
        agg: aggs.get('direct') as Aggregate,
      };
      const poolAgg = aggs.get('pool') as Aggregate;
      const ratio = pairedRatio(poolAgg.runs, base.agg.runs);
      return {
        id: ID,
        title: poolScenario.title,
        description:
          `${INFLIGHT} request-headers calls in flight (${ENCODING}) against one ` +
          '`UdsAgentServerV2(EchoAgent)` process. Baseline: 4 `AgentClientV2Uds` connections ' +
          'used round-robin by the load generator itself. Pool: `AgentPool` (round_robin, 4 ' +
          'connections, circuit breaker and latency stats on, health probes off) with ' +
          '`clearAffinity` after each call, as a proxy does when a request ends.',
        rows: [
          aggregateRow(ID, base.name, base.agg, base),
          aggregateRow(ID, `AgentPool, ${CONNECTIONS} connections @${INFLIGHT}`, poolAgg, base),
        ],
        targets: [
          target(ID, 'AgentPool vs direct transports (≤ 5 % slower)', ratio, '>=', 0.95, 'ratio'),
        ],
        charts: [
          {
            id: 'pool',
            title: `Pool overhead, ${INFLIGHT} in flight over 4 connections (req/s)`,
            unit: 'req/s',
            bars: [
              { label: 'direct round-robin', value: base.agg.opsPerSec, baseline: true },
              { label: 'AgentPool', value: poolAgg.opsPerSec },
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
