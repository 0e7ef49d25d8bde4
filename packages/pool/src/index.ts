/**
 * @picket/pool — an agent connection pool that works on any `AgentTransport`:
 * load balancing, health probes, reconnect with backoff, circuit breaker,
 * correlation affinity, sticky sessions, flow-control gate, fail-open/closed,
 * drain, stats and Prometheus metrics.
 */
export { BoundedTtlMap } from './affinity.js';
export { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
export {
  type BalanceCandidate,
  type BalancerState,
  LOAD_BALANCE_STRATEGIES,
  type LoadBalanceStrategy,
  pickIndex,
} from './balancer.js';
export {
  type BreakerPermit,
  CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitState,
  DEFAULT_CIRCUIT_BREAKER,
} from './breaker.js';
export { type Failure, FailureReason, failureResponse } from './failure.js';
export {
  AgentMetricsCollector,
  type AgentMetricsCollectorOptions,
  escapeHelp,
  escapeLabelValue,
  formatValue,
  LATENCY_BUCKETS_SECONDS,
  LatencyHistogram,
  LatencyReservoir,
  PromWriter,
  sanitizeLabelName,
  sanitizeMetricName,
} from './metrics.js';
export {
  type AgentOptions,
  type ConnectFactory,
  DEFAULT_AGENT_OPTIONS,
  DEFAULT_POOL_LIMITS,
  type DrainOptions,
  type FailureMode,
  type FlowControlMode,
  type PoolCallOptions,
  type PoolOptions,
  type ResolvedAgentOptions,
} from './options.js';
export { AgentPool, type AgentStats, type ConnectionStats } from './pool.js';
export type { PoolEventMap, PoolStatus } from './status.js';
