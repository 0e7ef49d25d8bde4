import { ENCODINGS } from '../fixtures.js';
import { measure, measureVariants, type Variant } from '../harness.js';
import { type Aggregate, pairedRatio } from '../stats.js';
import { type BenchConfig, type Chart, type Row, type Scenario, target } from '../types.js';
import {
  ENDPOINTS,
  loadOptions,
  sampleLogger,
  socketPath,
  startWorkers,
  stopWorkers,
} from './common.js';

const ID = 'body';
const SIZES = [4 * 1024, 64 * 1024] as const;
const INFLIGHT = 16;
const MIB = 1024 * 1024;

/**
 * Scenario 5: request body chunks of 4 KiB and 64 KiB through picket per
 * encoding (JSON carries base64 text, msgpack raw `bin` to a picket agent,
 * CBOR byte strings) vs the same bytes framed raw over a Unix socket.
 */
export const bodyScenario: Scenario = {
  id: ID,
  title: 'Body chunks: json (base64) vs msgpack vs cbor vs raw bytes',
  async run(config: BenchConfig) {
    const [server, load] = await startWorkers(config, [`${ID}-server`, `${ID}-load`], {
      serverAndLoad: true,
    });
    if (server === undefined || load === undefined) throw new Error('workers did not start');
    try {
      const rawPath = socketPath(config, 'body-raw');
      const agentPath = socketPath(config, 'body-agent');
      await server.create(ENDPOINTS, 'rawServer', { path: rawPath, reply: 'ack' });
      await server.create(ENDPOINTS, 'udsAgentServer', { path: agentPath });
      const rows: Row[] = [];
      const charts: Chart[] = [];
      const results = new Map<string, Aggregate>();
      for (const size of SIZES) {
        const raw = await load.create(ENDPOINTS, 'rawClient', {
          path: rawPath,
          payload: new Uint8Array(size).fill(0x5a),
        });
        const clients = new Map<string, number>();
        for (const encoding of ENCODINGS) {
          const c = await load.create(ENDPOINTS, 'udsClient', {
            path: agentPath,
            encoding,
            event: { bodySize: size },
          });
          clients.set(encoding, c.handle);
        }
        const opts = loadOptions(config, INFLIGHT);
        const kib = `${size / 1024} KiB`;
        const variants: Variant[] = [
          { key: `raw ${kib}`, run: () => measure(load, raw.handle, opts, server) },
          ...ENCODINGS.map((e) => ({
            key: `${e} ${kib}`,
            run: () => measure(load, clients.get(e) as number, opts, server),
          })),
        ];
        const aggs = await measureVariants(variants, config.reps, sampleLogger(config, ID));
        for (const [k, v] of aggs) results.set(k, v);
        const base = aggs.get(`raw ${kib}`) as Aggregate;
        const baseName = `raw framed bytes ${kib}`;
        const row = (name: string, agg: Aggregate, note?: string): Row => ({
          scenario: ID,
          name,
          baseline: baseName,
          value: (agg.opsPerSec * size) / MIB,
          unit: 'MiB/s',
          p50Us: agg.p50Us,
          p99Us: agg.p99Us,
          ratio: agg.opsPerSec / base.opsPerSec,
          clientCpuUs: agg.clientCpuUs,
          serverCpuUs: agg.serverCpuUs,
          ...(note === undefined ? {} : { note }),
        });
        rows.push(row(baseName, base, `${Math.round(base.opsPerSec)} chunks/s, 64 B ack`));
        for (const e of ENCODINGS) {
          const agg = aggs.get(`${e} ${kib}`) as Aggregate;
          rows.push(row(`picket ${e} ${kib}`, agg, `${Math.round(agg.opsPerSec)} chunks/s`));
        }
        charts.push({
          id: `body-${size / 1024}k`,
          title: `Request body chunks of ${kib}, ${INFLIGHT} in flight (MiB/s)`,
          unit: 'MiB/s',
          bars: [
            { label: 'raw framed bytes', value: (base.opsPerSec * size) / MIB, baseline: true },
            ...ENCODINGS.map((e) => ({
              label: `picket ${e}`,
              value: ((aggs.get(`${e} ${kib}`) as Aggregate).opsPerSec * size) / MIB,
            })),
          ],
        });
      }
      const big = `${SIZES[1] / 1024} KiB`;
      const rawBig = results.get(`raw ${big}`) as Aggregate;
      const best = [...ENCODINGS].sort(
        (a, b) =>
          (results.get(`${b} ${big}`) as Aggregate).opsPerSec -
          (results.get(`${a} ${big}`) as Aggregate).opsPerSec,
      )[0] as string;
      const bestAgg = results.get(`${best} ${big}`) as Aggregate;
      return {
        id: ID,
        title: bodyScenario.title,
        description:
          `One connection, ${INFLIGHT} chunks in flight. picket sends RequestBodyChunk events ` +
          'to `UdsAgentServerV2(EchoAgent)`: JSON carries the bytes as base64 text, msgpack as raw ' +
          '`bin` (the agent advertises `picket.binary_bodies`), CBOR as a byte string. The ' +
          'baseline frames the same number of bytes raw over a Unix socket and gets a 64-byte ack ' +
          'per chunk (about the size of a small AgentResponse). Throughput counts body bytes only.',
        rows,
        targets: [
          target(
            ID,
            `best encoding (${best}) at ${big} vs raw bytes/s`,
            pairedRatio(bestAgg.runs, rawBig.runs),
            '>=',
            0.6,
            'ratio',
          ),
        ],
        charts,
        notes: [],
      };
    } finally {
      await stopWorkers([load, server]);
    }
  },
};
