/**
 * What the pool reports: `AgentStats` per agent, and the Prometheus text
 * rendered from those stats plus the per-event counters — the pool class
 * itself renders nothing.
 */
import type { AgentTransport, EventType } from '@picket/protocol';
import type { AgentState, EventMetrics } from './agent-state.js';
import type { CircuitState } from './breaker.js';
import { type AgentMetricsCollector, PromWriter } from './metrics.js';

/** Per-connection numbers in {@link AgentStats}. */
export interface ConnectionStats {
  /** the pool's id of the connection (`<agent>#<n>`) */
  id: string;
  kind: AgentTransport['kind'];
  healthy: boolean;
  paused: boolean;
  /** calls the pool runs on it now */
  inFlight: number;
  requests: number;
  errors: number;
  consecutiveErrors: number;
  /** decaying average of call and probe outcomes, 0…1 */
  errorRate: number;
  /** last ping round trip; null before the first probe */
  lastPingMs: number | null;
  /** added with `addConnection` (cannot be redialled) */
  reverse: boolean;
}

/** What `stats()` reports per agent. */
export interface AgentStats {
  agentId: string;
  /** open connections */
  activeConnections: number;
  /** connections that get traffic (connected, under the error threshold, not paused, not reported unhealthy) */
  healthyConnections: number;
  pausedConnections: number;
  /** calls running on a connection */
  totalInFlight: number;
  /** calls waiting for a connection slot, or for a paused agent to resume (flow control `wait`) */
  queued: number;
  totalRequests: number;
  /** calls answered by the failure mode instead of the agent */
  totalErrors: number;
  totalTimeouts: number;
  /** totalErrors / totalRequests */
  errorRate: number;
  /** at least one healthy connection */
  isHealthy: boolean;
  circuitState: CircuitState;
  /** successful connects after the first one */
  reconnects: number;
  /** percentiles of recent call durations in ms; null before the first call */
  latencyMs: { p50: number; p95: number; p99: number } | null;
  connections: ConnectionStats[];
}

export function statsOf(a: AgentState): AgentStats {
  const connections: ConnectionStats[] = [...a.connections.values()].map((c) => ({
    id: c.id,
    kind: c.transport.kind,
    healthy: a.usable(c),
    paused: c.transport.paused,
    inFlight: c.active,
    requests: c.requests,
    errors: c.errors,
    consecutiveErrors: c.consecutiveErrors,
    errorRate: c.errorRate,
    lastPingMs: c.lastPingMs,
    reverse: c.slot === undefined,
  }));
  const healthy = connections.filter((c) => c.healthy).length;
  return {
    agentId: a.id,
    activeConnections: connections.length,
    healthyConnections: healthy,
    pausedConnections: connections.filter((c) => c.paused).length,
    totalInFlight: connections.reduce((n, c) => n + c.inFlight, 0),
    queued: a.waiters.length + a.flowWaiters.size,
    totalRequests: a.totalRequests,
    totalErrors: a.totalErrors,
    totalTimeouts: a.totalTimeouts,
    errorRate: a.totalRequests === 0 ? 0 : a.totalErrors / a.totalRequests,
    isHealthy: healthy > 0,
    circuitState: a.breaker?.state ?? 'closed',
    reconnects: a.reconnects,
    latencyMs: a.latency.percentiles(),
    connections,
  };
}

/** One agent's input to the exporter: its stats and the counters stats do not carry. */
export interface AgentMetricsInput {
  stats: AgentStats;
  events: ReadonlyMap<EventType, EventMetrics>;
  /** synthesized answers by `mode\0reason` */
  failureResponses: ReadonlyMap<string, number>;
  flowControlPauses: number;
}

/** Pool-wide numbers for the exporter. */
export interface PoolMetricsInput {
  agents: AgentMetricsInput[];
  affinities: number;
  affinityRejections: number;
  affinityEvictions: number;
  collector: AgentMetricsCollector;
}

export function metricsInput(a: AgentState): AgentMetricsInput {
  return {
    stats: statsOf(a),
    events: a.events,
    failureResponses: a.failureResponses,
    flowControlPauses: a.flowControlPauses,
  };
}

type Labels = [string, string][];

/**
 * Prometheus text: the pool's own `picket_pool_*` families (agents sorted by
 * id, events by name), then the series agents reported.
 */
