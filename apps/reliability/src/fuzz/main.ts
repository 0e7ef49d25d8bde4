/**
 * `pnpm fuzz [--quick] [--seed N] [--cases N] [--time 600s] [--targets a,b] [--concurrency N]
 *            [--replay target:index] [--max-heap-growth-mib N] [--verbose]`
 *
 * Feeds random and mutated frames into every picket server and client that reads from
 * the network, while a well-behaved pair per target does requests on the side. Fails on
 * a crash, an unhandled rejection, a hung connection, a violated invariant, a connection
 * closed without a logged reason, a failed good request, or heap growth beyond the bound.
 * The seed is printed; `--seed` replays the same cases.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { durationArg, numberArg, parseArgs } from '../lib/args.js';
import { Rng, randomSeed } from '../lib/prng.js';
import { canGc, installCrashHooks, MemoryMonitor, mib } from '../lib/process-guard.js';
import type { FuzzContext, FuzzTarget, TargetReport } from './target.js';
import { GrpcServerTarget } from './targets/grpc-server.js';
import { ReverseTarget } from './targets/reverse.js';
import { UdsClientTarget } from './targets/uds-client.js';
import { UdsServerTarget } from './targets/uds-server.js';
import { V1ServerTarget } from './targets/v1-server.js';

/** Share of the frame budget per target. */
const TARGETS: { name: string; share: number; make: () => FuzzTarget }[] = [
  { name: 'uds-server', share: 0.35, make: () => new UdsServerTarget() },
  { name: 'uds-client', share: 0.2, make: () => new UdsClientTarget() },
  { name: 'reverse', share: 0.15, make: () => new ReverseTarget() },
  { name: 'v1-server', share: 0.1, make: () => new V1ServerTarget() },
  { name: 'grpc-server', share: 0.2, make: () => new GrpcServerTarget() },
];

