/**
 * Exercises the bench code without depending on speed: statistics, table and
 * chart output, the command line, a quick in-process run of the codec
 * scenario that writes a real report, and one small run each of the prox,
 * agentproto and middleware scenarios (real processes and sockets). No
 * assertion looks at a number's size.
 */
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '@picket/protocol';
import { ProxPluginTransport } from '@picket/prox';
import { afterAll, describe, expect, test } from 'vitest';
import { onRequestPayload } from '../src/endpoints-prox.js';
import { requestHeadersEvent } from '../src/fixtures.js';
import {
  allowedCpus,
  findTaskset,
  measureVariants,
  parseCpuList,
  WorkerProcess,
} from '../src/harness.js';
import { parseCli, runBench } from '../src/main.js';
import { barChartSvg, formatLatency, markdownTable, niceMax, textTable } from '../src/report.js';
import { agentprotoScenario } from '../src/scenarios/agentproto.js';
import { SCENARIOS } from '../src/scenarios/index.js';
import { middlewareScenario } from '../src/scenarios/middleware.js';
import { proxScenario } from '../src/scenarios/prox.js';
import {
  aggregate,
  LatencyRecorder,
  median,
  pairedRatio,
  percentile,
  summarizeNs,
} from '../src/stats.js';
import type { BenchConfig, Row, Scenario } from '../src/types.js';
import { target } from '../src/types.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'picket-bench-test-'));
  dirs.push(d);
  return d;
}

describe('stats', () => {
  test('nearest-rank percentiles and medians', () => {
    const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(sorted, 50)).toBe(5);
    expect(percentile(sorted, 90)).toBe(9);
    expect(percentile(sorted, 99)).toBe(10);
    expect(percentile(sorted, 0)).toBe(1);
    expect(percentile([], 50)).toBeNaN();
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([Number.NaN, 5])).toBe(5);
  });

  test('LatencyRecorder grows past its capacity and summarises in µs', () => {
    const r = new LatencyRecorder(4);
    for (let i = 1; i <= 100; i++) r.record(i * 1000);
    expect(r.count).toBe(100);
    const s = r.summary();
    expect(s.p50Us).toBe(50);
    expect(s.p99Us).toBe(99);
    expect(s.maxUs).toBe(100);
    expect(s.meanUs).toBeCloseTo(50.5);
    r.reset();
    expect(r.count).toBe(0);
    const t0 = process.hrtime.bigint();
    r.since(t0);
    expect(r.count).toBe(1);
    expect(summarizeNs(new Float64Array([3000, 1000, 2000])).p50Us).toBe(2);
  });

  test('aggregate takes medians over repetitions', () => {
    const sample = (ops: number) => ({
      count: 1,
      meanUs: 1,
      p50Us: ops / 10,
      p90Us: 1,
      p99Us: ops / 5,
      maxUs: 1,
      ops,
      seconds: 1,
      opsPerSec: ops,
    });
    const a = aggregate([sample(10), sample(30), sample(20)]);
    expect(a.opsPerSec).toBe(20);
    expect(a.p50Us).toBe(2);
    expect(a.runs).toEqual([10, 30, 20]);
    expect(a.p50Runs).toEqual([1, 3, 2]);
    expect(a.clientCpuUs).toBeNaN();
  });

  test('pairedRatio is the median of per-repetition ratios, not a ratio of medians', () => {
    // a slow phase in the second repetition halves both sides of that pair
    const baseline = [100, 50, 100];
    const subject = [96, 48, 60];
    expect(pairedRatio(subject, baseline)).toBeCloseTo(0.96);
    expect(median(subject) / median(baseline)).toBeCloseTo(0.6);
    expect(() => pairedRatio([1, 2], [1])).toThrow(/2 and 1 repetitions/);
  });

  test('measureVariants warms every variant up once, then alternates their order from one repetition to the next', async () => {
    // A machine that slows down steadily: each run is slower than the one before. With a
    // fixed order the second variant would be measured late in every repetition.
    const order: string[] = [];
    let clock = 0;
    const variant = (key: string) => ({
      key,
      run: async () => {
        order.push(key);
        const opsPerSec = 1000 - 10 * clock++;
        return { ...sampleOf(opsPerSec) };
      },
    });
    const aggs = await measureVariants([variant('a'), variant('b')], 4);
    // one unmeasured round, then the measured ones
    expect(order).toEqual(['a', 'b', 'a', 'b', 'b', 'a', 'a', 'b', 'b', 'a']);
    const a = aggs.get('a')?.runs ?? [];
    const b = aggs.get('b')?.runs ?? [];
    expect(a).toEqual([980, 950, 940, 910]);
    // the drift cancels out over the pairs: b is measured after a half of the time
    expect(pairedRatio(b, a)).toBeCloseTo(1, 2);
  });
});