export function renderPoolMetrics(input: PoolMetricsInput): string {
  const w = new PromWriter();
  const agents = [...input.agents].sort((a, b) =>
    a.stats.agentId < b.stats.agentId ? -1 : a.stats.agentId > b.stats.agentId ? 1 : 0,
  );
  const perEvent = (fn: (id: string, type: EventType, m: EventMetrics) => void) => {
    for (const a of agents) {
      for (const type of [...a.events.keys()].sort()) {
        fn(a.stats.agentId, type, a.events.get(type) as EventMetrics);
      }
    }
  };
  const ev = (id: string, type: EventType): Labels => [
    ['agent_id', id],
    ['event', type],
  ];
  w.family('picket_pool_requests_total', 'counter', 'Calls made through the pool.');
  perEvent((id, type, m) => w.sample('picket_pool_requests_total', ev(id, type), m.requests));
  w.family('picket_pool_errors_total', 'counter', 'Calls the agent did not answer, by reason.');
  perEvent((id, type, m) => {
    for (const reason of [...m.errors.keys()].sort()) {
      w.sample(
        'picket_pool_errors_total',
        [...ev(id, type), ['reason', reason]],
        m.errors.get(reason) ?? 0,
      );
    }
  });
  w.family('picket_pool_timeouts_total', 'counter', 'Calls that timed out.');
  perEvent((id, type, m) => w.sample('picket_pool_timeouts_total', ev(id, type), m.timeouts));
  w.family(
    'picket_pool_failure_responses_total',
    'counter',
    'Responses synthesized by the failure mode instead of the agent.',
  );
  for (const a of agents) {
    for (const key of [...a.failureResponses.keys()].sort()) {
      const [mode = '', reason = ''] = key.split('\u0000');
      w.sample(
        'picket_pool_failure_responses_total',
        [
          ['agent_id', a.stats.agentId],
          ['mode', mode],
          ['reason', reason],
        ],
        a.failureResponses.get(key) ?? 0,
      );
    }
  }
  w.family(
    'picket_pool_request_duration_seconds',
    'histogram',
    'Duration of calls, from admission to answer or failure.',
  );
  perEvent((id, type, m) =>
    m.latency.write(w, 'picket_pool_request_duration_seconds', ev(id, type)),
  );
  w.family(
    'picket_pool_circuit_state',
    'gauge',
    'Circuit breaker state per agent (1 for the current state).',
  );
  for (const a of agents) {
    for (const s of ['closed', 'half_open', 'open'] as const) {
      w.sample(
        'picket_pool_circuit_state',
        [
          ['agent_id', a.stats.agentId],
          ['state', s],
        ],
        s === a.stats.circuitState ? 1 : 0,
      );
    }
  }
  const perAgent = (
    type: 'gauge' | 'counter',
    name: string,
    help: string,
    value: (a: AgentMetricsInput) => number,
  ) => {
    w.family(name, type, help);
    for (const a of agents) w.sample(name, [['agent_id', a.stats.agentId]], value(a));
  };
  perAgent(
    'gauge',
    'picket_pool_connections',
    'Open connections per agent.',
    (a) => a.stats.activeConnections,
  );
  perAgent(
    'gauge',
    'picket_pool_healthy_connections',
    'Connections that get traffic.',
    (a) => a.stats.healthyConnections,
  );
  perAgent(
    'gauge',
    'picket_pool_paused_connections',
    'Connections paused by the agent (flow control).',
    (a) => a.stats.pausedConnections,
  );
  perAgent(
    'gauge',
    'picket_pool_in_flight_requests',
    'Calls running on a connection.',
    (a) => a.stats.totalInFlight,
  );
  perAgent(
    'gauge',
    'picket_pool_queued_requests',
    'Calls waiting for a connection slot or for a paused agent to resume.',
    (a) => a.stats.queued,
  );
  perAgent(
    'gauge',
    'picket_pool_agent_healthy',
    '1 when the agent has a healthy connection.',
    (a) => (a.stats.isHealthy ? 1 : 0),
  );
  perAgent(
    'counter',
    'picket_pool_reconnects_total',
    'Successful reconnects.',
    (a) => a.stats.reconnects,
  );
  perAgent(
    'counter',
    'picket_pool_flow_control_pauses_total',
    'Pause signals received from the agent.',
    (a) => a.flowControlPauses,
  );
  const single = (type: 'gauge' | 'counter', name: string, help: string, value: number) => {
    w.family(name, type, help);
    w.sample(name, [], value);
  };
  single(
    'gauge',
    'picket_pool_correlation_affinities',
    'Requests pinned to a connection.',
    input.affinities,
  );
  single(
    'counter',
    'picket_pool_affinity_rejections_total',
    'Affinities refused: map full.',
    input.affinityRejections,
  );
  single(
    'counter',
    'picket_pool_affinity_evictions_total',
    'Affinities expired by TTL.',
    input.affinityEvictions,
  );
  single(
    'gauge',
    'picket_pool_agent_metric_series',
    'Agent-reported series kept.',
    input.collector.size,
  );
  single(
    'counter',
    'picket_pool_agent_metric_series_dropped_total',
    'Agent series refused: limit.',
    input.collector.dropped,
  );
  input.collector.render(w);
  return w.toString();
}
