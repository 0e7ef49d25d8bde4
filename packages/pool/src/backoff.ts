/** Reconnect backoff settings. */
export interface BackoffOptions {
  /** first delay (default 100 ms) */
  initialDelayMs?: number;
  /** cap of the delay (default 30 000 ms) */
  maxDelayMs?: number;
  /** growth per failed attempt (default 2) */
  multiplier?: number;
  /** fraction of the delay that is randomised, 0…1 (default 0.5) */
  jitter?: number;
}

/** Defaults of {@link BackoffOptions}. */
export const DEFAULT_BACKOFF: Required<BackoffOptions> = {
  initialDelayMs: 100,
  maxDelayMs: 30_000,
  multiplier: 2,
  jitter: 0.5,
};

/**
 * Delay before reconnect attempt number `attempt` (0-based): exponential growth
 * capped at `maxDelayMs`, of which a `jitter` fraction is random so that many
 * connections to one restarted agent do not all redial at the same instant.
 * There is no attempt limit: a pool keeps redialling an agent forever.
 */
export function backoffDelay(
  attempt: number,
  options: Required<BackoffOptions>,
  random: () => number = Math.random,
): number {
  const exp = options.initialDelayMs * options.multiplier ** Math.max(0, attempt);
  const capped = Math.min(options.maxDelayMs, Number.isFinite(exp) ? exp : options.maxDelayMs);
  const jitter = Math.min(1, Math.max(0, options.jitter));
  return Math.round(capped * (1 - jitter) + capped * jitter * random());
}