function sampleOf(ops: number) {
  return {
    count: 1,
    meanUs: 1,
    p50Us: 1,
    p90Us: 1,
    p99Us: 1,
    maxUs: 1,
    ops,
    seconds: 1,
    opsPerSec: ops,
  };
}

describe('report', () => {
  const rows: Row[] = [
    {
      scenario: 'x',
      name: 'base',
      baseline: 'base',
      value: 12_345.6,
      unit: 'req/s',
      p50Us: 80,
      p99Us: 12_000,
      ratio: 1,
    },
    {
      scenario: 'x',
      name: 'fast | thing',
      baseline: 'base',
      value: 20_000,
      unit: 'req/s',
      ratio: 1.62,
      clientCpuUs: 3.2,
    },
    {
      scenario: 'y',
      name: '(all)',
      baseline: '',
      value: Number.NaN,
      unit: '',
      skipped: 'y not built',
    },
  ];

  test('text and markdown tables carry every row, ratio and skip reason', () => {
    const text = textTable(rows);
    expect(text).toContain('12 346 req/s');
    expect(text).toContain('1.62×');
    expect(text).toContain('(baseline)');
    expect(text).toContain('skipped: y not built');
    expect(text.split('\n')[0]).toContain('ratio');
    const md = markdownTable(rows);
    expect(md.split('\n')).toHaveLength(2 + rows.length);
    expect(md).toContain('fast \\| thing');
    expect(formatLatency(12_000)).toBe('12.0 ms');
    expect(formatLatency(80)).toBe('80.0 µs');
  });

  test('bar charts are standalone SVG with one bar per value and an optional reference line', () => {
    const svg = barChartSvg({
      id: 'c',
      title: 'A & B <chart>',
      unit: 'req/s',
      bars: [
        { label: 'raw', value: 100, baseline: true },
        { label: 'picket', value: 60 },
        { label: 'skipped', value: Number.NaN },
      ],
      reference: { value: 50, label: 'target' },
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('<title>A &amp; B &lt;chart&gt;</title>');
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<rect x=/g)).toHaveLength(2);
    expect(svg).toContain('A &amp; B &lt;chart&gt;');
    expect(svg).toContain('stroke-dasharray');
    expect(niceMax(73)).toBe(100);
    expect(niceMax(0.3)).toBe(0.5);
    expect(niceMax(0)).toBe(1);
  });

  test('targets pass or miss by their operator', () => {
    expect(target('s', 'd', 0.85, '>=', 0.8, 'ratio').met).toBe(true);
    expect(target('s', 'd', 120, '<=', 100, 'µs').met).toBe(false);
    expect(target('s', 'd', Number.NaN, '>=', 1, 'ratio').met).toBe(false);
  });
});

describe('command line', () => {
  test('parses --quick, --only (repeated or comma separated) and numbers', () => {
    const o = parseCli([
      '--quick',
      '--only',
      'codec,uds',
      '--only',
      'pool',
      '--reps',
      '2',
      '--out',
      '/tmp/x',
    ]);
    expect(o.quick).toBe(true);
    expect(o.only).toEqual(['codec', 'uds', 'pool']);
    expect(o.reps).toBe(2);
    expect(o.out).toBe('/tmp/x');
    expect(parseCli([]).out.endsWith(join('bench'))).toBe(true);
    expect(parseCli(['--', '--quick']).quick).toBe(true);
    expect(() => parseCli(['--only', 'nope'])).toThrow(/unknown scenario "nope"/);
    expect(() => parseCli(['--reps', '0'])).toThrow(/positive integer/);
    expect(parseCli([]).pin).toBe(true);
    expect(parseCli(['--no-pin']).pin).toBe(false);
  });
});

describe('pinning a worker to a CPU', () => {
  test('findTaskset looks on PATH for an executable taskset', () => {
    const empty = tempDir();
    const withIt = tempDir();
    writeFileSync(join(withIt, 'taskset'), '#!/bin/sh\n');
    chmodSync(join(withIt, 'taskset'), 0o755);
    expect(findTaskset(empty)).toBeUndefined();
    expect(findTaskset(`${empty}:${withIt}`)).toBe(join(withIt, 'taskset'));
    const notExecutable = tempDir();
    writeFileSync(join(notExecutable, 'taskset'), '');
    expect(findTaskset(notExecutable)).toBeUndefined();
  });

  test('parseCpuList reads the kernel CPU list format', () => {
    expect(parseCpuList('0-1')).toEqual([0, 1]);
    expect(parseCpuList('0,2-3,7\n')).toEqual([0, 2, 3, 7]);
    expect(parseCpuList('5')).toEqual([5]);
    expect(parseCpuList('')).toEqual([]);
    expect(parseCpuList('0-x')).toEqual([]);
  });

  const taskset = findTaskset();
  const cpu = allowedCpus()?.[0];
  test.skipIf(taskset === undefined || cpu === undefined)(
    'a pinned worker runs on its CPU only, and still answers over IPC',
    { timeout: 30_000 },
    async () => {
      const w = await WorkerProcess.start('pin-test', {
        pin: { cpu: cpu as number, taskset: taskset as string },
      });
      try {
        expect(allowedCpus(w.pid as number)).toEqual([cpu]);
        expect(await w.cpuUs()).toBeGreaterThan(0);
      } finally {
        await w.stop();
      }
    },
  );
});

