import { measure, measureVariants, processCpuProbe, type Variant } from '../harness.js';
import type { Aggregate } from '../stats.js';
import { type BenchConfig, type Row, type Scenario, skippedScenario } from '../types.js';
import {
  aggregateRow,
  loadOptions,
  packageAvailable,
  sampleLogger,
  socketPath,
  startWorkers,
  stopWorkers,
} from './common.js';

const ID = 'prox';
const INFLIGHT = [1, 16] as const;
/** hook connections of both clients: one per call in flight, as prox's pool opens them */
const CONNECTIONS = 16;
const EP = new URL('../endpoints-prox.ts', import.meta.url).href;
const RAW = 'raw [u32][msgpack] echo';
const PROX = 'prox on_request → EchoAgent plugin';

const DESCRIPTION =
  'The load process runs `ProxPluginTransport` (the prox host: supervisor, control lines, ' +
  `a pool of up to ${CONNECTIONS} hook connections with one call per connection at a ` +
  "time) and sends the bench's RequestHeaders event (20 headers) with a fresh " +
  'correlation id per call; the host maps it to `on_request` and the plugin — its own ' +
  'process (`src/prox-plugin.ts`), `serveAgentAsProxPlugin(new EchoAgent())` — maps it ' +
  'back to a picket event, runs the agent and answers an `AuthorizeResult`. The baseline ' +
  'sends the same `[u32 BE length][msgpack]` envelope bytes to a raw Unix-socket echo ' +
  `(another process) over ${CONNECTIONS} connections, one request per connection at a ` +
  'time, so the ratio is what picket adds, not what prox\'s protocol costs. "server" CPU ' +
  'is the plugin process (prox rows) or the echo process (raw rows).';

/**
 * Scenario 9: the prox hook path ([4/9]) — `ProxPluginTransport` in the load process calling
 * `on_request` on a plugin process that serves the EchoAgent with `serveAgentAsProxPlugin`,
 * vs the same request bytes echoed raw with the same one-call-per-connection discipline.
 */
export const proxScenario: Scenario = {
  id: ID,
  title: 'prox hook path: on_request to an EchoAgent plugin vs a raw [u32][msgpack] echo',
  async run(config: BenchConfig) {
    const missing = await packageAvailable('@picket/prox');
    if (missing !== undefined) {
      return { ...skippedScenario(ID, proxScenario.title, DESCRIPTION, '', missing), targets: [] };
    }
    const { onRequestPayload } = await import('../endpoints-prox.js');
    const [server, load] = await startWorkers(config, [`${ID}-raw-server`, `${ID}-load`]);
    if (server === undefined || load === undefined) throw new Error('workers did not start');
    try {
      const path = socketPath(config, 'prox-raw');
      await server.create(EP, 'rawU32EchoServer', { path });
      const payload = onRequestPayload();
      const raw = await load.create(EP, 'rawU32Client', {
        path,
        connections: CONNECTIONS,
        payload,
      });
      const prox = await load.create<{ pid: number }>(EP, 'proxPluginClient', {
        connections: CONNECTIONS,
      });
      const plugin = processCpuProbe(prox.info.pid);

      // unrecorded pass first, so the 1-in-flight rows see optimised code in both processes
      const prewarm = { inflight: CONNECTIONS, durationMs: config.warmupMs, warmupMs: 0 };
      await load.run(raw.handle, prewarm);
      await load.run(prox.handle, prewarm);

      const rows: Row[] = [];
      const bars: { label: string; value: number; baseline?: boolean }[] = [];
      for (const inflight of INFLIGHT) {
        const opts = loadOptions(config, inflight);
        const variants: Variant[] = [
          { key: `raw @${inflight}`, run: () => measure(load, raw.handle, opts, server) },
          { key: `prox @${inflight}`, run: () => measure(load, prox.handle, opts, plugin) },
        ];
        const aggs = await measureVariants(variants, config.reps, sampleLogger(config, ID));
        const base = {
          name: `${RAW} @${inflight}`,
          agg: aggs.get(`raw @${inflight}`) as Aggregate,
        };
        const agg = aggs.get(`prox @${inflight}`) as Aggregate;
        rows.push(
          { ...aggregateRow(ID, base.name, base.agg, base), note: `${payload.length} B each way` },
          aggregateRow(ID, `${PROX} @${inflight}`, agg, base),
        );
        bars.push(
          { label: `raw echo @${inflight}`, value: base.agg.opsPerSec, baseline: true },
          { label: `prox plugin @${inflight}`, value: agg.opsPerSec },
        );
      }
      return {
        id: ID,
        title: proxScenario.title,
        description: DESCRIPTION,
        rows,
        targets: [],
        charts: [
          {
            id: 'prox',
            title: 'prox on_request round trips (req/s)',
            unit: 'req/s',
            bars,
          },
        ],
        notes: [],
      };
    } finally {
      await stopWorkers([load, server]);
    }
  },
};
