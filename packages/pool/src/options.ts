import type { Context, Tracer } from '@opentelemetry/api';
import {
  AgentProtocolError,
  type AgentTransport,
  type CallOptions,
  ErrorCode,
} from '@picket/protocol';
import type { BackoffOptions } from './backoff.js';
import { DEFAULT_BACKOFF } from './backoff.js';
import { LOAD_BALANCE_STRATEGIES, type LoadBalanceStrategy } from './balancer.js';
import type { CircuitBreakerOptions } from './breaker.js';
import { DEFAULT_CIRCUIT_BREAKER, stripUndefined } from './breaker.js';

/**
 * What a call returns when the agent could not give an answer:
 * `closed` — a synthesized block 503 (reason code names the failure);
 * `open` — a synthesized allow tagged `fail_open`;
 * `throw` — the call rejects with the `AgentProtocolError`.
 */
export type FailureMode = 'closed' | 'open' | 'throw';

/**
 * What happens when every connection of an agent is paused by flow control:
 * `fail_closed` — the call fails with FLOW_CONTROL_PAUSED (then `failureMode` applies);
 * `fail_open` — a synthesized allow, the agent is not called;
 * `wait` — wait up to `flowControlWaitMs` for a connection to resume, then fail closed.
 */
export type FlowControlMode = 'fail_closed' | 'fail_open' | 'wait';

/** Opens one connection to an agent; the pool calls it again to reconnect. */
export type ConnectFactory = () => Promise<AgentTransport>;

/** Settings of one agent; each falls back to the pool's value, then to the default. */
export interface AgentOptions {
  /** connections the pool keeps open (default 4) */
  connectionsPerAgent?: number;
  /** how a connection is picked (default `round_robin`) */
  strategy?: LoadBalanceStrategy;
  /** answer when the agent cannot (default `closed`) */
  failureMode?: FailureMode;
  /** whole-call deadline incl. queueing, unless the call passes `timeoutMs` (default 30 000 ms) */
  requestTimeoutMs?: number;
  /** limit for one `connect()` (default 5 000 ms) */
  connectTimeoutMs?: number;
  /** calls the pool runs at once on one connection (default 100) */
  maxConcurrentPerConnection?: number;
  /** calls that may wait for a free slot; more fail with UNAVAILABLE (default 1 000) */
  maxQueued?: number;
  /** consecutive errors (calls or probes) that make a connection unhealthy (default 3) */
  maxConsecutiveErrors?: number;
  /** ping interval per connection; 0 disables probes (default 10 000 ms) */
  healthCheckIntervalMs?: number;
  /** timeout of one ping (default 5 000 ms, at most the interval) */
  pingTimeoutMs?: number;
  /** reconnect backoff; the pool never stops retrying */
  reconnect?: BackoffOptions;
  /** breaker settings, or `false` for none */
  circuitBreaker?: CircuitBreakerOptions | false;
  /** all-connections-paused behaviour (default `fail_closed`) */
  flowControl?: FlowControlMode;
  /** longest wait of the `wait` flow-control mode (default 100 ms) */
  flowControlWaitMs?: number;
  /** sticky session lifetime since last use; `null` = forever (default 300 000 ms) */
  stickySessionTimeoutMs?: number | null;
}

/** Pool-wide settings: defaults for every agent plus the shared limits. */
export interface PoolOptions extends AgentOptions {
  /** correlation-affinity entries kept (default 100 000) */
  maxAffinities?: number;
  /** affinity entry lifetime (default 300 000 ms) */
  affinityTtlMs?: number;
  /** sticky sessions kept (default 100 000) */
  maxSessions?: number;
  /** agent-reported metric series kept (default 10 000) */
  maxMetricSeries?: number;
  /** an agent-reported series not updated this long is dropped (default 300 000 ms) */
  metricSeriesExpiryMs?: number;
  /** latency samples kept per agent for percentiles (default 1 024) */
  latencySamples?: number;
  /** drain limit of `close()` and `removeAgent()` without an explicit one (default 30 000 ms) */
  drainTimeoutMs?: number;
  /** random source for jitter and random strategies (tests) */
  random?: () => number;
  /** a CLIENT span per agent call (README: Tracing); default none */
  tracer?: Tracer;
  /** `true`: trace with the global provider's tracer `@picket/pool` (when no `tracer`) */
  tracing?: boolean;
}

/** Options of one pool call. */
export interface PoolCallOptions extends CallOptions {
  /** sticky session: request headers with the same id go to the same connection */
  sessionId?: string;
  /** the parent of the call's span when the pool traces; default the active context */
  parentContext?: Context;
}

/** Options of `close()` / `removeAgent()`. */
export interface DrainOptions {
  /** how long in-flight calls may finish before they are cancelled (`proxy_shutdown`) */
  drainTimeoutMs?: number;
}

/** Agent settings after defaults were applied. */
export interface ResolvedAgentOptions
  extends Required<Omit<AgentOptions, 'reconnect' | 'circuitBreaker' | 'stickySessionTimeoutMs'>> {
  reconnect: Required<BackoffOptions>;
  circuitBreaker: Required<CircuitBreakerOptions> | false;
  stickySessionTimeoutMs: number | null;
}

