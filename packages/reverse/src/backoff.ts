import { type BackoffOptions, backoffDelay, resolveBackoff } from '@picket/protocol/internal';

/**
 * Reconnect backoff of a reverse-connecting agent (it never gives up): picket's one
 * backoff. `jitter` is the random fraction taken off each delay, so a delay lies in
 * `[base × (1 − jitter), base]` and never exceeds `maxDelayMs`.
 */
export type ReconnectOptions = BackoffOptions;

/** Defaults of {@link ReconnectOptions}: delays drawn from [80 %, 100 %] of the base. */
export const DEFAULT_RECONNECT: Readonly<Required<ReconnectOptions>> = Object.freeze({
  initialDelayMs: 100,
  maxDelayMs: 30_000,
  multiplier: 2,
  jitter: 0.2,
});

/**
 * Delay before retry number `attempt` (0-based), `options` over {@link DEFAULT_RECONNECT}.
 * A wrong option is refused with INVALID_ARGUMENT naming it (`connectReverse` checks them
 * up front).
 */
export function reconnectDelay(
  attempt: number,
  options: ReconnectOptions = {},
  random: () => number = Math.random,
): number {
  return backoffDelay(attempt, resolveBackoff(options, DEFAULT_RECONNECT, 'reconnect'), random);
}
