import type { Encoding } from '@picket/protocol';
import { ENCODINGS } from '../fixtures.js';
import { measure, measureVariants, type Variant } from '../harness.js';
import { type Aggregate, pairedRatio } from '../stats.js';
import { type BenchConfig, type Chart, type Row, type Scenario, target } from '../types.js';
import {
  aggregateRow,
  ENDPOINTS,
  loadOptions,
  sampleLogger,
  socketPath,
  startWorkers,
  stopWorkers,
} from './common.js';

const ID = 'uds';
const INFLIGHT = [1, 16, 128] as const;

/**
 * Scenario 1: raw framed echo vs `AgentClientV2Uds` → `UdsAgentServerV2(EchoAgent)`
 * with a 20-header RequestHeaders event, at 1, 16 and 128 in flight, per encoding.
 */
export const udsScenario: Scenario = {
  id: ID,
  title: 'UDS: picket v2 over a Unix socket vs a raw framed echo',
  async run(config: BenchConfig) {
    const [server, load] = await startWorkers(config, [`${ID}-server`, `${ID}-load`], {
      serverAndLoad: true,
    });
    if (server === undefined || load === undefined) throw new Error('workers did not start');
    try {
      const rawPath = socketPath(config, 'uds-raw');
      const agentPath = socketPath(config, 'uds-agent');
      await server.create(ENDPOINTS, 'rawServer', { path: rawPath, reply: 'echo' });
      await server.create(ENDPOINTS, 'udsAgentServer', { path: agentPath });
      const { info: payload } = await load.create<Uint8Array>(
        new URL('./uds.ts', import.meta.url).href,
        'msgpackEventBytes',
      );
      const raw = await load.create(ENDPOINTS, 'rawClient', { path: rawPath, payload });
      const clients = new Map<string, number>();
      for (const encoding of ENCODINGS) {
        const c = await load.create(ENDPOINTS, 'udsClient', { path: agentPath, encoding });
        clients.set(encoding, c.handle);
      }

      // One unrecorded pass per client first, so the 1-in-flight rows (measured first)
      // see optimised code rather than the JIT warming up.
      const prewarm = { inflight: 16, durationMs: config.warmupMs, warmupMs: 0 };
      await load.run(raw.handle, prewarm);
      for (const handle of clients.values()) await load.run(handle, prewarm);

      const rows: Row[] = [];
      const results = new Map<string, Aggregate>();
      // msgpack right after raw: the target's pair is measured back to back
      const order: Encoding[] = ['msgpack', ...ENCODINGS.filter((e) => e !== 'msgpack')];
      for (const inflight of INFLIGHT) {
        const opts = loadOptions(config, inflight);
        const variants: Variant[] = [
          { key: `raw @${inflight}`, run: () => measure(load, raw.handle, opts, server) },
          ...order.map((e) => ({
            key: `${e} @${inflight}`,
            run: () => measure(load, clients.get(e) as number, opts, server),
          })),
        ];
        const aggs = await measureVariants(variants, config.reps, sampleLogger(config, ID));
        for (const [k, v] of aggs) results.set(k, v);
        const base = {
          name: `raw framed echo @${inflight}`,
          agg: aggs.get(`raw @${inflight}`) as Aggregate,
        };
        rows.push({
          ...aggregateRow(ID, base.name, base.agg, base),
          note: `${payload.length} B payload each way`,
        });
        for (const e of ENCODINGS) {
          rows.push(
            aggregateRow(
              ID,
              `picket ${e} @${inflight}`,
              aggs.get(`${e} @${inflight}`) as Aggregate,
              base,
            ),
          );
        }
      }

      const at = (e: string, n: number) => results.get(`${e} @${n}`) as Aggregate;
      const best =
        [...ENCODINGS].sort((a, b) => at(b, 128).opsPerSec - at(a, 128).opsPerSec)[0] ?? 'msgpack';
      const charts: Chart[] = INFLIGHT.map((n) => ({
        id: `uds-${n}`,
        title: `UDS request headers, ${n} in flight (decisions/s)`,
        unit: 'req/s',
        bars: [
          { label: 'raw framed echo', value: at('raw', n).opsPerSec, baseline: true },
          ...ENCODINGS.map((e) => ({ label: `picket ${e}`, value: at(e, n).opsPerSec })),
        ],
        ...(n === 128 ? { reference: { value: 60_000, label: 'target 60 000' } } : {}),
      }));
      return {
        id: ID,
        title: udsScenario.title,
        description:
          'One connection. The load process sends a realistic RequestHeaders event (20 headers, ' +
          '~1.3 KB) with a fresh correlation id per call and awaits the decision; the agent process ' +
          'runs `UdsAgentServerV2` with the reference `EchoAgent` (5 header mutations, tags, custom ' +
          'audit). The baseline is a raw framed echo over the same kind of socket: the msgpack ' +
          'event bytes in a v2 frame echoed back unchanged, no codec, no correlation, writes batched per tick.',
        rows,
        // issue [9/9]'s targets for the msgpack path
        targets: [
          target(
            ID,
            'msgpack @128 in flight, one connection',
            at('msgpack', 128).opsPerSec,
            '>=',
            60_000,
            'req/s',
          ),
          target(
            ID,
            'msgpack @128: proxy-side CPU per call',
            at('msgpack', 128).clientCpuUs,
            '<=',
            10,
            'µs',
          ),
          target(
            ID,
            'msgpack @128: agent-side CPU per call',
            at('msgpack', 128).serverCpuUs,
            '<=',
            10,
            'µs',
          ),
          target(
            ID,
            'msgpack p50 @1 in flight vs the raw framed echo',
            pairedRatio(at('msgpack', 1).p50Runs, at('raw', 1).p50Runs),
            '<=',
            1.3,
            'ratio',
          ),
        ],
        charts,
        notes: [`Best encoding at 128 in flight: ${best}.`],
      };
    } finally {
      await stopWorkers([load, server]);
    }
  },
};

/** Factory for the load worker: the msgpack bytes the raw baseline sends. */
export async function msgpackEventBytes() {
  const { encodedHeadersEvent } = await import('../endpoints.js');
  return { info: encodedHeadersEvent('msgpack') };
}
