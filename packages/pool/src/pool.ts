import { EventEmitter } from 'node:events';
import {
  type AgentCapabilities,
  AgentProtocolError,
  type AgentResponse,
  type AgentTransport,
  type CallOptions,
  type CancelReason,
  type ConfigureEvent,
  ErrorCode,
  type EventMap,
  type EventType,
  eventCorrelationId,
  type GuardrailInspectEvent,
  type MetricsReport,
  type RequestBodyChunkEvent,
  type RequestCompleteEvent,
  type RequestHeadersEvent,
  type ResponseBodyChunkEvent,
  type ResponseHeadersEvent,
  type WebSocketFrameEvent,
} from '@picket/protocol';
import { BoundedTtlMap } from './affinity.js';
import { backoffDelay } from './backoff.js';
import { LOAD_BALANCE_STRATEGIES, pickIndex } from './balancer.js';
import {
  type BreakerPermit,
  CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitState,
  stripUndefined,
} from './breaker.js';
import {
  classify,
  type Failure,
  FailureReason,
  failureResponse,
  markUnsent,
  neverSent,
  poolError,
} from './failure.js';
import {
  AgentMetricsCollector,
  LatencyHistogram,
  LatencyReservoir,
  PromWriter,
} from './metrics.js';
import {
  type AgentOptions,
  type ConnectFactory,
  DEFAULT_AGENT_OPTIONS,
  DEFAULT_POOL_LIMITS,
  type DrainOptions,
  type FailureMode,
  type PoolCallOptions,
  type PoolOptions,
  type ResolvedAgentOptions,
} from './options.js';
import { type PoolEventMap, type PoolStatus, StatusStream } from './status.js';

/** Events whose connection follows the request's headers (correlation affinity). */
const AFFINE_EVENTS: ReadonlySet<EventType> = new Set<EventType>([
  'request_body_chunk',
  'response_headers',
  'response_body_chunk',
  'request_complete',
  'web_socket_frame',
]);

/** Extra time past the deadline before the pool stops waiting for a transport that ignores its timeout. */
const GUARD_GRACE_MS = 50;
/** The excluded set of a call's first attempt (no connection excluded yet; never written to). */
const NO_CONNS: Set<Conn> = new Set();

/** Weight of the newest outcome in a connection's error-rate average. */
const ERROR_RATE_ALPHA = 0.1;

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
  /** calls waiting for a connection slot */
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

interface EventMetrics {
  requests: number;
  timeouts: number;
  errors: Map<string, number>;
  latency: LatencyHistogram;
}

class Conn {
  active = 0;
  requests = 0;
  errors = 0;
  consecutiveErrors = 0;
  probeFailures = 0;
  errorRate = 0;
  lastPingMs: number | null = null;
  dead = false;
  probing = false;
  pingUnsupported = false;
  detach: () => void = () => {};

  constructor(
    readonly id: string,
    readonly transport: AgentTransport,
    readonly slot: Slot | undefined,
  ) {}

  sample(error: boolean): void {
    this.errorRate += ERROR_RATE_ALPHA * ((error ? 1 : 0) - this.errorRate);
  }
}

class Slot {
  conn: Conn | undefined;
  attempts = 0;
  timer: NodeJS.Timeout | undefined;
  stopped = false;
  connectedOnce = false;
}

interface Waiter {
  type: EventType;
  cid: string;
  sessionId: string | undefined;
  excluded: ReadonlySet<Conn>;
  /** resolves with a taken connection, or null: re-evaluate (e.g. everything paused) */
  wake: (conn: Conn | null) => void;
}

class Agent {
  readonly connections = new Map<string, Conn>();
  readonly slots: Slot[] = [];
  readonly waiters: Waiter[] = [];
  /** callbacks run whenever something that affects selection changed */
  readonly changeListeners = new Set<() => void>();
  readonly balancer = { cursor: 0 };
  readonly events = new Map<EventType, EventMetrics>();
  readonly latency: LatencyReservoir;
  breaker: CircuitBreaker | null = null;
  capabilities: AgentCapabilities | undefined;
  healthy = false;
  removed = false;
  inFlight = 0;
  drainWaiters: (() => void)[] = [];
  totalRequests = 0;
  totalErrors = 0;
  totalTimeouts = 0;
  reconnects = 0;
  flowControlPauses = 0;
  connSeq = 0;
  probeTimer: NodeJS.Timeout | undefined;
  breakerTimer: NodeJS.Timeout | undefined;
  failureResponses = new Map<string, number>();

  constructor(
    readonly id: string,
    readonly options: ResolvedAgentOptions,
    readonly connect: ConnectFactory | undefined,
    samples: number,
  ) {
    this.latency = new LatencyReservoir(samples);
  }

  metricsFor(type: EventType): EventMetrics {
    let m = this.events.get(type);
    if (!m) {
      m = { requests: 0, timeouts: 0, errors: new Map(), latency: new LatencyHistogram() };
      this.events.set(type, m);
    }
    return m;
  }
}

type Take = Conn | 'full' | 'paused' | 'none';

/**
 * A pool of connections to agents over any {@link AgentTransport}: keeps
 * `connectionsPerAgent` connections per agent and redials them forever with
 * backoff, picks a connection per call (five strategies, correlation affinity,
 * sticky sessions), probes health with pings, guards each agent with a
 * circuit breaker, and answers for an agent that cannot (fail closed, fail
 * open or throw). Emits {@link PoolStatus} changes as `'status'` events and
 * through `status()`.
 */
export class AgentPool extends EventEmitter<PoolEventMap> {
  private readonly defaults: ResolvedAgentOptions;
  private readonly limits: { -readonly [K in keyof typeof DEFAULT_POOL_LIMITS]: number };
  private readonly random: () => number;
  private readonly agents = new Map<string, Agent>();
  private readonly affinity: BoundedTtlMap<string>;
  private readonly sessions = new Map<string, BoundedTtlMap<string>>();
  private readonly collector: AgentMetricsCollector;
  private readonly streams = new Set<StatusStream>();
  private readonly sweepTimer: NodeJS.Timeout;
  private closing = false;
  private closed: Promise<void> | undefined;

