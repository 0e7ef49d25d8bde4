/**
 * The life of an agent's connections: dialling with a connect timeout and
 * endless backoff, attaching a transport (its close / health / flow-control /
 * metrics events), health probes, removal and replacement, and the drain of an
 * agent that leaves the pool.
 */
import {
  AgentProtocolError,
  type AgentTransport,
  ErrorCode,
  type MetricsReport,
} from '@picket/protocol';
import { type AgentState, Conn, type PoolContext, type Slot } from './agent-state.js';
import { backoffDelay } from './backoff.js';
import type { ConnectFactory } from './options.js';
import type { Selector } from './selection.js';

export class Connections {
  constructor(
    private readonly ctx: PoolContext,
    private readonly selector: Selector,
  ) {}

  /** One connect attempt for `slot`; on failure schedules the next (forever). */
  async dial(agent: AgentState, slot: Slot): Promise<void> {
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
      const delay = backoffDelay(attempt, agent.options.reconnect, this.ctx.random);
      this.ctx.emitStatus({
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

  private schedule(agent: AgentState, slot: Slot, delay: number): void {
    if (slot.stopped || agent.removed) return;
    clearTimeout(slot.timer);
    slot.timer = setTimeout(() => void this.dial(agent, slot), delay);
    slot.timer.unref();
  }

  private connectWithTimeout(agent: AgentState): Promise<AgentTransport> {
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

  /** Puts an open transport into the agent's connections and follows its events. */
  attach(agent: AgentState, transport: AgentTransport, slot: Slot | undefined): Conn {
    const conn = new Conn(`${agent.id}#${++agent.connSeq}`, transport, slot);
    const onClose = (err?: AgentProtocolError) =>
      this.down(agent, conn, err ? err.message : 'closed');
    const onChange = () => this.selector.changed(agent);
    const onFlow = (action: 'pause' | 'resume') => {
      if (action === 'pause') agent.flowControlPauses++;
      // a resume wakes calls waiting under the `wait` policy
      this.selector.changed(agent);
    };
    const onMetrics = (report: MetricsReport) => this.ctx.collector.record(agent.id, report);
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
    agent.addConnection(conn);
    agent.capabilities ??= transport.capabilities;
    this.ctx.emitStatus({ type: 'connection_added', agentId: agent.id, connectionId: conn.id });
    this.selector.changed(agent);
    return conn;
  }

  /** Removes a dead connection and, for a dialled one, schedules its replacement. */
  down(agent: AgentState, conn: Conn, reason: string): void {
    if (conn.dead) return;
    conn.dead = true;
    conn.detach();
    agent.removeConnection(conn);
    this.ctx.emitStatus({
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
        backoffDelay(slot.attempts++, agent.options.reconnect, this.ctx.random),
      );
    }
    this.selector.changed(agent);
  }

  /** Pings every connection once; too many failed pings in a row replace it. */
  probe(agent: AgentState): void {
    if (agent.removed || this.ctx.closing) return;
    for (const conn of agent.connections.values()) {
      if (conn.probing) continue;
      if (conn.pingUnsupported) {
        // No ping on this wire (prox): a connection set aside after errors in a row would stay
        // aside for good. If its transport still reports healthy, it gets another chance one
        // probe interval later (new errors set it aside again; the circuit breaker still applies).
        if (
          conn.consecutiveErrors >= agent.options.maxConsecutiveErrors &&
          conn.transport.isHealthy()
        ) {
          conn.consecutiveErrors = 0;
          this.selector.changed(agent);
        }
        continue;
      }
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
              this.down(agent, conn, `${conn.probeFailures} health probes failed: ${err.message}`);
              conn.transport.close().catch(() => {});
            }
          },
        )
        .finally(() => {
          conn.probing = false;
          this.selector.changed(agent);
        });
    }
  }

  /**
   * Stops redialling, lets running calls finish for up to `drainMs`, cancels
   * the rest (`proxy_shutdown`: they end with their failure mode) and closes
   * every connection.
   */
  async shutdown(agent: AgentState, drainMs: number): Promise<void> {
    agent.removed = true;
    clearInterval(agent.probeTimer);
    clearTimeout(agent.breakerTimer);
    for (const slot of agent.slots) {
      slot.stopped = true;
      clearTimeout(slot.timer);
    }
    await waitDrained(agent, drainMs);
    const conns = [...agent.connections.values()];
    await Promise.allSettled(conns.map((c) => c.transport.cancelAll('proxy_shutdown')));
    for (const w of agent.waiters.splice(0)) w.wake(null);
    for (const l of [...agent.changeListeners]) l();
    for (const c of conns) this.down(agent, c, 'agent removed or pool closed');
    await Promise.allSettled(conns.map((c) => c.transport.close()));
    this.ctx.affinity.dropAgent(agent.id);
    this.ctx.sessions.delete(agent.id);
    this.ctx.collector.removeAgent(agent.id);
  }
}

function waitDrained(agent: AgentState, ms: number): Promise<void> {
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
