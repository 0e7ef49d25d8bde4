import { join } from 'node:path';
import { WorkerProcess } from '../harness.js';
import type { Aggregate } from '../stats.js';
import type { BenchConfig, Row } from '../types.js';

/** URL of the shared endpoint factories, for `WorkerProcess.create`. */
export const ENDPOINTS = new URL('../endpoints.ts', import.meta.url).href;

/** Load options of one repetition. */
export function loadOptions(config: BenchConfig, inflight: number) {
  return { inflight, durationMs: config.durationMs, warmupMs: config.warmupMs };
}

/**
 * Starts the named worker processes (profiled when the run is). `serverAndLoad`: the two
 * names are a server and its load process, pinned to their CPUs when the run pins.
 */
export async function startWorkers(
  config: BenchConfig,
  names: readonly string[],
  options: { nodeArgs?: string[]; serverAndLoad?: boolean } = {},
): Promise<WorkerProcess[]> {
  const { pin } = config;
  if (options.serverAndLoad === true && names.length !== 2) {
    throw new Error(`serverAndLoad needs a server and a load process, not ${names.length}`);
  }
  return Promise.all(
    names.map((name, i) =>
      WorkerProcess.start(name, {
        ...(config.profileDir === undefined ? {} : { profileDir: config.profileDir }),
        nodeArgs: options.nodeArgs ?? [],
        ...(pin !== undefined && options.serverAndLoad === true
          ? { pin: { cpu: i === 0 ? pin.server : pin.load, taskset: pin.taskset } }
          : {}),
      }),
    ),
  );
}

/** Stops workers, ignoring errors (they are being torn down anyway). */
export async function stopWorkers(workers: readonly (WorkerProcess | undefined)[]): Promise<void> {
  await Promise.all(workers.map((w) => w?.stop().catch(() => {})));
}

/** A socket path in the run's scratch directory. */
export function socketPath(config: BenchConfig, name: string): string {
  return join(config.tmpDir, `${name}.sock`);
}

/** A table row from an aggregate, with its ratio to `base`. */
export function aggregateRow(
  scenario: string,
  name: string,
  agg: Aggregate,
  baseline: { name: string; agg: Aggregate },
  unit = 'req/s',
  scale = 1,
): Row {
  return {
    scenario,
    name,
    baseline: baseline.name,
    value: agg.opsPerSec * scale,
    unit,
    p50Us: agg.p50Us,
    p99Us: agg.p99Us,
    ratio: agg.opsPerSec / baseline.agg.opsPerSec,
    clientCpuUs: agg.clientCpuUs,
    serverCpuUs: agg.serverCpuUs,
  };
}

/** Progress line of one sample. */
export function sampleLogger(config: BenchConfig, scenario: string) {
  return (key: string, s: { opsPerSec: number; p50Us: number; p99Us: number; errors?: number }) =>
    config.log(
      `  ${scenario} ${key.padEnd(28)} ${Math.round(s.opsPerSec).toString().padStart(8)} ops/s  p50 ${s.p50Us.toFixed(0)} µs  p99 ${s.p99Us.toFixed(0)} µs${s.errors ? `  errors ${s.errors}` : ''}`,
    );
}

/** Whether a workspace package has been built (its dist entry exists and imports). */
export async function packageAvailable(name: string): Promise<string | undefined> {
  try {
    await import(name);
    return undefined;
  } catch (err) {
    return `${name} not built (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
  }
}