  constructor(options: PoolOptions = {}) {
    super();
    const {
      maxAffinities: _a,
      affinityTtlMs: _b,
      maxSessions: _c,
      maxMetricSeries: _d,
      metricSeriesExpiryMs: _e,
      latencySamples: _f,
      drainTimeoutMs: _g,
      random: _h,
      ...agentDefaults
    } = options;
    this.defaults = resolveAgentOptions(DEFAULT_AGENT_OPTIONS, agentDefaults);
    const o = stripUndefined(options);
    this.limits = {
      maxAffinities: o.maxAffinities ?? DEFAULT_POOL_LIMITS.maxAffinities,
      affinityTtlMs: o.affinityTtlMs ?? DEFAULT_POOL_LIMITS.affinityTtlMs,
      maxSessions: o.maxSessions ?? DEFAULT_POOL_LIMITS.maxSessions,
      maxMetricSeries: o.maxMetricSeries ?? DEFAULT_POOL_LIMITS.maxMetricSeries,
      metricSeriesExpiryMs: o.metricSeriesExpiryMs ?? DEFAULT_POOL_LIMITS.metricSeriesExpiryMs,
      latencySamples: o.latencySamples ?? DEFAULT_POOL_LIMITS.latencySamples,
      drainTimeoutMs: o.drainTimeoutMs ?? DEFAULT_POOL_LIMITS.drainTimeoutMs,
    };
    for (const [k, v] of Object.entries(this.limits))
      positive(k, v, k === 'latencySamples' ? 1 : 0);
    this.random = options.random ?? Math.random;
    this.affinity = new BoundedTtlMap(this.limits.maxAffinities, this.limits.affinityTtlMs);
    this.collector = new AgentMetricsCollector({
      maxSeries: this.limits.maxMetricSeries,
      expiryMs: this.limits.metricSeriesExpiryMs,
      reservedPrefix: 'picket_pool_',
    });
    const sweepEvery = Math.max(1_000, Math.min(30_000, this.limits.affinityTtlMs));
    this.sweepTimer = setInterval(() => this.sweep(), sweepEvery);
    this.sweepTimer.unref();
  }

  // ------------------------------------------------------------------ membership

