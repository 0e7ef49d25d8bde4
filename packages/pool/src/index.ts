/**
 * @picket/pool — an agent connection pool that works on any `AgentTransport`:
 * load balancing, health probes, reconnect with backoff, circuit breaker,
 * correlation affinity, sticky sessions, flow-control gate, fail-open/closed,
 * drain, stats and Prometheus metrics. Its building blocks are in `@picket/pool/internal`
 * (outside semver).
 */
export { type BackoffOptions, DEFAULT_BACKOFF } from './backoff.js';
export { LOAD_BALANCE_STRATEGIES, type LoadBalanceStrategy } from './balancer.js';
export {
  type CircuitBreakerOptions,
  type CircuitState,
  DEFAULT_CIRCUIT_BREAKER,
} from './breaker.js';
export { type Failure, FailureReason } from './failure.js';
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
} from './options.js';
export { AgentPool, type AgentStats, type ConnectionStats } from './pool.js';
export type { PoolEventMap, PoolStatus } from './status.js';
