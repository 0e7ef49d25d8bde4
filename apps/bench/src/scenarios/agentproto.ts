import { readFile } from 'node:fs/promises';
import { type CpuProbe, measure, measureVariants, processCpuProbe } from '../harness.js';
import type { Aggregate } from '../stats.js';
import { type BenchConfig, type Row, type Scenario, skippedScenario } from '../types.js';
import {
  aggregateRow,
  loadOptions,
  packageAvailable,
  sampleLogger,
  startWorkers,
  stopWorkers,
} from './common.js';

const ID = 'agentproto';
const CHUNK = 64 * 1024;
const STREAM_INFLIGHT = 16;
const STAT_INFLIGHT = [1, 16] as const;
const MIB = 1024 * 1024;
const EP = new URL('../endpoints-agentproto.ts', import.meta.url).href;
const KIB = `${CHUNK / 1024} KiB`;

/** CPU of a process and all its descendants (the agent and the command it runs), from /proc. */
function treeCpuProbe(root: number): CpuProbe {
  return {
    async cpuUs() {
      let total = 0;
      const pending = [root];
      for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
        try {
          total += await processCpuProbe(pid).cpuUs();
          const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
          for (const c of children.split(' ')) if (c.trim() !== '') pending.push(Number(c));
        } catch {
          // the process exited between the reads
        }
      }
      return total;
    },
  };
}

const DESCRIPTION =
  `Stream: the load process writes ${KIB} chunks, ${STREAM_INFLIGHT} in flight, to \`cat\` ` +
  'and counts them back from its stdout. Through the mux: `picket-agent` (the built ' +
  'bin of @picket/agentproto, its own process) gets an Exec frame for `cat`, the chunks ' +
  "as Data frames on fd 0 and sends cat's output back as Data frames (≤ 32 KiB) on fd " +
  "1 — canonical CBOR both ways over the agent's stdio. Baseline: `cat` spawned with " +
  'plain pipes. Throughput counts the bytes of one direction; "server" CPU is the far ' +
  "side's process tree (agent + cat, or cat alone). FileOp: `files(mux).stat(path)` " +
  'round trips to a second `picket-agent` in file-op mode, 1 and 16 in flight, against ' +
  '`fs.promises.stat` of the same file in the load process (no IPC at all: the ratio ' +
  'is the cost of going through the agent).';

/**
 * Scenario 10: the agentproto mux ([5/9]) — a byte stream through a real `picket-agent` child
 * vs plain pipes, and FileOp Stat round trips vs an in-process stat.
 */
export const agentprotoScenario: Scenario = {
  id: ID,
  title: 'agentproto: stdio stream through picket-agent vs plain pipes; FileOp Stat round trips',
  async run(config: BenchConfig) {
    const missing = await packageAvailable('@picket/agentproto');
    if (missing !== undefined) {
      return {
        ...skippedScenario(ID, agentprotoScenario.title, DESCRIPTION, '', missing),
        targets: [],
      };
    }
    const { AGENT_BIN } = await import('../endpoints-agentproto.js');
    const [load] = await startWorkers(config, [`${ID}-load`]);
    if (load === undefined) throw new Error('workers did not start');
    try {
      const pipe = await load.create<{ pid: number }>(EP, 'catStream', {
        via: 'pipe',
        chunkSize: CHUNK,
      });
      const agent = await load.create<{ pid: number }>(EP, 'catStream', {
        via: 'agent',
        chunkSize: CHUNK,
      });
      const remote = await load.create<{ pid: number }>(EP, 'fileOpStat', { path: AGENT_BIN });
      const local = await load.create(EP, 'localStat', { path: AGENT_BIN });
      const prewarm = { inflight: 16, durationMs: config.warmupMs, warmupMs: 0 };
      for (const h of [pipe, agent, remote, local]) await load.run(h.handle, prewarm);

      const streamOpts = loadOptions(config, STREAM_INFLIGHT);
      const stream = await measureVariants(
        [
          {
            key: 'pipe',
            run: () => measure(load, pipe.handle, streamOpts, treeCpuProbe(pipe.info.pid)),
          },
          {
            key: 'agent',
            run: () => measure(load, agent.handle, streamOpts, treeCpuProbe(agent.info.pid)),
          },
        ],
        config.reps,
        sampleLogger(config, ID),
      );
      const pipeBase = {
        name: `cat over plain pipes, ${KIB} writes`,
        agg: stream.get('pipe') as Aggregate,
      };
      const agentAgg = stream.get('agent') as Aggregate;
      const rows: Row[] = [
        {
          ...aggregateRow(ID, pipeBase.name, pipeBase.agg, pipeBase, 'MiB/s', CHUNK / MIB),
          note: `${STREAM_INFLIGHT} chunks in flight`,
        },
        aggregateRow(
          ID,
          `cat under picket-agent (mux), ${KIB} writes`,
          agentAgg,
          pipeBase,
          'MiB/s',
          CHUNK / MIB,
        ),
      ];
      const bars = [
        {
          label: 'cat, plain pipes',
          value: (pipeBase.agg.opsPerSec * CHUNK) / MIB,
          baseline: true,
        },
        { label: 'cat under picket-agent', value: (agentAgg.opsPerSec * CHUNK) / MIB },
      ];

      const agentProbe = processCpuProbe(remote.info.pid);
      for (const inflight of STAT_INFLIGHT) {
        const opts = loadOptions(config, inflight);
        const aggs = await measureVariants(
          [
            { key: `local stat @${inflight}`, run: () => measure(load, local.handle, opts) },
            {
              key: `FileOp Stat @${inflight}`,
              run: () => measure(load, remote.handle, opts, agentProbe),
            },
          ],
          config.reps,
          sampleLogger(config, ID),
        );
        const base = {
          name: `fs.promises.stat in process @${inflight}`,
          agg: aggs.get(`local stat @${inflight}`) as Aggregate,
        };
        rows.push(
          aggregateRow(ID, base.name, base.agg, base, 'ops/s'),
          aggregateRow(
            ID,
            `FileOp Stat via picket-agent @${inflight}`,
            aggs.get(`FileOp Stat @${inflight}`) as Aggregate,
            base,
            'ops/s',
          ),
        );
      }
      return {
        id: ID,
        title: agentprotoScenario.title,
        description: DESCRIPTION,
        rows,
        targets: [],
        charts: [
          { id: 'agentproto', title: `${KIB} chunks through cat (MiB/s)`, unit: 'MiB/s', bars },
        ],
        notes: [],
      };
    } finally {
      await stopWorkers([load]);
    }
  },
};
