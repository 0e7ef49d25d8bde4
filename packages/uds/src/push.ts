/**
 * The push API ({@link AgentPush}) over a set of agent connections, shared by the UDS
 * server and the reverse agent: each call goes to every open connection, and the pause
 * and a non-healthy state are remembered so `greet` can tell a connection that joins later.
 */
import type { AgentPush, ConfigUpdateInput, HealthState, MetricsReport } from '@picket/protocol';
import { configUpdateRequest } from '@picket/protocol/internal';
import type { AgentConnection } from './agent-connection.js';

export class ConnectionPush implements AgentPush {
  private isPaused = false;
  private health: { state: HealthState; message?: string } | undefined;

  constructor(private readonly connections: Iterable<AgentConnection>) {}

  get paused(): boolean {
    return this.isPaused;
  }

  reportHealth(state: HealthState, message?: string): number {
    this.health =
      state === 'healthy' ? undefined : message === undefined ? { state } : { state, message };
    return this.broadcast((c) => c.reportHealth(state, message));
  }

  pause(): number {
    this.isPaused = true;
    return this.broadcast((c) => c.pause());
  }

  resume(): number {
    this.isPaused = false;
    return this.broadcast((c) => c.resume());
  }

  reportMetrics(report: MetricsReport): number {
    return this.broadcast((c) => c.reportMetrics(report));
  }

  /** `request_id` / `timestamp_ms` are filled in when absent. */
  requestConfigUpdate(request: ConfigUpdateInput): number {
    const full = configUpdateRequest(request);
    return this.broadcast((c) => c.requestConfigUpdate(full));
  }

  /** Tells a connection that just joined the remembered non-healthy state and pause. */
  greet(connection: AgentConnection): void {
    if (this.health !== undefined) connection.reportHealth(this.health.state, this.health.message);
    if (this.isPaused) connection.pause();
  }

  /** Runs `send` on every open connection; returns how many there were. */
  broadcast(send: (c: AgentConnection) => void): number {
    let n = 0;
    for (const c of this.connections) {
      if (c.closed) continue;
      send(c);
      n++;
    }
    return n;
  }
}
