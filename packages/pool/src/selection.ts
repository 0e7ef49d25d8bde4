/**
 * Picking a connection for a call: affinity and sticky sessions, the
 * load-balance strategy, the per-connection concurrency limit with its FIFO
 * wait queue, and the flow-control policy. Transports only report `paused`
 * (and refuse calls with FLOW_CONTROL_PAUSED); `fail_open` / `fail_closed` /
 * `wait` is decided here and nowhere else.
 */
import { type AgentProtocolError, ErrorCode, type EventType } from '@picket/protocol';
import { type AgentState, Conn, type PoolContext, type Waiter } from './agent-state.js';
import { pickIndex } from './balancer.js';
import { FailureReason, poolError } from './failure.js';
import type { PoolCallOptions } from './options.js';

/** Events whose connection follows the request's headers (correlation affinity). */
const AFFINE_EVENTS: ReadonlySet<EventType> = new Set<EventType>([
  'request_body_chunk',
  'response_headers',
  'response_body_chunk',
  'request_complete',
  'web_socket_frame',
]);

type Take = Conn | 'full' | 'paused' | 'none';

/** Thrown inside the pool when the flow-control policy answers allow without calling the agent. */
export class FailOpenGate extends Error {
  constructor(readonly error: AgentProtocolError) {
    super(error.message);
  }
}

/** What one call remembers about flow control across its attempts. */
export interface FlowState {
  /** when this call first found the agent paused */
  pausedSince: number | undefined;
  /** a transport refused this call with FLOW_CONTROL_PAUSED */
  refused: boolean;
  /** the wait saw a change (a resume): connections that refused may be tried again */
  resumed(): void;
}

export class Selector {
  /** take()'s candidate list, reused (take does not re-enter); entries past the count are stale */
  private readonly candidates: Conn[] = [];

  constructor(private readonly ctx: PoolContext) {}

