/** Shared shapes of the bench: configuration, rows, targets and charts. */

/** How long and how often to measure; set by the runner from the command line. */
export interface BenchConfig {
  /** `--quick`: one short repetition per variant (a smoke run, numbers are rough) */
  quick: boolean;
  /** repetitions per variant (medians are reported) */
  reps: number;
  /** measured window of one repetition */
  durationMs: number;
  /** unmeasured warmup before each window */
  warmupMs: number;
  /** when set, every forked process writes a CPU profile here */
  profileDir?: string;
  /** a private scratch directory (socket files) */
  tmpDir: string;
  /**
   * Where a scenario of one server and one load process runs them: each on a CPU of its own
   * (`taskset`), so the scheduler never puts both on one CPU for part of a run. Undefined:
   * not pinned (`--no-pin`, fewer than two CPUs allowed, or no `taskset`).
   */
  pin?: { server: number; load: number; taskset: string };
  /** progress output */
  log: (line: string) => void;
}

/** One line of the results table. */
export interface Row {
  /** scenario id (`uds`, `grpc`, …) */
  scenario: string;
  /** what was measured, e.g. `picket msgpack @128` */
  name: string;
  /** the row this one is compared with (its own name for a baseline) */
  baseline: string;
  /** throughput (or, for memory rows, the measured amount) */
  value: number;
  /** unit of `value`: `req/s`, `MiB/s`, `ops/s`, `MiB` */
  unit: string;
  p50Us?: number;
  p99Us?: number;
  /** value ÷ baseline value, both measured in this run */
  ratio?: number;
  /** CPU µs per operation in the load process / the server process */
  clientCpuUs?: number;
  serverCpuUs?: number;
  note?: string;
  /** set instead of numbers when the scenario could not run */
  skipped?: string;
}

/** A target from the issue, checked against this run's numbers. */
export interface Target {
  scenario: string;
  /** e.g. `picket gRPC ≥ 0.8 × raw grpc-js @128` */
  description: string;
  /** the measured value */
  actual: number;
  threshold: number;
  op: '>=' | '<=';
  /** how to print actual/threshold (`ratio`, `req/s`, `µs`, `%`) */
  unit: string;
  met: boolean;
  skipped?: string;
}

/** A bar of a chart. */
export interface Bar {
  label: string;
  value: number;
  /** drawn in the baseline colour */
  baseline?: boolean;
}

/** A simple horizontal bar chart. */
export interface Chart {
  /** file name without extension */
  id: string;
  title: string;
  unit: string;
  bars: Bar[];
  /** optional vertical reference line (e.g. a target) */
  reference?: { value: number; label: string };
}

/** What one scenario produced. */
export interface ScenarioResult {
  id: string;
  title: string;
  /** what is measured and how, one paragraph for the report */
  description: string;
  rows: Row[];
  targets: Target[];
  charts: Chart[];
  notes: string[];
}

/** A benchmark scenario. */
export interface Scenario {
  id: string;
  title: string;
  run(config: BenchConfig): Promise<ScenarioResult>;
}

/** Builds a target record. */
export function target(
  scenario: string,
  description: string,
  actual: number,
  op: '>=' | '<=',
  threshold: number,
  unit: string,
): Target {
  const met = Number.isFinite(actual) && (op === '>=' ? actual >= threshold : actual <= threshold);
  return { scenario, description, actual, threshold, op, unit, met };
}

/** A target that could not be checked. */
export function skippedTarget(scenario: string, description: string, why: string): Target {
  return {
    scenario,
    description,
    actual: Number.NaN,
    threshold: Number.NaN,
    op: '>=',
    unit: '',
    met: false,
    skipped: why,
  };
}

/** The whole result of a scenario whose package is not built: one skipped row and target. */
export function skippedScenario(
  id: string,
  title: string,
  description: string,
  target: string,
  why: string,
): ScenarioResult {
  return {
    id,
    title,
    description,
    rows: [
      { scenario: id, name: '(all)', baseline: '', value: Number.NaN, unit: '', skipped: why },
    ],
    targets: [skippedTarget(id, target, why)],
    charts: [],
    notes: [],
  };
}
