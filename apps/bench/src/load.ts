import { LatencyRecorder, type Sample } from './stats.js';

/** How a closed-loop run is shaped. */
export interface LoadOptions {
  /** requests kept in flight at once (each lane issues its next call when the last one ends) */
  inflight: number;
  /** length of the measured window */
  durationMs: number;
  /** unmeasured time before the window (JIT, socket buffers, pools settle) */
  warmupMs: number;
}

/** What a run reports besides the sample (errors are counted, never hidden). */
export interface LoadResult extends Sample {
  errors: number;
  firstError?: string;
}

/**
 * Drives `call` with `inflight` concurrent lanes for warmup + duration and
 * measures only the window: completions inside it, their latencies
 * (hrtime.bigint around each call) and the process's CPU time.
 */
export async function closedLoop(
  call: (seq: number) => Promise<unknown>,
  options: LoadOptions,
  after?: (seq: number) => void,
): Promise<LoadResult> {
  const recorder = new LatencyRecorder(1 << 17);
  let measuring = false;
  let stopped = false;
  let seq = 0;
  let errors = 0;
  let firstError: string | undefined;
  let windowStart = 0n;
  let windowEnd = 0n;
  let cpuStart = process.cpuUsage();
  let cpu = { user: 0, system: 0 };

  const lane = async (): Promise<void> => {
    while (!stopped) {
      const t0 = process.hrtime.bigint();
      const s = seq++;
      try {
        await call(s);
        after?.(s);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
        if (errors > 1000) stopped = true;
        continue;
      }
      if (measuring) recorder.record(Number(process.hrtime.bigint() - t0));
    }
  };

  const lanes: Promise<void>[] = [];
  for (let i = 0; i < options.inflight; i++) lanes.push(lane());
  await new Promise<void>((resolve) => {
    setTimeout(() => {
      measuring = true;
      windowStart = process.hrtime.bigint();
      cpuStart = process.cpuUsage();
      setTimeout(() => {
        measuring = false;
        windowEnd = process.hrtime.bigint();
        cpu = process.cpuUsage(cpuStart);
        stopped = true;
        resolve();
      }, options.durationMs);
    }, options.warmupMs);
  });
  await Promise.all(lanes);
  const seconds = Number(windowEnd - windowStart) / 1e9;
  const ops = recorder.count;
  const summary = recorder.summary();
  return {
    ...summary,
    ops,
    seconds,
    opsPerSec: seconds > 0 ? ops / seconds : 0,
    clientCpuUs: ops > 0 ? (cpu.user + cpu.system) / ops : Number.NaN,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
  };
}