let current = 'startup';

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2), ['quick', 'verbose']);
  const quick = args.get('quick') === true;
  const seed = numberArg(args, 'seed', randomSeed()) >>> 0;
  const budget = numberArg(args, 'cases', quick ? 12_000 : 120_000);
  const timeMs = durationArg(args, 'time', quick ? 50_000 : 900_000);
  const concurrency = numberArg(args, 'concurrency', 8);
  const maxGrowth = numberArg(args, 'max-heap-growth-mib', 48) * 1024 * 1024;
  const verbose = args.get('verbose') === true;
  const only = args.get('targets');
  const replay = args.get('replay');
  const selected =
    typeof only === 'string'
      ? TARGETS.filter((t) => only.split(',').includes(t.name))
      : typeof replay === 'string'
        ? TARGETS.filter((t) => t.name === replay.split(':')[0])
        : TARGETS;
  if (selected.length === 0)
    throw new Error(`no such target; known: ${TARGETS.map((t) => t.name).join(', ')}`);

  installCrashHooks(() => `fuzz seed ${seed}, ${current}`);
  console.log(
    `picket fuzz: seed ${seed} (replay with --seed ${seed}), budget ${budget} frames, time limit ${timeMs / 1000}s, ` +
      `concurrency ${concurrency}${quick ? ', quick' : ''}`,
  );
  if (!canGc()) console.log('warning: run with node --expose-gc for meaningful heap figures');

  const dir = mkdtempSync(join(tmpdir(), 'picket-fuzz-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true })); // also after a crash
  const ctx: FuzzContext = { seed, dir, verbose };
  const monitor = new MemoryMonitor();
  const started = Date.now();
  const deadline = started + timeMs;
  const totalShare = selected.reduce((n, t) => n + t.share, 0);
  const failures: string[] = [];
  /** connections that took over a second (a hint for --replay; not a failure by itself) */
  const slow: string[] = [];
  let totalFrames = 0;
  let totalConnections = 0;
  let baselineSet = false;
  let timedOut = false;
  const reports: {
    name: string;
    report: TargetReport;
    frames: number;
    connections: number;
    ms: number;
  }[] = [];

  try {
    for (const spec of selected) {
      const target = spec.make();
      const targetBudget = Math.ceil((budget * spec.share) / totalShare);
      current = `${spec.name} setup`;
      const t0 = Date.now();
      await target.start(ctx);
      let frames = 0;
      let connections = 0;
      let next = 0;
      let connFailures = 0;
      const runOne = async (index: number): Promise<void> => {
        current = `${spec.name} connection ${index} (replay: --seed ${seed} --replay ${spec.name}:${index})`;
        const t = Date.now();
        try {
          const outcome = await target.connection(Rng.derive(seed, spec.name, index), index);
          frames += outcome.frames;
          totalFrames += outcome.frames;
        } catch (err) {
          connFailures++;
          if (typeof replay === 'string' || verbose) console.error((err as Error).stack);
          if (connFailures <= 20) {
            failures.push(
              `${spec.name} #${index}: ${(err as Error).message} (replay: --seed ${seed} --replay ${spec.name}:${index})`,
            );
          }
        }
        connections++;
        totalConnections++;
        const took = Date.now() - t;
        if (took > 1000) slow.push(`${spec.name}:${index} ${took} ms`);
        if (!baselineSet && totalFrames >= budget * 0.03) {
          baselineSet = true;
          monitor.setBaseline();
        }
      };
      if (typeof replay === 'string') {
        await runOne(Number(replay.split(':')[1]));
      } else {
        let lastSample = Date.now();
        const worker = async (): Promise<void> => {
          while (frames < targetBudget) {
            if (Date.now() > deadline) {
              timedOut = true;
              return;
            }
            await runOne(next++);
            if (Date.now() - lastSample > 2000) {
              lastSample = Date.now();
              monitor.sample();
            }
          }
        };
        await Promise.all(Array.from({ length: concurrency }, worker));
      }
      current = `${spec.name} finish`;
      const report = await target.finish();
      if (connFailures > 20)
        failures.push(`${spec.name}: ${connFailures - 20} more connection failures`);
      for (const f of report.failures) failures.push(`${spec.name}: ${f}`);
      if (report.good.failed > 0 || report.good.ok === 0) {
        failures.push(
          `${spec.name}: good pair ${report.good.ok}/${report.good.sent} ok${report.good.errors.length > 0 ? `: ${report.good.errors.join('; ')}` : ''}`,
        );
      }
      reports.push({ name: spec.name, report, frames, connections, ms: Date.now() - t0 });
      const s = report.stats;
      console.log(
        `  ${spec.name.padEnd(12)} ${String(frames).padStart(7)} frames ${String(connections).padStart(6)} connections ` +
          `${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s  good ${report.good.ok}/${report.good.sent}  ` +
          Object.entries(s)
            .map(([k, v]) => `${k}=${v}`)
            .join(' '),
      );
      if (timedOut) break;
    }
  } finally {
    current = 'shutdown';
    rmSync(dir, { recursive: true, force: true });
  }

  if (!baselineSet) monitor.setBaseline();
  // Let closed sockets and timers wind down before the final measurement.
  await new Promise((r) => setTimeout(r, 200));
  const finalHeap = monitor.sample();
  const growth = finalHeap - monitor.baseline;
  if (canGc() && growth > maxGrowth) {
    failures.push(`heap grew by ${mib(growth)} after GC (bound ${mib(maxGrowth)})`);
  }
  if (typeof replay !== 'string' && !timedOut && totalFrames < budget) {
    failures.push(`only ${totalFrames} of ${budget} frames were sent`);
  }

  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log('');
  console.log(`fuzz summary (seed ${seed})`);
  console.log(
    `  cases (frames/messages sent): ${totalFrames} over ${totalConnections} connections in ${seconds}s`,
  );
  console.log(
    `  good-pair requests: ${reports.reduce((n, r) => n + r.report.good.ok, 0)} ok / ${reports.reduce((n, r) => n + r.report.good.sent, 0)} sent`,
  );
  console.log(
    `  heap after GC: baseline ${mib(monitor.baseline)}, peak ${mib(monitor.peakHeap)}, final ${mib(finalHeap)} ` +
      `(growth ${mib(growth)}, bound ${mib(maxGrowth)}); peak RSS ${mib(monitor.peakRss)}`,
  );
  if (slow.length > 0)
    console.log(`  slow connections (>1s): ${slow.length}: ${slow.slice(0, 8).join(', ')}`);
  if (timedOut)
    console.log(`  stopped by the time limit (${timeMs / 1000}s) before the frame budget`);
  console.log('  crashes: 0, unhandled rejections: 0 (either would have ended the run)');
  if (failures.length > 0) {
    console.log(`  FAILED (${failures.length}):`);
    for (const f of failures) console.log(`    - ${f}`);
    return 1;
  }
  console.log('  result: PASS');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`fuzz: ${(err as Error).stack ?? String(err)}`);
    process.exit(2);
  },
);
