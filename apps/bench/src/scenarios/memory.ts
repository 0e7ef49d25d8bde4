import { LatencyRecorder } from '../stats.js';
import { type BenchConfig, type Row, type Scenario, target } from '../types.js';
import type { Hosted } from '../worker.js';
import { ENDPOINTS, socketPath, startWorkers, stopWorkers } from './common.js';

const ID = 'memory';
const MIB = 1024 * 1024;
const INFLIGHT = 64;

/** One checkpoint of the memory run. */
interface Checkpoint {
  requests: number;
  rss: number;
  heapUsed: number;
  /** V8's committed heap (new space included) and memory outside it (Buffers), for the log */
  heapTotal: number;
  external: number;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
  errors: number;
}

async function settledMemory(): Promise<NodeJS.MemoryUsage> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage();
}

/**
 * Factory for the load worker: an `AgentPool` target with `runTo(n)`, which
 * sends requests until `n` have completed in total and then reports memory
 * after a full GC.
 */
export async function memoryTarget(args: {
  path: string;
  encoding: 'msgpack' | 'json';
  connections: number;
}): Promise<Hosted> {
  const { poolClient } = await import('../endpoints.js');
  const target = await poolClient(args);
  const call = target.call as (seq: number) => Promise<unknown>;
  const { after } = target;
  let done = 0;
  let seq = 0;
  /** Sends requests until `n` have completed; the latency recorder lives only in here. */
  async function load(n: number) {
    const recorder = new LatencyRecorder(1 << 16);
    let errors = 0;
    const start = process.hrtime.bigint();
    const startDone = done;
    const lane = async (): Promise<void> => {
      while (seq < n) {
        const s = ++seq;
        const t0 = process.hrtime.bigint();
        try {
          await call(s);
          after(s);
        } catch {
          errors++;
        }
        recorder.record(Number(process.hrtime.bigint() - t0));
        done++;
      }
    };
    await Promise.all(Array.from({ length: INFLIGHT }, lane));
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const { p50Us, p99Us } = recorder.summary();
    return { opsPerSec: (done - startDone) / seconds, p50Us, p99Us, errors };
  }
  return {
    close: target.close,
    async runTo(n: number): Promise<Checkpoint> {
      const measured = await load(n);
      // Read once the recorder is garbage: its samples (8 bytes per request, 6 MiB for the
      // 800k requests of the second segment) are the bench's memory, not the pool's.
      const mem = await settledMemory();
      return {
        requests: done,
        rss: mem.rss,
        heapUsed: mem.heapUsed,
        heapTotal: mem.heapTotal,
        external: mem.external,
        ...measured,
      };
    },
  };
}

function describeCheckpoint(c: Checkpoint): string {
  const mib = (n: number) => `${(n / MIB).toFixed(1)} MiB`;
  return `  memory after ${c.requests}: rss ${mib(c.rss)} heap ${mib(c.heapUsed)} (committed ${mib(c.heapTotal)}) external ${mib(c.external)}`;
}

/** Scenario 8: RSS and heap of the proxy process after 200 000 and 1 000 000 pooled requests. */
export const memoryScenario: Scenario = {
  id: ID,
  title: 'Memory: RSS and heap through the pool after 200 000 and 1 000 000 requests',
  async run(config: BenchConfig) {
    const first = config.quick ? 20_000 : 200_000;
    const second = config.quick ? 100_000 : 1_000_000;
    const [server, load] = await startWorkers(config, [`${ID}-server`, `${ID}-load`], {
      nodeArgs: ['--expose-gc'],
      serverAndLoad: true,
    });
    if (server === undefined || load === undefined) throw new Error('workers did not start');
    try {
      const path = socketPath(config, 'memory-agent');
      await server.create(ENDPOINTS, 'udsAgentServer', { path });
      const t = await load.create(new URL('./memory.ts', import.meta.url).href, 'memoryTarget', {
        path,
        encoding: 'msgpack',
        connections: 4,
      });
      const a = await load.invoke<Checkpoint>(t.handle, 'runTo', first);
      config.log(describeCheckpoint(a));
      const b = await load.invoke<Checkpoint>(t.handle, 'runTo', second);
      config.log(describeCheckpoint(b));
      if (a.errors + b.errors > 0) throw new Error(`${a.errors + b.errors} calls failed`);
      const k = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`);
      const row = (
        what: string,
        cp: Checkpoint,
        bytes: number,
        baseBytes: number,
        base: string,
      ): Row => ({
        scenario: ID,
        name: `${what} after ${k(cp.requests)}`,
        baseline: base,
        value: bytes / MIB,
        unit: 'MiB',
        p50Us: cp.p50Us,
        p99Us: cp.p99Us,
        ratio: bytes / baseBytes,
        note: `${Math.round(cp.opsPerSec)} req/s in this segment`,
      });
      const heapBase = `heap after ${k(a.requests)}`;
      const rssBase = `RSS after ${k(a.requests)}`;
      const heapGrowth = (b.heapUsed / a.heapUsed - 1) * 100;
      const rssGrowth = (b.rss / a.rss - 1) * 100;
      return {
        id: ID,
        title: memoryScenario.title,
        description:
          `The load process drives \`AgentPool\` (4 UDS connections, msgpack, ${INFLIGHT} in flight, ` +
          '`clearAffinity` after each call) against `UdsAgentServerV2(EchoAgent)` in another ' +
          `process, and reads \`process.memoryUsage()\` after a full GC (\`--expose-gc\`) at ` +
          `${k(first)} and ${k(second)} completed requests. The ratio column is the growth between the two.`,
        rows: [
          row('heap', a, a.heapUsed, a.heapUsed, heapBase),
          row('heap', b, b.heapUsed, a.heapUsed, heapBase),
          row('RSS', a, a.rss, a.rss, rssBase),
          row('RSS', b, b.rss, a.rss, rssBase),
        ],
        targets: [
          target(ID, `heap growth ${k(first)} → ${k(second)} requests`, heapGrowth, '<=', 10, '%'),
          target(ID, `RSS growth ${k(first)} → ${k(second)} requests`, rssGrowth, '<=', 10, '%'),
        ],
        charts: [
          {
            id: 'memory',
            title: 'Proxy process memory after a full GC (MiB)',
            unit: 'MiB',
            bars: [
              { label: `heap @${k(a.requests)}`, value: a.heapUsed / MIB, baseline: true },
              { label: `heap @${k(b.requests)}`, value: b.heapUsed / MIB },
              { label: `RSS @${k(a.requests)}`, value: a.rss / MIB, baseline: true },
              { label: `RSS @${k(b.requests)}`, value: b.rss / MIB },
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
