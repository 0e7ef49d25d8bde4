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
  type GuardrailInspectEvent,
  type RequestBodyChunkEvent,
  type RequestCompleteEvent,
  type RequestHeadersEvent,
  type ResponseBodyChunkEvent,
  type ResponseHeadersEvent,
  type WebSocketFrameEvent,
} from '@picket/protocol';
import { AffinityTable, BoundedTtlMap } from './affinity.js';
import { AgentState, type PoolContext, Slot } from './agent-state.js';
import { CircuitBreaker, type CircuitState } from './breaker.js';
import { Connections } from './connections.js';
import { Dispatcher } from './dispatcher.js';
import { type AgentStats, metricsInput, renderPoolMetrics, statsOf } from './exporter.js';
import { AgentMetricsCollector } from './metrics.js';
import {
  type AgentOptions,
  type ConnectFactory,
  type DrainOptions,
  type PoolCallOptions,
  type PoolLimits,
  type PoolOptions,
  type ResolvedAgentOptions,
  resolveAgentOptions,
  resolvePoolOptions,
} from './options.js';
import { Selector } from './selection.js';
import { type PoolEventMap, type PoolStatus, StatusStream } from './status.js';
import { poolTracing } from './tracing.js';

export type { AgentStats, ConnectionStats } from './exporter.js';

/**
 * A pool of connections to agents over any {@link AgentTransport}: keeps
 * `connectionsPerAgent` connections per agent and redials them forever with
 * backoff, picks a connection per call (five strategies, correlation affinity,
 * sticky sessions), probes health with pings, guards each agent with a
 * circuit breaker, and answers for an agent that cannot (fail closed, fail
 * open or throw). Emits {@link PoolStatus} changes as `'status'` events and
 * through `status()`.
 *
 * The class is the public surface; the work is done by its parts: per-agent
 * state (agent-state.ts), connection choice and flow-control policy
 * (selection.ts), the call path (dispatcher.ts), connection life
 * (connections.ts) and the stats / Prometheus exporter (exporter.ts).
 */
export class AgentPool extends EventEmitter<PoolEventMap> {
  private readonly defaults: ResolvedAgentOptions;
  private readonly limits: PoolLimits;
  private readonly agents = new Map<string, AgentState>();
  private readonly ctx: PoolContext;
  private readonly selector: Selector;
  private readonly dispatcher: Dispatcher;
  private readonly conns: Connections;
  private readonly streams = new Set<StatusStream>();
  private readonly sweepTimer: NodeJS.Timeout;
  private closing = false;
  private closed: Promise<void> | undefined;

  constructor(options: PoolOptions = {}) {
    super();
    const { defaults, limits } = resolvePoolOptions(options);
    this.defaults = defaults;
    this.limits = limits;
    const pool = this;
    this.ctx = {
      agents: this.agents,
      // on the dispatcher's clock, which hands its reading over when it pins a request
      affinity: new AffinityTable(limits.maxAffinities, limits.affinityTtlMs, () =>
        performance.now(),
      ),
      sessions: new Map(),
      collector: new AgentMetricsCollector({
        maxSeries: limits.maxMetricSeries,
        expiryMs: limits.metricSeriesExpiryMs,
        reservedPrefix: 'picket_pool_',
      }),
      random: options.random ?? Math.random,
      get closing() {
        return pool.closing;
      },
      emitStatus: (s) => this.emitStatus(s),
    };
    this.selector = new Selector(this.ctx);
    this.dispatcher = new Dispatcher(this.ctx, this.selector, poolTracing(options));
    this.conns = new Connections(this.ctx, this.selector);
    const sweepEvery = Math.max(1_000, Math.min(30_000, limits.affinityTtlMs));
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
      first.push(this.conns.dial(agent, slot));
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
    return this.conns.attach(agent, transport, undefined).id;
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
    await this.conns.shutdown(agent, options.drainTimeoutMs ?? this.limits.drainTimeoutMs);
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
      await Promise.all(agents.map((a) => this.conns.shutdown(a, drainMs)));
      this.agents.clear();
      this.ctx.affinity.clear();
      this.ctx.sessions.clear();
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
    return this.dispatcher.call(agentId, 'request_headers', event, options);
  }

  /** Request headers pinned to the connection of `sessionId` (sticky sessions). */
  sendRequestHeadersWithSession(
    agentId: string,
    event: RequestHeadersEvent,
    sessionId: string,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.dispatcher.call(agentId, 'request_headers', event, { ...options, sessionId });
  }

  /** Sends a request body chunk on the connection that saw the headers, when it is still usable. */
  sendRequestBodyChunk(
    agentId: string,
    event: RequestBodyChunkEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.dispatcher.call(agentId, 'request_body_chunk', event, options);
  }