/** The defaults of {@link AgentOptions}. */
export const DEFAULT_AGENT_OPTIONS: ResolvedAgentOptions = {
  connectionsPerAgent: 4,
  strategy: 'round_robin',
  failureMode: 'closed',
  requestTimeoutMs: 30_000,
  connectTimeoutMs: 5_000,
  maxConcurrentPerConnection: 100,
  maxQueued: 1_000,
  maxConsecutiveErrors: 3,
  healthCheckIntervalMs: 10_000,
  pingTimeoutMs: 5_000,
  reconnect: DEFAULT_BACKOFF,
  circuitBreaker: DEFAULT_CIRCUIT_BREAKER,
  flowControl: 'fail_closed',
  flowControlWaitMs: 100,
  stickySessionTimeoutMs: 300_000,
};

/** The pool-only defaults of {@link PoolOptions}. */
export const DEFAULT_POOL_LIMITS = {
  maxAffinities: 100_000,
  affinityTtlMs: 300_000,
  maxSessions: 100_000,
  maxMetricSeries: 10_000,
  metricSeriesExpiryMs: 300_000,
  latencySamples: 1_024,
  drainTimeoutMs: 30_000,
} as const;

/** The pool-only limits after defaults were applied. */
export type PoolLimits = { -readonly [K in keyof typeof DEFAULT_POOL_LIMITS]: number };

/** Splits pool options into validated agent defaults and pool limits. */
export function resolvePoolOptions(options: PoolOptions): {
  defaults: ResolvedAgentOptions;
  limits: PoolLimits;
} {
  const {
    maxAffinities: _a,
    affinityTtlMs: _b,
    maxSessions: _c,
    maxMetricSeries: _d,
    metricSeriesExpiryMs: _e,
    latencySamples: _f,
    drainTimeoutMs: _g,
    random: _h,
    tracer: _i,
    tracing: _j,
    ...agentDefaults
  } = options;
  const defaults = resolveAgentOptions(DEFAULT_AGENT_OPTIONS, agentDefaults);
  const o = stripUndefined(options);
  const limits: PoolLimits = {
    maxAffinities: o.maxAffinities ?? DEFAULT_POOL_LIMITS.maxAffinities,
    affinityTtlMs: o.affinityTtlMs ?? DEFAULT_POOL_LIMITS.affinityTtlMs,
    maxSessions: o.maxSessions ?? DEFAULT_POOL_LIMITS.maxSessions,
    maxMetricSeries: o.maxMetricSeries ?? DEFAULT_POOL_LIMITS.maxMetricSeries,
    metricSeriesExpiryMs: o.metricSeriesExpiryMs ?? DEFAULT_POOL_LIMITS.metricSeriesExpiryMs,
    latencySamples: o.latencySamples ?? DEFAULT_POOL_LIMITS.latencySamples,
    drainTimeoutMs: o.drainTimeoutMs ?? DEFAULT_POOL_LIMITS.drainTimeoutMs,
  };
  for (const [k, v] of Object.entries(limits)) positive(k, v, k === 'latencySamples' ? 1 : 0);
  return { defaults, limits };
}

function positive(name: string, v: number, min = 1): number {
  if (!(Number.isFinite(v) && v >= min)) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `pool option ${name} must be a number >= ${min}, got ${String(v)}`,
    );
  }
  return v;
}

/** Applies `o` over `base` and validates the result. */
export function resolveAgentOptions(
  base: ResolvedAgentOptions,
  o: AgentOptions,
): ResolvedAgentOptions {
  const s = stripUndefined(o);
  const breaker =
    s.circuitBreaker === false
      ? false
      : s.circuitBreaker === undefined
        ? base.circuitBreaker
        : ({
            ...(base.circuitBreaker || DEFAULT_AGENT_OPTIONS.circuitBreaker),
            ...stripUndefined(s.circuitBreaker),
          } as Required<CircuitBreakerOptions>);
  const r: ResolvedAgentOptions = {
    ...base,
    ...s,
    reconnect: { ...base.reconnect, ...stripUndefined(s.reconnect ?? {}) },
    circuitBreaker: breaker,
    stickySessionTimeoutMs:
      o.stickySessionTimeoutMs === undefined
        ? base.stickySessionTimeoutMs
        : o.stickySessionTimeoutMs,
  };
  positive('connectionsPerAgent', r.connectionsPerAgent);
  positive('requestTimeoutMs', r.requestTimeoutMs);
  positive('connectTimeoutMs', r.connectTimeoutMs);
  positive('maxConcurrentPerConnection', r.maxConcurrentPerConnection);
  positive('maxQueued', r.maxQueued, 0);
  positive('maxConsecutiveErrors', r.maxConsecutiveErrors);
  positive('healthCheckIntervalMs', r.healthCheckIntervalMs, 0);
  positive('pingTimeoutMs', r.pingTimeoutMs);
  positive('flowControlWaitMs', r.flowControlWaitMs, 0);
  positive('reconnect.initialDelayMs', r.reconnect.initialDelayMs, 0);
  positive('reconnect.maxDelayMs', r.reconnect.maxDelayMs, 0);
  positive('reconnect.multiplier', r.reconnect.multiplier);
  if (!LOAD_BALANCE_STRATEGIES.includes(r.strategy)) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `unknown load-balance strategy "${r.strategy}"`,
    );
  }
  if (!['closed', 'open', 'throw'].includes(r.failureMode)) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `unknown failureMode "${r.failureMode}"`,
    );
  }
  if (!['fail_closed', 'fail_open', 'wait'].includes(r.flowControl)) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `unknown flowControl mode "${r.flowControl}"`,
    );
  }
  return r;
}
