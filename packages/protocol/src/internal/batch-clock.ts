/**
 * One clock reading for a batch of received frames. A socket read often brings dozens of
 * answers; whoever times them (the pool's latency statistics) would read the clock once per
 * answer, and a reading costs ~40 ns on a VM. While a transport handles one read's frames
 * (between {@link beginBatch} and {@link endBatch}), {@link batchNow} returns the reading
 * taken at its first use in that batch: the time the batch's answers were being handled.
 * Outside a batch it reads the clock.
 */
import { performance } from 'node:perf_hooks';

let depth = 0;
/** the batch's reading; NaN until something asks */
let reading = Number.NaN;

/** A transport starts handling the frames of one read. Pair with {@link endBatch} (in a finally). */
export function beginBatch(): void {
  if (depth++ === 0) reading = Number.NaN;
}

/** The frames of that read are handled. */
export function endBatch(): void {
  if (depth > 0) depth--;
}

/** `performance.now()`, or the current batch's reading of it. */
export function batchNow(): number {
  if (depth === 0) return performance.now();
  if (Number.isNaN(reading)) reading = performance.now(); // first use in this batch
  return reading;
}
