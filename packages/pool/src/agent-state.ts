/**
 * Per-agent state of the pool: its connections, dial slots, wait queue and
 * counters, and the shared context the pool's parts (selection, dispatcher,
 * connection lifecycle, metrics exporter) work on. No behaviour beyond small
 * predicates lives here.
 */
import type { AgentCapabilities, AgentTransport, EventType } from '@picket/protocol';
import { isSinkSender, type SinkSender } from '@picket/protocol/internal';
import type { AffinityTable, BoundedTtlMap } from './affinity.js';
import type { CircuitBreaker } from './breaker.js';
import { type AgentMetricsCollector, LatencyHistogram, LatencyReservoir } from './metrics.js';
import type { ConnectFactory, ResolvedAgentOptions } from './options.js';
import type { PoolStatus } from './status.js';

/** Weight of the newest outcome in a connection's error-rate average. */
const ERROR_RATE_ALPHA = 0.1;

/** Per event type counters of one agent, for the metrics exporter. */
export interface EventMetrics {
  requests: number;
  timeouts: number;
  errors: Map<string, number>;
  latency: LatencyHistogram;
}

/** One open connection of an agent, as the pool tracks it. */
export class Conn {
  /** calls the pool runs on it now */
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
  /** the transport when it takes calls with `sendInto` (picket's own), looked up once */
  readonly sink: SinkSender | undefined;

  constructor(
    readonly id: string,
    readonly transport: AgentTransport,
    /** the dial slot that owns it; undefined for a connection the agent opened (reverse) */
    readonly slot: Slot | undefined,
  ) {
    this.sink = isSinkSender(transport) ? transport : undefined;
  }

  sample(error: boolean): void {
    this.errorRate += ERROR_RATE_ALPHA * ((error ? 1 : 0) - this.errorRate);
  }
}

/** One of the `connectionsPerAgent` connections the pool dials and redials. */
export class Slot {
  conn: Conn | undefined;
  attempts = 0;
  timer: NodeJS.Timeout | undefined;
  stopped = false;
  connectedOnce = false;
}

/** A call waiting for a free connection slot. */
export interface Waiter {
  type: EventType;
  cid: string;
  sessionId: string | undefined;
  excluded: ReadonlySet<Conn>;
  /** resolves with a taken connection, or null: re-evaluate (e.g. everything paused) */
  wake: (conn: Conn | null) => void;
  /** fails the wait with CANCELLED (the request was cancelled through the pool) */
  cancel: () => void;
}

/** Everything the pool knows about one agent. */
export class AgentState {
  /** open connections by id; change them through addConnection / removeConnection */
  readonly connections = new Map<string, Conn>();
  /** the same connections as a list in the same order: the call path walks it without an iterator */
  readonly connectionList: Conn[] = [];
  readonly slots: Slot[] = [];
  readonly waiters: Waiter[] = [];
  /** callbacks run whenever something that affects selection changed */
  readonly changeListeners = new Set<() => void>();
  /** calls waiting for a paused agent to resume (flow control `wait`), for cancel by request */
  readonly flowWaiters = new Set<{ cid: string; cancel: () => void }>();
  readonly balancer = { cursor: 0 };
  readonly events = new Map<EventType, EventMetrics>();
  readonly latency: LatencyReservoir;
  /** synthesized answers by `mode\0reason` */
  readonly failureResponses = new Map<string, number>();
  breaker: CircuitBreaker | null = null;
  capabilities: AgentCapabilities | undefined;
  healthy = false;
  removed = false;
  /** admitted calls not yet answered (drain waits for 0) */
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

  constructor(
    readonly id: string,
    readonly options: ResolvedAgentOptions,
    readonly connect: ConnectFactory | undefined,
    samples: number,
  ) {
    this.latency = new LatencyReservoir(samples);
  }

  addConnection(conn: Conn): void {
    this.connections.set(conn.id, conn);
    this.connectionList.push(conn);
  }

  removeConnection(conn: Conn): void {
    if (!this.connections.delete(conn.id)) return;
    this.connectionList.splice(this.connectionList.indexOf(conn), 1);
  }

  metricsFor(type: EventType): EventMetrics {
    let m = this.events.get(type);
    if (!m) {
      m = { requests: 0, timeouts: 0, errors: new Map(), latency: new LatencyHistogram() };
      this.events.set(type, m);
    }
    return m;
  }

  /** Whether `c` gets traffic: open, under the error threshold, not paused, not reported unhealthy. */
  usable(c: Conn): boolean {
    return (
      !c.dead &&
      c.consecutiveErrors < this.options.maxConsecutiveErrors &&
      !c.transport.paused &&
      c.transport.isHealthy()
    );
  }

  healthyCount(): number {
    let n = 0;
    for (const c of this.connections.values()) if (this.usable(c)) n++;
    return n;
  }
}

/** What the pool's parts share. */
export interface PoolContext {
  readonly agents: Map<string, AgentState>;
  /** correlation affinity: (agent, correlation id) → connection id */
  readonly affinity: AffinityTable;
  /** sticky sessions per agent: session id → connection id */
  readonly sessions: Map<string, BoundedTtlMap<string>>;
  readonly collector: AgentMetricsCollector;
  readonly random: () => number;
  /** true once close() started */
  readonly closing: boolean;
  emitStatus(status: PoolStatus): void;
}

export function affinityKey(agentId: string, cid: string): string {
  return `${agentId}\u0000${cid}`;
}
