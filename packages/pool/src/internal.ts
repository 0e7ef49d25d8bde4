/**
 * `@picket/pool/internal`: the pool's building blocks (affinity map, balancer, circuit breaker,
 * backoff, the Prometheus text writer and latency histograms), for picket's own packages and
 * apps (the gateway renders its metrics with them). Not part of the public API and outside
 * semver: it may change in any release.
 */
export { AffinityTable, BoundedTtlMap, type EntryBudget } from './affinity.js';
export { backoffDelay } from './backoff.js';
export { type BalanceCandidate, type BalancerState, pickIndex } from './balancer.js';
export { type BreakerOutcome, type BreakerPermit, CircuitBreaker } from './breaker.js';
export { failureResponse } from './failure.js';
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
export type { ResolvedAgentOptions } from './options.js';
