/**
 * Latency recording and summary statistics. Latencies are taken with
 * `process.hrtime.bigint()` and stored as nanoseconds in a growable
 * Float64Array, so recording stays allocation-free on the hot path.
 */

/** Records per-operation latencies in nanoseconds. */
export class LatencyRecorder {
  private samples: Float64Array;
  private n = 0;

  constructor(initialCapacity = 1 << 16) {
    this.samples = new Float64Array(initialCapacity);
  }

  /** Number of recorded samples. */
  get count(): number {
    return this.n;
  }

  /** Adds one latency in nanoseconds. */
  record(ns: number): void {
    if (this.n === this.samples.length) {
      const next = new Float64Array(this.samples.length * 2);
      next.set(this.samples);
      this.samples = next;
    }
    this.samples[this.n++] = ns;
  }

  /** Records the time since `startNs` (a `process.hrtime.bigint()` reading). */
  since(startNs: bigint): void {
    this.record(Number(process.hrtime.bigint() - startNs));
  }

  /** Forgets every sample (keeps the buffer). */
  reset(): void {
    this.n = 0;
  }

  /** Percentiles of what was recorded, in microseconds. */
  summary(): LatencySummary {
    return summarizeNs(this.samples.subarray(0, this.n));
  }
}

/** Latency percentiles in microseconds. */
export interface LatencySummary {
  count: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
}

/**
 * Nearest-rank percentile (`p` in 0–100) of an ascending array: the smallest
 * value with at least p % of the samples at or below it. NaN when empty.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  if (p <= 0) return sorted[0] as number;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n, Math.max(1, rank)) - 1] as number;
}

/** Summary of nanosecond samples (sorted in place). */
export function summarizeNs(samples: Float64Array): LatencySummary {
  const sorted = samples.sort();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i] as number;
  const us = (ns: number): number => ns / 1000;
  return {
    count: sorted.length,
    meanUs: sorted.length === 0 ? Number.NaN : us(sum / sorted.length),
    p50Us: us(percentile(sorted, 50)),
    p90Us: us(percentile(sorted, 90)),
    p99Us: us(percentile(sorted, 99)),
    maxUs: us(sorted.length === 0 ? Number.NaN : (sorted[sorted.length - 1] as number)),
  };
}

/** Median of a list (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  const xs = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  const n = xs.length;
  if (n === 0) return Number.NaN;
  const mid = n >> 1;
  return n % 2 === 1 ? (xs[mid] as number) : ((xs[mid - 1] as number) + (xs[mid] as number)) / 2;
}

/** One measured run: how much work finished in how long, and its latency. */
export interface Sample extends LatencySummary {
  /** operations completed inside the measurement window */
  ops: number;
  /** measurement window in seconds */
  seconds: number;
  /** operations per second */
  opsPerSec: number;
  /** CPU time the load process spent per operation, µs (user + system) */
  clientCpuUs?: number;
  /** CPU time the server process spent per operation, µs */
  serverCpuUs?: number;
  /** bytes moved per operation, when the scenario counts bytes */
  bytesPerOp?: number;
}

/** The medians of repeated samples of one variant. */
export interface Aggregate {
  reps: number;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
  clientCpuUs: number;
  serverCpuUs: number;
  /** every repetition's ops/s, for the report and paired ratios */
  runs: number[];
  /** every repetition's p50 (µs), for paired ratios */
  p50Runs: number[];
}

/** Medians over repetitions. */
export function aggregate(samples: readonly Sample[]): Aggregate {
  return {
    reps: samples.length,
    opsPerSec: median(samples.map((s) => s.opsPerSec)),
    p50Us: median(samples.map((s) => s.p50Us)),
    p99Us: median(samples.map((s) => s.p99Us)),
    clientCpuUs: median(samples.map((s) => s.clientCpuUs ?? Number.NaN)),
    serverCpuUs: median(samples.map((s) => s.serverCpuUs ?? Number.NaN)),
    runs: samples.map((s) => s.opsPerSec),
    p50Runs: samples.map((s) => s.p50Us),
  };
}

/**
 * The median over repetitions of `subject[i] / baseline[i]`. Each repetition measures
 * the baseline and the subject back to back, so a slow phase of a shared machine (the
 * noise here lasts seconds to minutes) lands on both sides of one pair instead of on
 * one side of a ratio of medians.
 */
export function pairedRatio(subject: readonly number[], baseline: readonly number[]): number {
  if (subject.length !== baseline.length) {
    throw new Error(`paired ratio of ${subject.length} and ${baseline.length} repetitions`);
  }
  return median(subject.map((v, i) => v / (baseline[i] as number)));
}
