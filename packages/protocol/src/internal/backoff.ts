/**
 * The one reconnect backoff of picket (the pool redialling an agent, a reverse agent
 * redialling the proxy). Neither gives up: there is no attempt limit.
 */
import { AgentProtocolError, ErrorCode } from '../errors.js';

/** Reconnect backoff settings. */
export interface BackoffOptions {
  /** the delay before the first retry, in ms */
  initialDelayMs?: number;
  /** the delay stops growing here, in ms; no delay is ever longer */
  maxDelayMs?: number;
  /** growth per failed attempt (≥ 1) */
  multiplier?: number;
  /**
   * The fraction of each delay that is random, 0…1: the delay is drawn uniformly from
   * `[base × (1 − jitter), base]`, where base = `min(maxDelayMs, initialDelayMs ×
   * multiplier^attempt)`. 0 = no randomness, 0.5 = "equal jitter", 1 = "full jitter"
   * (0…base). Jitter only ever shortens a delay, so `maxDelayMs` is a real ceiling and
   * the first retry never waits longer than `initialDelayMs`.
   */
  jitter?: number;
}

/**
 * Delay in ms before retry number `attempt` (0-based), see {@link BackoffOptions.jitter}.
 * `options` must be complete and valid (see {@link resolveBackoff}); `random` returns a
 * number in [0, 1).
 */
export function backoffDelay(
  attempt: number,
  options: Readonly<Required<BackoffOptions>>,
  random: () => number = Math.random,
): number {
  const exp = options.initialDelayMs * options.multiplier ** Math.max(0, attempt);
  // a huge attempt count overflows to Infinity: that is the cap too
  const base = Math.min(options.maxDelayMs, exp);
  const jitter = Math.min(1, Math.max(0, options.jitter));
  return Math.round(base * (1 - jitter + jitter * random()));
}

function fail(where: string, field: string, expected: string, got: unknown): never {
  throw new AgentProtocolError(
    ErrorCode.InvalidArgument,
    `${where}.${field}: expected ${expected}, got ${String(got)}`,
  );
}

/**
 * `options` over `defaults`, checked: a wrong value is refused with INVALID_ARGUMENT
 * naming `<where>.<field>` rather than silently producing a spinning or frozen retry loop.
 */
export function resolveBackoff(
  options: BackoffOptions | undefined,
  defaults: Readonly<Required<BackoffOptions>>,
  where: string,
): Required<BackoffOptions> {
  const o = { ...defaults };
  for (const key of Object.keys(defaults) as (keyof BackoffOptions)[]) {
    const v = options?.[key];
    if (v !== undefined) o[key] = v;
  }
  const finite = (v: number) => typeof v === 'number' && Number.isFinite(v);
  if (!finite(o.initialDelayMs) || o.initialDelayMs < 0) {
    fail(where, 'initialDelayMs', 'a finite number ≥ 0', o.initialDelayMs);
  }
  if (!finite(o.maxDelayMs) || o.maxDelayMs < o.initialDelayMs) {
    fail(
      where,
      'maxDelayMs',
      `a finite number ≥ initialDelayMs (${o.initialDelayMs})`,
      o.maxDelayMs,
    );
  }
  if (!finite(o.multiplier) || o.multiplier < 1) {
    fail(where, 'multiplier', 'a finite number ≥ 1', o.multiplier);
  }
  if (!finite(o.jitter) || o.jitter < 0 || o.jitter > 1) {
    fail(where, 'jitter', 'a number from 0 to 1', o.jitter);
  }
  return o;
}
