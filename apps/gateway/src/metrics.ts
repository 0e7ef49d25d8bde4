/**
 * The gateway's own Prometheus families; `/metrics` prints them followed by
 * the pool's `metrics()`.
 */
import { LatencyHistogram, PromWriter } from '@picket/pool/internal';

/** Upstream latency buckets in seconds (1 ms … 30 s). */
export const UPSTREAM_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
] as const;

const SEP = '\u0000';

/** Counts keyed by label values. */
class Counter {
  readonly values = new Map<string, number>();
  inc(labels: readonly string[], by = 1): void {
    const k = labels.join(SEP);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  write(w: PromWriter, name: string, labelNames: readonly string[]): void {
    for (const k of [...this.values.keys()].sort()) {
      const vals = k.split(SEP);
      w.sample(
        name,
        labelNames.map((n, i) => [n, vals[i] ?? ''] as const),
        this.values.get(k) ?? 0,
      );
    }
  }
}

/**
 * Gateway metrics: requests by route/status/decision, agent decisions by
 * agent/event/decision, upstream latency and errors, requests in flight.
 */
export class GatewayMetrics {
  private readonly requests = new Counter();
  private readonly agentDecisions = new Counter();
  private readonly upstreamErrors = new Counter();
  private readonly upstreamLatency = new Map<string, LatencyHistogram>();
  private readonly requestDuration = new Map<string, LatencyHistogram>();
  /** requests being handled right now */
  inFlight = 0;
  /** client connections open on the gateway listener */
  openConnections = 0;
  /** client connections closed at accept because `server.max_connections` were open */
  refusedConnections = 0;

  /** A finished request. `decision`: allow, block, redirect, challenge, no_route, upstream_error, upstream_timeout, no_upstream_target, client_disconnect. */
  request(route: string, status: number, decision: string, seconds: number): void {
    this.requests.inc([route, String(status), decision]);
    let h = this.requestDuration.get(route);
    if (!h) {
      h = new LatencyHistogram(UPSTREAM_BUCKETS_SECONDS);
      this.requestDuration.set(route, h);
    }
    h.observe(seconds);
  }

  /** One agent answer (or failure-mode stand-in). */
  agentDecision(agent: string, event: string, decision: string): void {
    this.agentDecisions.inc([agent, event, decision]);
  }

  /** Time from sending to the upstream until its response headers arrived. */
  upstreamResponse(upstream: string, seconds: number): void {
    let h = this.upstreamLatency.get(upstream);
    if (!h) {
      h = new LatencyHistogram(UPSTREAM_BUCKETS_SECONDS);
      this.upstreamLatency.set(upstream, h);
    }
    h.observe(seconds);
  }

  /** An upstream attempt that failed (`kind`: error or timeout). */
  upstreamError(upstream: string, kind: 'error' | 'timeout'): void {
    this.upstreamErrors.inc([upstream, kind]);
  }

  /** Prometheus text of the gateway families; `targets`: servers of each `targets_from` upstream. */
  render(targets: readonly (readonly [string, number])[] = []): string {
    const w = new PromWriter();
    w.family(
      'picket_gateway_requests_total',
      'counter',
      'Requests handled, by route, status and final decision.',
    );
    this.requests.write(w, 'picket_gateway_requests_total', ['route', 'status', 'decision']);
    w.family(
      'picket_gateway_request_duration_seconds',
      'histogram',
      'Whole request duration by route.',
    );
    for (const route of [...this.requestDuration.keys()].sort()) {
      this.requestDuration
        .get(route)
        ?.write(w, 'picket_gateway_request_duration_seconds', [['route', route]]);
    }
    w.family(
      'picket_gateway_agent_decisions_total',
      'counter',
      'Agent answers by agent, event and decision.',
    );
    this.agentDecisions.write(w, 'picket_gateway_agent_decisions_total', [
      'agent',
      'event',
      'decision',
    ]);
    w.family(
      'picket_gateway_upstream_duration_seconds',
      'histogram',
      'Upstream time to response headers.',
    );
    for (const u of [...this.upstreamLatency.keys()].sort()) {
      this.upstreamLatency
        .get(u)
        ?.write(w, 'picket_gateway_upstream_duration_seconds', [['upstream', u]]);
    }
    w.family(
      'picket_gateway_upstream_errors_total',
      'counter',
      'Failed upstream attempts by kind.',
    );
    this.upstreamErrors.write(w, 'picket_gateway_upstream_errors_total', ['upstream', 'kind']);
    w.family('picket_gateway_in_flight_requests', 'gauge', 'Requests being handled.');
    w.sample('picket_gateway_in_flight_requests', [], this.inFlight);
    w.family('picket_gateway_open_connections', 'gauge', 'Client connections open.');
    w.sample('picket_gateway_open_connections', [], this.openConnections);
    w.family(
      'picket_gateway_refused_connections_total',
      'counter',
      'Client connections closed at accept: server.max_connections were open.',
    );
    w.sample('picket_gateway_refused_connections_total', [], this.refusedConnections);
    if (targets.length > 0) {
      w.family(
        'picket_gateway_upstream_targets',
        'gauge',
        'Servers of each targets_from upstream (the latest set_targets push).',
      );
      for (const [u, n] of targets)
        w.sample('picket_gateway_upstream_targets', [['upstream', u]], n);
    }
    return w.toString();
  }
}
