/** Reconnect backoff of a reverse-connecting agent. It never gives up. */
export interface ReconnectOptions {
  /** delay before the first retry; default 100 ms */
  initialDelayMs?: number;
  /** the delay stops growing here; default 30 000 ms */
  maxDelayMs?: number;
  /** growth per failed attempt; default 2 */
  multiplier?: number;
  /** ± this fraction of randomness, so many agents do not reconnect in lockstep; default 0.2 */
  jitter?: number;
}

/** Defaults of {@link ReconnectOptions}. */
export const DEFAULT_RECONNECT: Readonly<Required<ReconnectOptions>> = Object.freeze({
  initialDelayMs: 100,
  maxDelayMs: 30_000,
  multiplier: 2,
  jitter: 0.2,
});

/**
 * Delay before retry number `attempt` (0-based): `initial × multiplier^attempt`,
 * capped at `maxDelayMs`, then spread by ±`jitter` (never above `maxDelayMs`).
 */
export function reconnectDelay(
  attempt: number,
  options: ReconnectOptions = {},
  random: () => number = Math.random,
): number {
  const o = { ...DEFAULT_RECONNECT, ...options };
  const base = Math.min(o.maxDelayMs, o.initialDelayMs * o.multiplier ** Math.max(0, attempt));
  const jitter = Math.min(1, Math.max(0, o.jitter));
  const spread = base * (1 + jitter * (2 * random() - 1));
  return Math.max(0, Math.min(o.maxDelayMs, Math.round(spread)));
}