  /**
   * Adds an agent the pool dials itself. `connect` opens one connection and is
   * called again for every reconnect. Resolves, once every connection's first
   * attempt has settled, to the number of open connections; with 0 the agent
   * stays registered and the pool keeps redialling (calls meanwhile get the
   * failure mode).
   */
  async addAgent(id: string, connect: ConnectFactory, options: AgentOptions = {}): Promise<number> {
    if (typeof connect !== 'function') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `addAgent("${id}"): connect must be a function returning a transport`,
      );
    }
    const agent = this.createAgent(id, connect, options);
    const first: Promise<void>[] = [];
    for (let i = 0; i < agent.options.connectionsPerAgent; i++) {
      const slot = new Slot();
      agent.slots.push(slot);
      first.push(this.dial(agent, slot));
    }
    await Promise.all(first);
    return agent.connections.size;
  }

  /**
   * Adds a connection the agent opened itself (reverse connections). It is
   * never redialled: when it drops it is removed. Creates the agent on first
   * use (with `options`). Throws UNAVAILABLE when the pool is closed or the
   * agent already has `connectionsPerAgent` such connections; the caller then
   * closes the transport.
   */
  addConnection(id: string, transport: AgentTransport, options: AgentOptions = {}): string {
    if (this.closing) {
      throw new AgentProtocolError(
        ErrorCode.Unavailable,
        `agent pool is closed; refusing connection of agent "${id}"`,
      );
    }
    const agent = this.agents.get(id) ?? this.createAgent(id, undefined, options);
    const reverse = [...agent.connections.values()].filter((c) => !c.slot).length;
    if (reverse >= agent.options.connectionsPerAgent) {
      throw new AgentProtocolError(
        ErrorCode.Unavailable,
        `agent "${id}" already has ${reverse} connections (connectionsPerAgent ${agent.options.connectionsPerAgent})`,
      );
    }
    return this.attach(agent, transport, undefined).id;
  }

  /**
   * Removes an agent: new calls are refused at once, running ones may finish
   * within the drain timeout, then the rest are cancelled (`proxy_shutdown`)
   * and the connections closed. Resolves false when the agent was unknown.
   */
  async removeAgent(id: string, options: DrainOptions = {}): Promise<boolean> {
    const agent = this.agents.get(id);
    if (!agent) return false;
    this.agents.delete(id);
    await this.shutdownAgent(agent, options.drainTimeoutMs ?? this.limits.drainTimeoutMs);
    this.emitStatus({ type: 'agent_removed', agentId: id });
    return true;
  }

  /**
   * Closes the pool: refuses new calls, lets running and queued calls finish
   * for up to `drainTimeoutMs`, cancels what is left with the `proxy_shutdown`
   * reason (those calls end with their failure mode), then closes every
   * connection. Idempotent.
   */
  close(options: DrainOptions = {}): Promise<void> {
    if (this.closed) return this.closed;
    this.closing = true;
    clearInterval(this.sweepTimer);
    const drainMs = options.drainTimeoutMs ?? this.limits.drainTimeoutMs;
    this.closed = (async () => {
      const agents = [...this.agents.values()];
      await Promise.all(agents.map((a) => this.shutdownAgent(a, drainMs)));
      this.agents.clear();
      this.affinity.clear();
      this.sessions.clear();
      for (const s of [...this.streams]) s.end();
    })();
    return this.closed;
  }

  /** Ids of the registered agents. */
  agentIds(): string[] {
    return [...this.agents.keys()];
  }

  /** Whether `id` is registered. */
  hasAgent(id: string): boolean {
    return this.agents.has(id);
  }

  /** Capabilities the agent announced on its first connection. */
  capabilities(id: string): AgentCapabilities | undefined {
    return this.agents.get(id)?.capabilities;
  }

  // ------------------------------------------------------------------ calls

  /** Sends request headers; remembers the connection for the request's later events. */
  sendRequestHeaders(
    agentId: string,
    event: RequestHeadersEvent,
    options?: PoolCallOptions,
  ): Promise<AgentResponse> {
    return this.call(agentId, 'request_headers', event, options);
  }

  /** Request headers pinned to the connection of `sessionId` (sticky sessions). */
  sendRequestHeadersWithSession(
    agentId: string,
    event: RequestHeadersEvent,
    sessionId: string,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.call(agentId, 'request_headers', event, { ...options, sessionId });
  }

  /** Sends a request body chunk on the connection that saw the headers, when it is still usable. */
  sendRequestBodyChunk(
    agentId: string,
    event: RequestBodyChunkEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.call(agentId, 'request_body_chunk', event, options);
  }

  sendResponseHeaders(
    agentId: string,
    event: ResponseHeadersEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.call(agentId, 'response_headers', event, options);
  }

  sendResponseBodyChunk(
    agentId: string,
    event: ResponseBodyChunkEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.call(agentId, 'response_body_chunk', event, options);
  }

  /** Sends request-complete and then forgets the request's connection affinity. */
  sendRequestComplete(
    agentId: string,
    event: RequestCompleteEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.call(agentId, 'request_complete', event, options);
  }

  sendWebSocketFrame(
    agentId: string,
    event: WebSocketFrameEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.call(agentId, 'web_socket_frame', event, options);
  }

  sendGuardrailInspect(
    agentId: string,
    event: GuardrailInspectEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.call(agentId, 'guardrail_inspect', event, options);
  }

  sendConfigure(
    agentId: string,
    event: ConfigureEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.call(agentId, 'configure', event, options);
  }

  /**
   * Tells an agent that a request no longer matters (the client went away, the
   * proxy gave up): sends Cancel on the connection that saw the request's
   * headers, which also rejects a call of that request still pending there.
   * Resolves `false` when no connection of the agent knows the request (it never
   * reached the agent, or already completed).
   */
  async cancel(
    agentId: string,
    correlationId: string,
    reason: CancelReason = 'client_disconnect',
  ): Promise<boolean> {
    const agent = this.agents.get(agentId);
    const connId = this.affinity.get(affinityKey(agentId, correlationId));
    const conn = connId === undefined ? undefined : agent?.connections.get(connId);
    if (conn === undefined || conn.dead) return false;
    await conn.transport.cancel(correlationId, reason);
    return true;
  }

  /** Forgets the connection affinity of a request (on every agent). */
  clearAffinity(correlationId: string): void {
    for (const id of this.agents.keys()) this.affinity.delete(affinityKey(id, correlationId));
  }

  /** Forgets a sticky session (on every agent, or on one). */
  clearSession(sessionId: string, agentId?: string): void {
    for (const [id, map] of this.sessions)
      if (agentId === undefined || id === agentId) map.delete(sessionId);
  }

  // ------------------------------------------------------------------ observability

  /** Numbers of one agent, or undefined when it is not registered. */
  agentStats(id: string): AgentStats | undefined {
    const a = this.agents.get(id);
    return a && this.statsOf(a);
  }

  /** Numbers of every agent. */
  stats(): AgentStats[] {
    return [...this.agents.values()].map((a) => this.statsOf(a));
  }

  /**
   * Prometheus text: the pool's own `picket_pool_*` families (requests, errors,
   * timeouts, latency histogram per agent and event type, circuit state,
   * connections, in-flight …), then the series agents reported, with an
   * `agent_id` label.
   */
  metrics(): string {
    const w = new PromWriter();
    const agents = [...this.agents.values()].sort((a, b) =>
      a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
    );
    const perEvent = (fn: (a: Agent, type: EventType, m: EventMetrics) => void) => {
      for (const a of agents) {
        for (const type of [...a.events.keys()].sort()) fn(a, type, a.metricsFor(type));
      }
    };
    w.family('picket_pool_requests_total', 'counter', 'Calls made through the pool.');
    perEvent((a, type, m) =>
      w.sample(
        'picket_pool_requests_total',
        [
          ['agent_id', a.id],
          ['event', type],
        ],
        m.requests,
      ),
    );
    w.family('picket_pool_errors_total', 'counter', 'Calls the agent did not answer, by reason.');
    perEvent((a, type, m) => {
      for (const reason of [...m.errors.keys()].sort()) {
        w.sample(
          'picket_pool_errors_total',
          [
            ['agent_id', a.id],
            ['event', type],
            ['reason', reason],
          ],
          m.errors.get(reason) ?? 0,
        );
      }
    });
    w.family('picket_pool_timeouts_total', 'counter', 'Calls that timed out.');
    perEvent((a, type, m) =>
      w.sample(
        'picket_pool_timeouts_total',
        [
          ['agent_id', a.id],
          ['event', type],
        ],
        m.timeouts,
      ),
    );
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
            ['agent_id', a.id],
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
    perEvent((a, type, m) =>
      m.latency.write(w, 'picket_pool_request_duration_seconds', [
        ['agent_id', a.id],
        ['event', type],
      ]),
    );
    w.family(
      'picket_pool_circuit_state',
      'gauge',
      'Circuit breaker state per agent (1 for the current state).',
    );
    for (const a of agents) {
      const state = a.breaker?.state ?? 'closed';
      for (const s of ['closed', 'half_open', 'open'] as const) {
        w.sample(
          'picket_pool_circuit_state',
          [
            ['agent_id', a.id],
            ['state', s],
          ],
          s === state ? 1 : 0,
        );
      }
    }
    const gauge = (name: string, help: string, value: (a: Agent) => number) => {
      w.family(name, 'gauge', help);
      for (const a of agents) w.sample(name, [['agent_id', a.id]], value(a));
    };
    const counter = (name: string, help: string, value: (a: Agent) => number) => {
      w.family(name, 'counter', help);
      for (const a of agents) w.sample(name, [['agent_id', a.id]], value(a));
    };
    gauge('picket_pool_connections', 'Open connections per agent.', (a) => a.connections.size);
    gauge('picket_pool_healthy_connections', 'Connections that get traffic.', (a) =>
      this.healthyCount(a),
    );
    gauge(
      'picket_pool_paused_connections',
      'Connections paused by the agent (flow control).',
      (a) => [...a.connections.values()].filter((c) => c.transport.paused).length,
    );
    gauge('picket_pool_in_flight_requests', 'Calls running on a connection.', (a) =>
      [...a.connections.values()].reduce((n, c) => n + c.active, 0),
    );
    gauge(
      'picket_pool_queued_requests',
      'Calls waiting for a connection slot.',
      (a) => a.waiters.length,
    );
    gauge('picket_pool_agent_healthy', '1 when the agent has a healthy connection.', (a) =>
      this.healthyCount(a) > 0 ? 1 : 0,
    );
    counter('picket_pool_reconnects_total', 'Successful reconnects.', (a) => a.reconnects);
    counter(
      'picket_pool_flow_control_pauses_total',
      'Pause signals received from the agent.',
      (a) => a.flowControlPauses,
    );
    w.family('picket_pool_correlation_affinities', 'gauge', 'Requests pinned to a connection.');
    w.sample('picket_pool_correlation_affinities', [], this.affinity.size);
    w.family('picket_pool_affinity_rejections_total', 'counter', 'Affinities refused: map full.');
    w.sample('picket_pool_affinity_rejections_total', [], this.affinity.rejections);
    w.family('picket_pool_affinity_evictions_total', 'counter', 'Affinities expired by TTL.');
    w.sample('picket_pool_affinity_evictions_total', [], this.affinity.evictions);
    w.family('picket_pool_agent_metric_series', 'gauge', 'Agent-reported series kept.');
    w.sample('picket_pool_agent_metric_series', [], this.collector.size);
    w.family(
      'picket_pool_agent_metric_series_dropped_total',
      'counter',
      'Agent series refused: limit.',
    );
    w.sample('picket_pool_agent_metric_series_dropped_total', [], this.collector.dropped);
    this.collector.render(w);
    return w.toString();
  }

  /**
   * Status changes as an async iterator (ends when the pool closes). A slow
   * consumer loses the oldest events beyond `bufferSize` (default 1 000).
   */
  status(options: { bufferSize?: number } = {}): AsyncIterableIterator<PoolStatus> {
    const stream = new StatusStream(options.bufferSize ?? 1_000, (s) => this.streams.delete(s));
    if (this.closed) stream.end();
    else this.streams.add(stream);
    return stream;
  }

  // ------------------------------------------------------------------ internals: agents

  private createAgent(
    id: string,
    connect: ConnectFactory | undefined,
    options: AgentOptions,
  ): Agent {
    if (this.closing) {
      throw new AgentProtocolError(
        ErrorCode.Unavailable,
        `agent pool is closed; cannot add agent "${id}"`,
      );
    }
    if (typeof id !== 'string' || id === '') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        'agent id must be a non-empty string',
      );
    }
    if (this.agents.has(id)) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `agent "${id}" is already in the pool`,
      );
    }
    const resolved = resolveAgentOptions(this.defaults, options);
    const agent = new Agent(id, resolved, connect, this.limits.latencySamples);
    if (resolved.circuitBreaker) {
      agent.breaker = new CircuitBreaker(resolved.circuitBreaker, (from, to) =>
        this.onCircuit(agent, from, to),
      );
    }
    this.sessions.set(
      id,
      new BoundedTtlMap<string>(this.limits.maxSessions, resolved.stickySessionTimeoutMs, true),
    );
    this.agents.set(id, agent);
    if (resolved.healthCheckIntervalMs > 0) {
      agent.probeTimer = setInterval(() => this.probe(agent), resolved.healthCheckIntervalMs);
      agent.probeTimer.unref();
    }
    this.emitStatus({ type: 'agent_added', agentId: id });
    return agent;
  }

  private onCircuit(agent: Agent, from: CircuitState, to: CircuitState): void {
    clearTimeout(agent.breakerTimer);
    if (to === 'open' && agent.breaker) {
      // lazily the breaker would only notice on the next call; the timer makes the
      // half-open transition (and its status event) happen on time
      agent.breakerTimer = setTimeout(
        () => agent.breaker?.refresh(),
        agent.breaker.options.openTimeoutMs,
      );
      agent.breakerTimer.unref();
    }
    this.emitStatus({ type: 'circuit', agentId: agent.id, from, to });
  }

  private async shutdownAgent(agent: Agent, drainMs: number): Promise<void> {
    agent.removed = true;
    clearInterval(agent.probeTimer);
    clearTimeout(agent.breakerTimer);
    for (const slot of agent.slots) {
      slot.stopped = true;
      clearTimeout(slot.timer);
    }
    await this.waitDrained(agent, drainMs);
    // what is still running now is cancelled; the calls end with their failure mode
    const conns = [...agent.connections.values()];
    await Promise.allSettled(conns.map((c) => c.transport.cancelAll('proxy_shutdown')));
    for (const w of agent.waiters.splice(0)) w.wake(null);
    for (const l of [...agent.changeListeners]) l();
    for (const c of conns) this.connectionDown(agent, c, 'agent removed or pool closed');
    await Promise.allSettled(conns.map((c) => c.transport.close()));
    this.affinity.deleteWhere((_v, k) => k.startsWith(`${agent.id}\u0000`));
    this.sessions.delete(agent.id);
    this.collector.removeAgent(agent.id);
  }

  private waitDrained(agent: Agent, ms: number): Promise<void> {
    if (agent.inFlight === 0 || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      agent.drainWaiters.push(done);
    });
  }

  // ------------------------------------------------------------------ internals: connections

  /** One connect attempt for `slot`; on failure schedules the next (forever). */
  private async dial(agent: Agent, slot: Slot): Promise<void> {
    slot.timer = undefined;
    if (slot.stopped || agent.removed) return;
    let transport: AgentTransport;
    try {
      transport = await this.connectWithTimeout(agent);
    } catch (e) {
      if (slot.stopped || agent.removed) return;
      const error = AgentProtocolError.from(
        e,
        ErrorCode.ConnectionFailed,
        `connect to agent "${agent.id}"`,
      );
      const attempt = slot.attempts++;
      const delay = backoffDelay(attempt, agent.options.reconnect, this.random);
      this.emitStatus({
        type: 'connect_failed',
        agentId: agent.id,
        attempt,
        retryInMs: delay,
        error,
      });
      this.schedule(agent, slot, delay);
      return;
    }
    if (slot.stopped || agent.removed) {
      transport.close().catch(() => {});
      return;
    }
    slot.attempts = 0;
    if (slot.connectedOnce) agent.reconnects++;
    slot.connectedOnce = true;
    this.attach(agent, transport, slot);
  }

  private schedule(agent: Agent, slot: Slot, delay: number): void {
    if (slot.stopped || agent.removed) return;
    clearTimeout(slot.timer);
    slot.timer = setTimeout(() => void this.dial(agent, slot), delay);
    slot.timer.unref();
  }

  private connectWithTimeout(agent: Agent): Promise<AgentTransport> {
    const connect = agent.connect as ConnectFactory;
    const ms = agent.options.connectTimeoutMs;
    return new Promise<AgentTransport>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(
          new AgentProtocolError(
            ErrorCode.Timeout,
            `connect to agent "${agent.id}" timed out after ${ms} ms`,
          ),
        );
      }, ms);
      Promise.resolve()
        .then(connect)
        .then(
          (t) => {
            clearTimeout(timer);
            if (settled)
              t.close().catch(() => {}); // too late: nobody wants it any more
            else resolve(t);
          },
          (e) => {
            clearTimeout(timer);
            if (!settled) reject(e);
          },
        );
    });
  }

  private attach(agent: Agent, transport: AgentTransport, slot: Slot | undefined): Conn {
    const conn = new Conn(`${agent.id}#${++agent.connSeq}`, transport, slot);
    const onClose = (err?: AgentProtocolError) =>
      this.connectionDown(agent, conn, err ? err.message : 'closed');
    const onChange = () => this.changed(agent);
    const onFlow = (action: 'pause' | 'resume') => {
      if (action === 'pause') agent.flowControlPauses++;
      this.changed(agent);
    };
    const onMetrics = (report: MetricsReport) => this.collector.record(agent.id, report);
    transport.on('close', onClose);
    transport.on('health', onChange);
    transport.on('flowControl', onFlow);
    transport.on('metrics', onMetrics);
    conn.detach = () => {
      transport.off('close', onClose);
      transport.off('health', onChange);
      transport.off('flowControl', onFlow);
      transport.off('metrics', onMetrics);
    };
    if (slot) slot.conn = conn;
    agent.connections.set(conn.id, conn);
    agent.capabilities ??= transport.capabilities;
    this.emitStatus({ type: 'connection_added', agentId: agent.id, connectionId: conn.id });
    this.changed(agent);
    return conn;
  }

  /** Removes a dead connection and, for a dialled one, schedules its replacement. */
  private connectionDown(agent: Agent, conn: Conn, reason: string): void {
    if (conn.dead) return;
    conn.dead = true;
    conn.detach();
    agent.connections.delete(conn.id);
    this.emitStatus({
      type: 'connection_removed',
      agentId: agent.id,
      connectionId: conn.id,
      reason,
    });
    const slot = conn.slot;
    if (slot && slot.conn === conn) {
      slot.conn = undefined;
      this.schedule(
        agent,
        slot,
        backoffDelay(slot.attempts++, agent.options.reconnect, this.random),
      );
    }
    this.changed(agent);
  }

  private probe(agent: Agent): void {
    if (agent.removed || this.closing) return;
    for (const conn of agent.connections.values()) {
      if (conn.probing || conn.pingUnsupported) continue;
      conn.probing = true;
      const timeoutMs = Math.min(agent.options.pingTimeoutMs, agent.options.healthCheckIntervalMs);
      Promise.resolve()
        .then(() => conn.transport.ping({ timeoutMs }))
        .then(
          (ms) => {
            conn.lastPingMs = ms;
            conn.consecutiveErrors = 0;
            conn.probeFailures = 0;
            conn.sample(false);
          },
          (e) => {
            if (conn.dead) return;
            const err = AgentProtocolError.from(e, ErrorCode.Internal, 'ping');
            if (err.code === ErrorCode.Unsupported) {
              conn.pingUnsupported = true;
              return;
            }
            conn.consecutiveErrors++;
            conn.probeFailures++;
            conn.sample(true);
            if (conn.probeFailures >= agent.options.maxConsecutiveErrors) {
              // answers nothing, not even pings: treat as dead and redial
              this.connectionDown(
                agent,
                conn,
                `${conn.probeFailures} health probes failed: ${err.message}`,
              );
              conn.transport.close().catch(() => {});
            }
          },
        )
        .finally(() => {
          conn.probing = false;
          this.changed(agent);
        });
    }
  }

  private sweep(): void {
    this.affinity.sweep();
    for (const map of this.sessions.values()) map.sweep();
    this.collector.expire();
  }

  private usable(agent: Agent, c: Conn): boolean {
    return (
      !c.dead &&
      c.consecutiveErrors < agent.options.maxConsecutiveErrors &&
      !c.transport.paused &&
      c.transport.isHealthy()
    );
  }

  private healthyCount(agent: Agent): number {
    let n = 0;
    for (const c of agent.connections.values()) if (this.usable(agent, c)) n++;
    return n;
  }

  /** Something affecting selection changed: re-evaluate health, wake waiters. */
  private changed(agent: Agent): void {
    const healthy = this.healthyCount(agent);
    if (healthy > 0 !== agent.healthy && !agent.removed) {
      agent.healthy = healthy > 0;
      this.emitStatus(
        agent.healthy
          ? { type: 'agent_healthy', agentId: agent.id, healthyConnections: healthy }
          : { type: 'agent_unhealthy', agentId: agent.id },
      );
    }
    this.pump(agent);
    for (const l of [...agent.changeListeners]) l();
  }

  // ------------------------------------------------------------------ internals: calls

  private async call<K extends EventType>(
    agentId: string,
    type: K,
    event: EventMap[K],
    options: PoolCallOptions = {},
  ): Promise<AgentResponse> {
    if (this.closing) {
      throw new AgentProtocolError(
        ErrorCode.Unavailable,
        `agent pool is closed; cannot send ${type} to agent "${agentId}"`,
      );
    }
    const agent = this.agents.get(agentId);
    if (!agent) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `unknown agent "${agentId}" (send ${type})`,
      );
    }
    const cid = event !== null && typeof event === 'object' ? eventCorrelationId(event) : undefined;
    if (typeof cid !== 'string') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `${type} event for agent "${agentId}" has no string correlation_id`,
      );
    }
    const started = performance.now();
    const timeoutMs = options.timeoutMs ?? agent.options.requestTimeoutMs;
    const deadline = started + timeoutMs;
    const m = agent.metricsFor(type);
    m.requests++;
    agent.totalRequests++;
    agent.inFlight++;
    let permit: BreakerPermit | null = null;
    let admitted = false;
    try {
      if (agent.breaker) {
        permit = agent.breaker.tryAcquire();
        if (!permit) {
          throw poolError(
            ErrorCode.Unavailable,
            FailureReason.CircuitOpen,
            false,
            `circuit breaker of agent "${agent.id}" is ${agent.breaker.state}; ${type} not sent`,
          );
        }
      }
      admitted = true;
      const response = await this.dispatch(agent, type, event, cid, options, deadline);
      permit?.success();
      return response;
    } catch (e) {
      const err =
        e instanceof FailOpenGate
          ? e
          : AgentProtocolError.from(e, ErrorCode.Internal, `agent "${agent.id}"`);
      if (err instanceof FailOpenGate) {
        permit?.release();
        return this.failed(agent, type, classify(err.error), 'open');
      }
      if (err.code === ErrorCode.InvalidArgument) {
        permit?.release();
        throw err; // the caller's mistake (e.g. a correlation id already in flight), never an answer
      }
      const failure = classify(err);
      if (failure.counts) permit?.failure();
      else permit?.release();
      return this.failed(agent, type, failure, agent.options.failureMode);
    } finally {
      if (admitted) {
        const seconds = (performance.now() - started) / 1000;
        m.latency.observe(seconds);
        agent.latency.add(seconds * 1000);
      }
      if (type === 'request_complete') this.affinity.delete(affinityKey(agent.id, cid));
      this.callEnded(agent);
    }
  }

  private failed(
    agent: Agent,
    type: EventType,
    failure: Failure,
    mode: FailureMode,
  ): AgentResponse {
    const m = agent.metricsFor(type);
    m.errors.set(failure.reason, (m.errors.get(failure.reason) ?? 0) + 1);
    agent.totalErrors++;
    if (failure.reason === FailureReason.Timeout) {
      m.timeouts++;
      agent.totalTimeouts++;
    }
    if (mode === 'throw') throw failure.error;
    const key = `${mode}\u0000${failure.reason}`;
    agent.failureResponses.set(key, (agent.failureResponses.get(key) ?? 0) + 1);
    return failureResponse(mode, agent.id, type, failure);
  }

  private callEnded(agent: Agent): void {
    agent.inFlight--;
    if (agent.inFlight === 0) for (const d of agent.drainWaiters.splice(0)) d();
  }

  /** Picks a connection and sends; one retry elsewhere when the event provably never left. */
  private async dispatch<K extends EventType>(
    agent: Agent,
    type: K,
    event: EventMap[K],
    cid: string,
    options: PoolCallOptions,
    deadline: number,
  ): Promise<AgentResponse> {
    let excluded: Set<Conn> = NO_CONNS;
    let unsent: AgentProtocolError | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      let conn: Conn;
      try {
        // A free slot right away (the usual case) is taken without going through the
        // asynchronous acquire; anything else (queueing, flow-control wait) goes there.
        const free =
          options.signal?.aborted || agent.removed
            ? undefined
            : this.take(agent, type, cid, options.sessionId, excluded);
        conn =
          free instanceof Conn
            ? free
            : await this.acquire(agent, type, cid, options, deadline, excluded);
      } catch (e) {
        // the retry found nowhere to go: report the original failure
        if (unsent && e instanceof AgentProtocolError && e.code === ErrorCode.Unavailable)
          throw unsent;
        throw e;
      }
      try {
        if (conn.dead || !conn.transport.isHealthy()) {
          // went away while this call waited for it
          unsent = poolError(
            conn.transport.paused ? ErrorCode.FlowControlPaused : ErrorCode.ConnectionClosed,
            conn.transport.paused
              ? FailureReason.FlowControlPaused
              : FailureReason.ConnectionClosed,
            !conn.transport.paused,
            `connection ${conn.id} of agent "${agent.id}" became unusable before ${type} was sent`,
          );
          if (excluded === NO_CONNS) excluded = new Set();
          excluded.add(conn);
          continue;
        }
        if (type === 'request_headers') this.pin(agent, conn, cid, options.sessionId);
        return await this.invoke(agent, conn, type, event, cid, options, deadline);
      } catch (e) {
        const err = AgentProtocolError.from(e, ErrorCode.Internal, `connection ${conn.id}`);
        if (attempt === 0 && neverSent(err) && !options.signal?.aborted) {
          unsent = err;
          if (excluded === NO_CONNS) excluded = new Set();
          excluded.add(conn);
          continue;
        }
        throw err;
      } finally {
        conn.active--;
        this.pump(agent);
      }
    }
    throw unsent as AgentProtocolError;
  }

  private pin(agent: Agent, conn: Conn, cid: string, sessionId: string | undefined): void {
    this.affinity.set(affinityKey(agent.id, cid), conn.id);
    if (sessionId !== undefined) this.sessions.get(agent.id)?.set(sessionId, conn.id);
  }

  /** One transport call with the remaining deadline, counted on the connection. */
  private async invoke<K extends EventType>(
    agent: Agent,
    conn: Conn,
    type: K,
    event: EventMap[K],
    cid: string,
    options: PoolCallOptions,
    deadline: number,
  ): Promise<AgentResponse> {
    const remaining = Math.max(1, Math.ceil(deadline - performance.now()));
    const callOptions: CallOptions = { timeoutMs: remaining };
    if (options.signal) callOptions.signal = options.signal;
    let timer: NodeJS.Timeout | undefined;
    conn.requests++;
    // A call the transport refused synchronously never made it into its pending set:
    // it cannot have been written, so a connection error then is safe to retry elsewhere.
    const before = conn.transport.inFlight;
    let registered = true;
    try {
      const sending = sendEvent(conn.transport, type, event, callOptions);
      registered = conn.transport.inFlight > before;
      // The transport's answer or the guard timer, whichever comes first (one promise
      // instead of a guard promise plus Promise.race).
      const response = await new Promise<AgentResponse>((resolve, reject) => {
        // a transport must honour timeoutMs; this only makes sure no call can hang
        timer = setTimeout(() => {
          conn.transport.cancel(cid, 'timeout').catch(() => {});
          reject(
            new AgentProtocolError(
              ErrorCode.Timeout,
              `agent "${agent.id}" did not answer ${type} ${cid} within ${remaining} ms (connection ${conn.id})`,
            ),
          );
        }, remaining + GUARD_GRACE_MS);
        sending.then(resolve, reject);
      });
      conn.consecutiveErrors = 0;
      conn.sample(false);
      return response;
    } catch (e) {
      const err = AgentProtocolError.from(e, ErrorCode.Internal, `agent "${agent.id}" ${type}`);
      if (!registered && err.code === ErrorCode.ConnectionClosed) markUnsent(err);
      if (classify(err).counts && !neverSent(err)) {
        conn.errors++;
        conn.consecutiveErrors++;
        conn.sample(true);
        if (conn.consecutiveErrors === agent.options.maxConsecutiveErrors) this.changed(agent);
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Takes a slot on a connection: the pinned one (affinity / session) when
   * usable, else one chosen by the strategy. Applies the flow-control gate when
   * every usable connection is paused, and queues when all are full.
   */
  private async acquire(
    agent: Agent,
    type: EventType,
    cid: string,
    options: PoolCallOptions,
    deadline: number,
    excluded: ReadonlySet<Conn>,
  ): Promise<Conn> {
    const { sessionId, signal } = options;
    let pausedSince: number | undefined;
    for (;;) {
      if (signal?.aborted) throw cancelled(agent, type, cid);
      if (agent.removed) {
        throw poolError(
          ErrorCode.Unavailable,
          FailureReason.Unavailable,
          false,
          `agent "${agent.id}" was removed from the pool before ${type} was sent`,
        );
      }
      const taken = this.take(agent, type, cid, sessionId, excluded);
      if (taken instanceof Conn) return taken;
      const now = performance.now();
      if (taken === 'none') {
        throw poolError(
          ErrorCode.Unavailable,
          FailureReason.Unavailable,
          true,
          `agent "${agent.id}" has no healthy connection (${agent.connections.size} open); ${type} not sent`,
        );
      }
      if (taken === 'paused') {
        const paused = poolError(
          ErrorCode.FlowControlPaused,
          FailureReason.FlowControlPaused,
          false,
          `every connection of agent "${agent.id}" is paused by flow control; ${type} not sent`,
        );
        const mode = agent.options.flowControl;
        if (mode === 'fail_open') throw new FailOpenGate(paused);
        if (mode === 'fail_closed') throw paused;
        pausedSince ??= now;
        const waitUntil = Math.min(deadline, pausedSince + agent.options.flowControlWaitMs);
        if (now >= waitUntil) throw paused;
        await this.waitForChange(agent, waitUntil - now, signal);
        continue;
      }
      // every usable connection is at its concurrency limit
      if (now >= deadline) throw this.timeoutWaiting(agent, type, cid, deadline);
      if (agent.waiters.length >= agent.options.maxQueued) {
        throw poolError(
          ErrorCode.Unavailable,
          FailureReason.Overloaded,
          false,
          `agent "${agent.id}": ${agent.waiters.length} calls already wait for a connection slot (maxQueued); ${type} not sent`,
        );
      }
      const conn = await this.enqueue(agent, type, cid, sessionId, excluded, deadline, signal);
      if (conn) return conn;
    }
  }

  private take(
    agent: Agent,
    type: EventType,
    cid: string,
    sessionId: string | undefined,
    excluded: ReadonlySet<Conn>,
  ): Take {
    const max = agent.options.maxConcurrentPerConnection;
    const pinned = this.pinned(agent, type, cid, sessionId, excluded);
    if (pinned) {
      if (pinned.active >= max) return 'full';
      pinned.active++;
      return pinned;
    }
    const candidates: Conn[] = [];
    let usable = 0;
    let paused = 0;
    for (const c of agent.connections.values()) {
      if (excluded.has(c) || c.dead) continue;
      if (c.consecutiveErrors >= agent.options.maxConsecutiveErrors) continue;
      if (c.transport.paused) {
        paused++;
        continue;
      }
      if (!c.transport.isHealthy()) continue;
      usable++;
      if (c.active < max) candidates.push(c);
    }
    if (usable === 0) return paused > 0 ? 'paused' : 'none';
    if (candidates.length === 0) return 'full';
    // Conn has `active` and `errorRate`: the candidates are read as they are, no snapshot copies
    const conn = candidates[
      pickIndex(agent.options.strategy, candidates, agent.balancer, this.random)
    ] as Conn;
    conn.active++;
    return conn;
  }

  private pinned(
    agent: Agent,
    type: EventType,
    cid: string,
    sessionId: string | undefined,
    excluded: ReadonlySet<Conn>,
  ): Conn | undefined {
    let id: string | undefined;
    if (AFFINE_EVENTS.has(type)) id = this.affinity.get(affinityKey(agent.id, cid));
    else if (type === 'request_headers' && sessionId !== undefined) {
      id = this.sessions.get(agent.id)?.get(sessionId);
    }
    if (id === undefined) return undefined;
    const conn = agent.connections.get(id);
    // gone or unusable: fall back to normal selection
    return conn && !excluded.has(conn) && this.usable(agent, conn) ? conn : undefined;
  }

  /** Waits for a slot; resolves with a taken connection or null (re-evaluate). */
  private enqueue(
    agent: Agent,
    type: EventType,
    cid: string,
    sessionId: string | undefined,
    excluded: ReadonlySet<Conn>,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<Conn | null> {
    return new Promise<Conn | null>((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = agent.waiters.indexOf(waiter);
        if (i >= 0) agent.waiters.splice(i, 1);
      };
      const waiter: Waiter = {
        type,
        cid,
        sessionId,
        excluded,
        wake: (conn) => {
          finish();
          resolve(conn);
        },
      };
      const onAbort = () => {
        finish();
        reject(cancelled(agent, type, cid));
      };
      const timer = setTimeout(
        () => {
          finish();
          reject(this.timeoutWaiting(agent, type, cid, deadline));
        },
        Math.max(0, deadline - performance.now()),
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      agent.waiters.push(waiter);
    });
  }

  /** Hands free slots to queued calls in order; wakes those that must re-evaluate. */
  private pump(agent: Agent): void {
    if (agent.waiters.length === 0) return;
    for (const w of [...agent.waiters]) {
      const taken = this.take(agent, w.type, w.cid, w.sessionId, w.excluded);
      if (taken instanceof Conn) w.wake(taken);
      else if (taken !== 'full') w.wake(null);
    }
  }

  private waitForChange(agent: Agent, ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        agent.changeListeners.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      agent.changeListeners.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private timeoutWaiting(
    agent: Agent,
    type: EventType,
    cid: string,
    deadline: number,
  ): AgentProtocolError {
    return poolError(
      ErrorCode.Timeout,
      FailureReason.Timeout,
      true,
      `agent "${agent.id}": ${type} ${cid} found no free connection before its deadline (${Math.round(deadline - performance.now())} ms left)`,
    );
  }

  private emitStatus(status: PoolStatus): void {
    for (const s of this.streams) s.push(status);
    this.emit('status', status);
  }

  private statsOf(a: Agent): AgentStats {
    const connections: ConnectionStats[] = [...a.connections.values()].map((c) => ({
      id: c.id,
      kind: c.transport.kind,
      healthy: this.usable(a, c),
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
      queued: a.waiters.length,
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
}

/** Thrown inside the pool when the flow-control gate answers allow without calling the agent. */
class FailOpenGate extends Error {
  constructor(readonly error: AgentProtocolError) {
    super(error.message);
  }
}

function cancelled(agent: Agent, type: EventType, cid: string): AgentProtocolError {
  return poolError(
    ErrorCode.Cancelled,
    FailureReason.Cancelled,
    false,
    `${type} ${cid} for agent "${agent.id}" was cancelled before it was sent`,
  );
}

function affinityKey(agentId: string, cid: string): string {
  return `${agentId}\u0000${cid}`;
}

function sendEvent<K extends EventType>(
  t: AgentTransport,
  type: K,
  event: EventMap[K],
  o: CallOptions,
): Promise<AgentResponse> {
  switch (type) {
    case 'request_headers':
      return t.sendRequestHeaders(event as RequestHeadersEvent, o);
    case 'request_body_chunk':
      return t.sendRequestBodyChunk(event as RequestBodyChunkEvent, o);
    case 'response_headers':
      return t.sendResponseHeaders(event as ResponseHeadersEvent, o);
    case 'response_body_chunk':
      return t.sendResponseBodyChunk(event as ResponseBodyChunkEvent, o);
    case 'request_complete':
      return t.sendRequestComplete(event as RequestCompleteEvent, o);
    case 'web_socket_frame':
      return t.sendWebSocketFrame(event as WebSocketFrameEvent, o);
    case 'guardrail_inspect':
      return t.sendGuardrailInspect(event as GuardrailInspectEvent, o);
    case 'configure':
      return t.sendConfigure(event as ConfigureEvent, o);
    default:
      return Promise.reject(
        new AgentProtocolError(ErrorCode.InvalidArgument, `unknown event type "${String(type)}"`),
      );
  }
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
function resolveAgentOptions(base: ResolvedAgentOptions, o: AgentOptions): ResolvedAgentOptions {
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
