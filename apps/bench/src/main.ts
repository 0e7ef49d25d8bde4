/**
 * `pnpm bench` — runs the benchmark scenarios, prints one table and writes
 * `bench/report.md` (+ SVG charts) at the repository root.
 *
 *   tsx src/main.ts [--quick] [--only uds,codec] [--reps N] [--duration ms]
 *                   [--warmup ms] [--profile] [--no-pin] [--out dir]
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { allowedCpus, findTaskset } from './harness.js';
import { mainThreadProfile, summarizeCpuProfile } from './profile.js';
import { describeTarget, textTable, writeReport } from './report.js';
import { SCENARIOS } from './scenarios/index.js';
import type { BenchConfig, ScenarioResult } from './types.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Parsed command line. */
export interface CliOptions {
  quick: boolean;
  only: string[];
  reps?: number;
  durationMs?: number;
  warmupMs?: number;
  profile: boolean;
  /** pin a server and its load process to CPUs of their own (default on; `--no-pin`) */
  pin: boolean;
  out: string;
  quiet: boolean;
}

/** Reads the command line (throws on unknown flags or scenario ids). */
export function parseCli(argv: readonly string[]): CliOptions {
  const { values } = parseArgs({
    // `pnpm … bench -- --quick` passes the `--` through
    args: argv.filter((a) => a !== '--'),
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string', multiple: true },
      reps: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      profile: { type: 'boolean', default: false },
      'no-pin': { type: 'boolean', default: false },
      out: { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  const only = (values.only ?? []).flatMap((s) => s.split(',')).filter((s) => s !== '');
  const known = new Set(SCENARIOS.map((s) => s.id));
  for (const id of only) {
    if (!known.has(id)) throw new Error(`unknown scenario "${id}" (${[...known].join(', ')})`);
  }
  const int = (s: string | undefined, name: string): number | undefined => {
    if (s === undefined) return undefined;
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
    return n;
  };
  return {
    quick: values.quick ?? false,
    only,
    reps: int(values.reps, 'reps'),
    durationMs: int(values.duration, 'duration'),
    warmupMs: int(values.warmup, 'warmup'),
    profile: values.profile ?? false,
    pin: !(values['no-pin'] ?? false),
    out: resolve(values.out ?? join(REPO_ROOT, 'bench', values.quick ? 'quick' : '')),
    quiet: values.quiet ?? false,
  };
}

/** Runs the selected scenarios and writes the report; resolves to the results. */
export async function runBench(cli: CliOptions): Promise<ScenarioResult[]> {
  const started = performance.now();
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const tmp = mkdtempSync(join(tmpdir(), 'picket-bench-'));
  const log = cli.quiet ? () => {} : (line: string) => console.error(line);
  mkdirSync(cli.out, { recursive: true });
  const profileDir = cli.profile ? join(cli.out, 'profiles') : undefined;
  if (profileDir !== undefined) {
    rmSync(profileDir, { recursive: true, force: true });
    mkdirSync(profileDir, { recursive: true });
  }
  const pin = choosePinning(cli.pin);
  const config: BenchConfig = {
    quick: cli.quick,
    reps: cli.reps ?? (cli.quick ? 1 : 9),
    durationMs: cli.durationMs ?? (cli.quick ? 300 : 600),
    warmupMs: cli.warmupMs ?? (cli.quick ? 150 : 200),
    ...(profileDir === undefined ? {} : { profileDir }),
    tmpDir: tmp,
    log,
    ...(pin.cpus === undefined ? {} : { pin: pin.cpus }),
  };
  log(`processes: ${pin.text}`);
  const selected = SCENARIOS.filter((s) => cli.only.length === 0 || cli.only.includes(s.id));
  const results: ScenarioResult[] = [];
  let failures = 0;
  try {
    for (const scenario of selected) {
      const t0 = performance.now();
      log(`\n[${scenario.id}] ${scenario.title}`);
      try {
        results.push(await scenario.run(config));
      } catch (err) {
        failures++;
        const why = err instanceof Error ? (err.stack ?? err.message) : String(err);
        log(`[${scenario.id}] FAILED: ${why}`);
        results.push({
          id: scenario.id,
          title: scenario.title,
          description: '',
          rows: [
            {
              scenario: scenario.id,
              name: '(all)',
              baseline: '',
              value: Number.NaN,
              unit: '',
              skipped: `failed: ${err instanceof Error ? err.message : String(err)}`,
            },
          ],
          targets: [],
          charts: [],
          notes: [],
        });
      }
      log(`[${scenario.id}] done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  const rows = results.flatMap((r) => r.rows);
  const targets = results.flatMap((r) => r.targets);
  console.log(`\n${textTable(rows)}\n`);
  for (const t of targets) console.log(describeTarget(t));

  const extra: string[] = [];
  if (profileDir !== undefined) extra.push(...profileSections(profileDir));
  const elapsedS = (performance.now() - started) / 1000;
  writeReport(
    cli.out,
    results,
    {
      date: new Date().toISOString(),
      node: process.versions.node,
      cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
      mode: cli.quick ? 'quick' : 'full',
      reps: config.reps,
      durationMs: config.durationMs,
      warmupMs: config.warmupMs,
      elapsedS,
      loadAverage: load,
      pinning: pin.text,
    },
    extra,
  );
  console.log(`\nreport: ${join(cli.out, 'report.md')} (${elapsedS.toFixed(0)} s)`);
  if (failures > 0) process.exitCode = 1;
  return results;
}

/**
 * Where the server and load process of a two-process scenario run: the second and the first
 * CPU this process may use, each its own, when asked, two CPUs are allowed and `taskset` is
 * there; why not otherwise.
 */
function choosePinning(wanted: boolean): { cpus?: NonNullable<BenchConfig['pin']>; text: string } {
  if (!wanted) return { text: 'not pinned to CPUs (--no-pin)' };
  const allowed = allowedCpus() ?? [];
  const [load, server] = allowed;
  if (load === undefined || server === undefined) {
    return { text: 'not pinned to CPUs (fewer than two CPUs allowed)' };
  }
  const taskset = findTaskset();
  if (taskset === undefined) return { text: 'not pinned to CPUs (no taskset on PATH)' };
  return {
    cpus: { server, load, taskset },
    text:
      `a scenario of one server and one load process runs the server on CPU ${server} and the ` +
      `load process on CPU ${load} (\`taskset\`); the others are not pinned`,
  };
}

/** Markdown sections with the top self-time functions of each profiled process. */
function profileSections(dir: string): string[] {
  const names = readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  if (names.length === 0) return [];
  const out = [
    '## CPU profiles (top self time)',
    '',
    'From `node --cpu-prof` on each forked process (main thread), whole process lifetime.',
    '',
  ];
  for (const name of names) {
    const file = mainThreadProfile(join(dir, name));
    if (file === undefined) continue;
    out.push(`### ${name}`, '', '| self | share | function |', '|---:|---:|---|');
    for (const e of summarizeCpuProfile(file, 20)) {
      out.push(`| ${e.selfMs.toFixed(0)} ms | ${(e.share * 100).toFixed(1)} % | \`${e.name}\` |`);
    }
    out.push('');
  }
  return out;
}

const isMain =
  process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  runBench(parseCli(process.argv.slice(2))).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
