import { type BackoffOptions, backoffDelay } from '@picket/protocol/internal';

// The pool redials with picket's one backoff; `jitter` is documented on BackoffOptions.
export { type BackoffOptions, backoffDelay };

/** Defaults of {@link BackoffOptions} for the pool: delays drawn from [50 %, 100 %] of the base. */
export const DEFAULT_BACKOFF: Required<BackoffOptions> = {
  initialDelayMs: 100,
  maxDelayMs: 30_000,
  multiplier: 2,
  jitter: 0.5,
};