  /**
   * Takes a slot on a usable connection without waiting: the pinned one
   * (affinity / session) when usable, else one chosen by the strategy.
   */
  take(
    agent: AgentState,
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
    const { strategy } = agent.options;
    if (strategy === 'round_robin') {
      // the next connection from the cursor that can take the call: one look in the usual case
      const conn = this.nextInTurn(agent, max, excluded);
      if (conn !== undefined) {
        conn.active++;
        return conn;
      }
    }
    const candidates = this.candidates;
    let n = 0;
    let usable = 0;
    let paused = 0;
    const anyExcluded = excluded.size > 0; // a first attempt excludes nothing: skip the lookups
    const conns = agent.connectionList;
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i] as Conn;
      if (c.dead || (anyExcluded && excluded.has(c))) continue;
      if (c.consecutiveErrors >= agent.options.maxConsecutiveErrors) continue;
      if (c.transport.paused) {
        paused++;
        continue;
      }
      if (!c.transport.isHealthy()) continue;
      usable++;
      if (c.active < max) candidates[n++] = c;
    }
    if (n === 0) return usable > 0 ? 'full' : paused > 0 ? 'paused' : 'none';
    // Conn has `active` and `errorRate`: the candidates are read as they are, no snapshot copies
    const conn = candidates[
      pickIndex(strategy, candidates, agent.balancer, this.ctx.random, n)
    ] as Conn;
    conn.active++;
    return conn;
  }

  /**
   * Round robin without a candidate list: the connections in turn from the agent's cursor,
   * the first usable one with a free slot (a connection that cannot take the call passes
   * its turn to the next). Undefined when none can: take() then finds out why.
   */
  private nextInTurn(
    agent: AgentState,
    max: number,
    excluded: ReadonlySet<Conn>,
  ): Conn | undefined {
    const conns = agent.connectionList;
    const n = conns.length;
    if (n === 0) return undefined;
    const balancer = agent.balancer;
    const start = balancer.cursor % n;
    balancer.cursor = start + 1;
    const anyExcluded = excluded.size > 0;
    for (let k = 0; k < n; k++) {
      const i = start + k < n ? start + k : start + k - n;
      const c = conns[i] as Conn;
      if (c.active >= max || (anyExcluded && excluded.has(c))) continue;
      if (agent.usable(c)) return c;
    }
    return undefined;
  }

  /**
   * Takes a slot, waiting when needed: queues while every usable connection is
   * full, applies the flow-control policy while every one is paused.
   */
  async acquire(
    agent: AgentState,
    type: EventType,
    cid: string,
    options: PoolCallOptions,
    deadline: number,
    excluded: ReadonlySet<Conn>,
    flow: FlowState,
  ): Promise<Conn> {
    const { sessionId, signal } = options;
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
      let taken = this.take(agent, type, cid, sessionId, excluded);
      if (taken instanceof Conn) return taken;
      // the connections left refused this call as paused without reporting it: still flow control
      if (taken === 'none' && flow.refused) taken = 'paused';
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
        flow.pausedSince ??= now;
        await this.flowControl(agent, type, cid, deadline, flow.pausedSince, signal);
        flow.resumed();
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

  /**
   * The flow-control policy, for a call that found every connection paused:
   * `fail_open` ⇒ allow without calling, `fail_closed` ⇒ FLOW_CONTROL_PAUSED,
   * `wait` ⇒ resolves when something changed (a resume), and fails closed
   * once the call has waited `flowControlWaitMs` (or reached its deadline).
   */
  private async flowControl(
    agent: AgentState,
    type: EventType,
    cid: string,
    deadline: number,
    pausedSince: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const paused = poolError(
      ErrorCode.FlowControlPaused,
      FailureReason.FlowControlPaused,
      false,
      `every connection of agent "${agent.id}" is paused by flow control; ${type} not sent`,
    );
    const mode = agent.options.flowControl;
    if (mode === 'fail_open') throw new FailOpenGate(paused);
    if (mode === 'fail_closed') throw paused;
    const now = performance.now();
    const waitUntil = Math.min(deadline, pausedSince + agent.options.flowControlWaitMs);
    if (now >= waitUntil) throw paused;
    await this.waitForChange(agent, type, cid, waitUntil - now, signal);
  }

  private pinned(
    agent: AgentState,
    type: EventType,
    cid: string,
    sessionId: string | undefined,
    excluded: ReadonlySet<Conn>,
  ): Conn | undefined {
    let id: string | undefined;
    if (type === 'request_headers') {
      if (sessionId !== undefined) id = this.ctx.sessions.get(agent.id)?.get(sessionId);
    } else if (AFFINE_EVENTS.has(type)) {
      id = this.ctx.affinity.get(agent.id, cid);
    }
    if (id === undefined) return undefined;
    const conn = agent.connections.get(id);
    // gone or unusable: fall back to normal selection
    return conn && !excluded.has(conn) && agent.usable(conn) ? conn : undefined;
  }

  /** Waits for a slot; resolves with a taken connection or null (re-evaluate). */
  private enqueue(
    agent: AgentState,
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
        cancel: () => {
          finish();
          reject(cancelled(agent, type, cid));
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

  /**
   * Fails the calls of request `cid` waiting for a slot or for a paused agent to resume
   * (CANCELLED, unsent); returns how many.
   */
  cancelQueued(agent: AgentState, cid: string): number {
    const queued = [...agent.waiters, ...agent.flowWaiters].filter((w) => w.cid === cid);
    for (const w of queued) w.cancel();
    return queued.length;
  }

  /** Hands free slots to queued calls in order; wakes those that must re-evaluate. */
  pump(agent: AgentState): void {
    if (agent.waiters.length === 0) return;
    for (const w of [...agent.waiters]) {
      const taken = this.take(agent, w.type, w.cid, w.sessionId, w.excluded);
      if (taken instanceof Conn) w.wake(taken);
      else if (taken !== 'full') w.wake(null);
    }
  }

  /** A call is done with `conn`: its slot goes to the next queued call. */
  release(agent: AgentState, conn: Conn): void {
    conn.active--;
    this.pump(agent);
  }

  /** Something affecting selection changed: re-evaluate health, wake waiters. */
  changed(agent: AgentState): void {
    const healthy = agent.healthyCount();
    if (healthy > 0 !== agent.healthy && !agent.removed) {
      agent.healthy = healthy > 0;
      this.ctx.emitStatus(
        agent.healthy
          ? { type: 'agent_healthy', agentId: agent.id, healthyConnections: healthy }
          : { type: 'agent_unhealthy', agentId: agent.id },
      );
    }
    this.pump(agent);
    for (const l of [...agent.changeListeners]) l();
  }

  /** Resolves when something changed (or after `ms`); rejects when the request is cancelled. */
  private waitForChange(
    agent: AgentState,
    type: EventType,
    cid: string,
    ms: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        agent.changeListeners.delete(done);
        agent.flowWaiters.delete(waiter);
        signal?.removeEventListener('abort', done);
      };
      const done = () => {
        finish();
        resolve();
      };
      const waiter = {
        cid,
        cancel: () => {
          finish();
          reject(cancelled(agent, type, cid));
        },
      };
      const timer = setTimeout(done, ms);
      agent.changeListeners.add(done);
      agent.flowWaiters.add(waiter);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private timeoutWaiting(
    agent: AgentState,
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
}

export function cancelled(agent: AgentState, type: EventType, cid: string): AgentProtocolError {
  return poolError(
    ErrorCode.Cancelled,
    FailureReason.Cancelled,
    false,
    `${type} ${cid} for agent "${agent.id}" was cancelled before it was sent`,
  );
}
