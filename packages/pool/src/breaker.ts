/** Circuit breaker states, as printed in stats and metrics. */
export type CircuitState = 'closed' | 'open' | 'half_open';

/** Circuit breaker settings (defaults match the Zentinel proxy's breaker). */
export interface CircuitBreakerOptions {
  /** consecutive failures that open a closed circuit (default 5) */
  failureThreshold?: number;
  /** successes in half-open that close the circuit (default 2) */
  successThreshold?: number;
  /** how long an open circuit rejects calls before letting probes through (default 30 000 ms) */
  openTimeoutMs?: number;
  /** probes allowed at once while half-open (default 1) */
  halfOpenMaxRequests?: number;
}

/** Defaults of {@link CircuitBreakerOptions}. */
export const DEFAULT_CIRCUIT_BREAKER: Required<CircuitBreakerOptions> = {
  failureThreshold: 5,
  successThreshold: 2,
  openTimeoutMs: 30_000,
  halfOpenMaxRequests: 1,
};

/**
 * One admitted call. Exactly one of `success()`, `failure()` or `release()`
 * must end it; later calls are ignored so an outcome can never count twice.
 */
export interface BreakerPermit {
  /** the agent answered */
  success(): void;
  /** transport error or timeout: counts towards opening */
  failure(): void;
  /** the call ended without telling anything about the agent (e.g. caller cancelled) */
  release(): void;
}

/** How an admitted call ended. */
export type BreakerOutcome = 'success' | 'failure' | 'release';

/** A permit as one small object over a ticket of {@link CircuitBreaker.enter}. */
class Permit implements BreakerPermit {
  private done = false;

  constructor(
    private readonly breaker: CircuitBreaker,
    private readonly ticket: number,
  ) {}

  success(): void {
    this.end('success');
  }
  failure(): void {
    this.end('failure');
  }
  release(): void {
    this.end('release');
  }

  private end(outcome: BreakerOutcome): void {
    if (this.done) return;
    this.done = true;
    this.breaker.leave(this.ticket, outcome);
  }
}

/**
 * closed → open after `failureThreshold` consecutive failures; open → half-open
 * once `openTimeoutMs` passed (checked lazily, or by `refresh()`); half-open lets
 * `halfOpenMaxRequests` probes through at once, closes after `successThreshold`
 * successes and re-opens on any failure.
 */
export class CircuitBreaker {
  readonly options: Required<CircuitBreakerOptions>;
  private current: CircuitState = 'closed';
  private consecutiveFailures = 0;
  private halfOpenSuccesses = 0;
  private probesInFlight = 0;
  private openedAt = 0;
  /** bumps on every transition so permits from an earlier state do not count */
  private generation = 0;

  constructor(
    options: CircuitBreakerOptions = {},
    private readonly onChange: (from: CircuitState, to: CircuitState) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {
    this.options = { ...DEFAULT_CIRCUIT_BREAKER, ...stripUndefined(options) };
    for (const [k, v] of Object.entries(this.options)) {
      if (!(Number.isFinite(v) && v >= (k === 'openTimeoutMs' ? 0 : 1))) {
        throw new RangeError(`circuit breaker option ${k} must be a finite number, got ${v}`);
      }
    }
  }

  /** Current state; moves open → half-open when the open timeout has passed. */
  get state(): CircuitState {
    this.refresh();
    return this.current;
  }

  /** Milliseconds until an open circuit lets a probe through (0 when not open). */
  get retryInMs(): number {
    if (this.state !== 'open') return 0;
    return Math.max(0, this.openedAt + this.options.openTimeoutMs - this.now());
  }

  /** Applies the open → half-open timeout now. */
  refresh(): void {
    if (this.current === 'open' && this.now() - this.openedAt >= this.options.openTimeoutMs) {
      this.transition('half_open');
    }
  }

  /** Admits a call, or returns null while the circuit rejects calls. */
  tryAcquire(): BreakerPermit | null {
    const ticket = this.enter();
    return ticket < 0 ? null : new Permit(this, ticket);
  }

  /**
   * Admits a call without a permit object (the pool's call record keeps the ticket):
   * a ticket for {@link leave}, or -1 while the circuit rejects calls.
   */
  enter(): number {
    const state = this.state;
    if (state === 'open') return -1;
    if (state === 'half_open') {
      if (this.probesInFlight >= this.options.halfOpenMaxRequests) return -1;
      this.probesInFlight++;
      return this.generation * 2 + 1;
    }
    return this.generation * 2;
  }

  /**
   * Ends an admitted call; the caller ends each ticket exactly once. Counts the outcome
   * unless the state changed since the call was admitted.
   */
  leave(ticket: number, outcome: BreakerOutcome): void {
    if (ticket >> 1 !== this.generation) return; // stale outcome
    if ((ticket & 1) === 1) this.probesInFlight--;
    if (outcome === 'success') this.recordSuccess();
    else if (outcome === 'failure') this.recordFailure();
  }

  /** Forces the circuit closed (e.g. an operator reset). */
  reset(): void {
    this.transition('closed');
  }

  private recordSuccess(): void {
    if (this.current === 'closed') {
      this.consecutiveFailures = 0;
    } else if (this.current === 'half_open') {
      this.halfOpenSuccesses++;
      if (this.halfOpenSuccesses >= this.options.successThreshold) this.transition('closed');
    }
  }

  private recordFailure(): void {
    if (this.current === 'closed') {
      this.consecutiveFailures++;
      if (this.consecutiveFailures >= this.options.failureThreshold) this.transition('open');
    } else if (this.current === 'half_open') {
      this.transition('open');
    }
  }

  private transition(to: CircuitState): void {
    const from = this.current;
    this.consecutiveFailures = 0;
    this.halfOpenSuccesses = 0;
    this.probesInFlight = 0;
    if (to === 'open') this.openedAt = this.now();
    if (from === to) return;
    this.current = to;
    this.generation = (this.generation + 1) & 0x3fffffff; // stays a small integer: tickets are generation × 2 + probe
    this.onChange(from, to);
  }
}

/** Copies `o` without keys whose value is undefined, so spreads keep defaults. */
export function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}