describe('a quick codec run', () => {
  test('prints a table and writes report.md with SVG charts', { timeout: 60_000 }, async () => {
    const out = tempDir();
    const results = await runBench(
      parseCli(['--quick', '--only', 'codec', '--out', out, '--quiet']),
    );
    expect(results.map((r) => r.id)).toEqual(['codec']);
    const rows = results[0]?.rows ?? [];
    expect(rows.length).toBeGreaterThanOrEqual(12);
    for (const row of rows) {
      expect(row.skipped).toBeUndefined();
      expect(Number.isFinite(row.value)).toBe(true);
      expect(Number.isFinite(row.ratio)).toBe(true);
    }
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    expect(report).toContain('# picket benchmark report');
    expect(report).toContain('| scenario | variant | throughput');
    const charts = readdirSync(join(out, 'charts'));
    expect(charts.length).toBe(results[0]?.charts.length);
    for (const c of charts) expect(report).toContain(`](charts/${c})`);
    expect(existsSync(join(out, 'profiles'))).toBe(false);
  });
});

describe('the prox, agentproto and middleware scenarios', () => {
  const config = (): BenchConfig => ({
    quick: true,
    reps: 1,
    // generous windows: a row needs at least one call completed inside its window
    durationMs: 1_000,
    warmupMs: 300,
    tmpDir: tempDir(),
    log: () => {},
  });
  const cases: [Scenario, string[]][] = [
    [
      proxScenario,
      [
        'raw [u32][msgpack] echo @1',
        'prox on_request → EchoAgent plugin @1',
        'raw [u32][msgpack] echo @16',
        'prox on_request → EchoAgent plugin @16',
      ],
    ],
    [
      agentprotoScenario,
      [
        'cat over plain pipes, 64 KiB writes',
        'cat under picket-agent (mux), 64 KiB writes',
        'fs.promises.stat in process @1',
        'FileOp Stat via picket-agent @1',
        'fs.promises.stat in process @16',
        'FileOp Stat via picket-agent @16',
      ],
    ],
    [
      middlewareScenario,
      ['plain node:http handler', 'wrapListener, no agents', 'wrapListener + 1 UDS EchoAgent'],
    ],
  ];
  test("the prox baseline sends the bytes prox's host writes for the same event", {
    timeout: 60_000,
  }, async () => {
    const recordTo = join(tempDir(), 'first-frame');
    const plugin = fileURLToPath(new URL('./fixtures/recording-plugin.ts', import.meta.url));
    const transport = await ProxPluginTransport.connect(
      'recorder',
      [process.execPath, '--import', 'tsx', plugin],
      { env: { RECORD_TO: recordTo }, logger: silentLogger, readyTimeoutMs: 30_000 },
    );
    try {
      await transport.sendRequestHeaders(requestHeadersEvent('req-check'));
    } finally {
      await transport.close();
    }
    expect(new Uint8Array(readFileSync(recordTo))).toEqual(onRequestPayload());
  });

  for (const [scenario, names] of cases) {
    test(`${scenario.id}: one tiny run gives every row with finite numbers`, {
      timeout: 120_000,
    }, async () => {
      expect(SCENARIOS.map((s) => s.id)).toContain(scenario.id);
      const result = await scenario.run(config());
      expect(result.id).toBe(scenario.id);
      expect(result.rows.map((r) => r.name)).toEqual(names);
      for (const row of result.rows) {
        expect(row.skipped).toBeUndefined();
        for (const n of [row.value, row.ratio, row.p50Us, row.p99Us, row.clientCpuUs]) {
          expect(Number.isFinite(n)).toBe(true);
        }
        expect(row.value).toBeGreaterThan(0);
        // every row but the in-process stat baseline has a process on the far side
        if (!row.name.startsWith('fs.promises.stat')) {
          expect(Number.isFinite(row.serverCpuUs)).toBe(true);
        }
      }
      expect(result.charts.length).toBe(1);
    });
  }
});