  sendResponseHeaders(
    agentId: string,
    event: ResponseHeadersEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.dispatcher.call(agentId, 'response_headers', event, options);
  }

  sendResponseBodyChunk(
    agentId: string,
    event: ResponseBodyChunkEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.dispatcher.call(agentId, 'response_body_chunk', event, options);
  }

  /** Sends request-complete and then forgets the request's connection affinity. */
  sendRequestComplete(
    agentId: string,
    event: RequestCompleteEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.dispatcher.call(agentId, 'request_complete', event, options);
  }

  sendWebSocketFrame(
    agentId: string,
    event: WebSocketFrameEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.dispatcher.call(agentId, 'web_socket_frame', event, options);
  }

  sendGuardrailInspect(
    agentId: string,
    event: GuardrailInspectEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.dispatcher.call(agentId, 'guardrail_inspect', event, options);
  }

  sendConfigure(
    agentId: string,
    event: ConfigureEvent,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    return this.dispatcher.call(agentId, 'configure', event, options);
  }

  /**
   * Tells an agent that a request no longer matters (the client went away, the
   * proxy gave up): calls of the request still queued for a connection slot fail
   * with CANCELLED unsent, and Cancel goes out on the connection that saw the
   * request's headers, which also rejects a call of that request pending there.
   * Resolves `false` when neither a queued call nor a connection of the agent
   * knows the request (it never reached the agent, or already completed).
   */
  async cancel(
    agentId: string,
    correlationId: string,
    reason: CancelReason = 'client_disconnect',
  ): Promise<boolean> {
    const agent = this.agents.get(agentId);
    if (agent === undefined) return false;
    const dropped = this.selector.cancelQueued(agent, correlationId);
    const connId = this.ctx.affinity.get(agentId, correlationId);
    const conn = connId === undefined ? undefined : agent.connections.get(connId);
    if (conn === undefined || conn.dead) return dropped > 0;
    await conn.transport.cancel(correlationId, reason);
    return true;
  }

  /** Forgets the connection affinity of a request (on every agent). */
  clearAffinity(correlationId: string): void {
    this.ctx.affinity.deleteEverywhere(correlationId);
  }

  /** Forgets a sticky session (on every agent, or on one). */
  clearSession(sessionId: string, agentId?: string): void {
    for (const [id, map] of this.ctx.sessions)
      if (agentId === undefined || id === agentId) map.delete(sessionId);
  }

  // ------------------------------------------------------------------ observability

  /** Numbers of one agent, or undefined when it is not registered. */
  agentStats(id: string): AgentStats | undefined {
    const a = this.agents.get(id);
    return a && statsOf(a);
  }

  /** Numbers of every agent. */
  stats(): AgentStats[] {
    return [...this.agents.values()].map(statsOf);
  }

  /**
   * Prometheus text: the pool's own `picket_pool_*` families (requests, errors,
   * timeouts, latency histogram per agent and event type, circuit state,
   * connections, in-flight …), then the series agents reported, with an
   * `agent_id` label.
   */
  metrics(): string {
    const { affinity, collector } = this.ctx;
    return renderPoolMetrics({
      agents: [...this.agents.values()].map(metricsInput),
      affinities: affinity.size,
      affinityRejections: affinity.rejections,
      affinityEvictions: affinity.evictions,
      collector,
    });
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

  // ------------------------------------------------------------------ internals

  private createAgent(
    id: string,
    connect: ConnectFactory | undefined,
    options: AgentOptions,
  ): AgentState {
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
    const agent = new AgentState(id, resolved, connect, this.limits.latencySamples);
    if (resolved.circuitBreaker) {
      agent.breaker = new CircuitBreaker(resolved.circuitBreaker, (from, to) =>
        this.onCircuit(agent, from, to),
      );
    }
    this.ctx.sessions.set(
      id,
      new BoundedTtlMap<string>(this.limits.maxSessions, resolved.stickySessionTimeoutMs, true),
    );
    this.agents.set(id, agent);
    if (resolved.healthCheckIntervalMs > 0) {
      agent.probeTimer = setInterval(() => this.conns.probe(agent), resolved.healthCheckIntervalMs);
      agent.probeTimer.unref();
    }
    this.emitStatus({ type: 'agent_added', agentId: id });
    return agent;
  }

  private onCircuit(agent: AgentState, from: CircuitState, to: CircuitState): void {
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

  private emitStatus(status: PoolStatus): void {
    for (const s of this.streams) s.push(status);
    this.emit('status', status);
  }

  private sweep(): void {
    this.ctx.affinity.sweep();
    for (const map of this.ctx.sessions.values()) map.sweep();
    this.ctx.collector.expire();
  }
}
