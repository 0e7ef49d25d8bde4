/**
 * OpenTelemetry tracing options shared by the picket servers and the pool. Only
 * types come from `@opentelemetry/api` (an optional peer dependency): nothing
 * loads it unless a tracer is passed.
 */
import type { Tracer } from '@opentelemetry/api';

/** Options of every agent server: one SERVER span per event when `tracer` is set. */
export interface AgentTracingOptions {
  /**
   * Traces each event as a SERVER span `picket.handle <event type>`, child of
   * the proxy's span named by the request's `traceparent` (see the protocol
   * README's Tracing section). Absent: no span, no cost.
   */
  tracer?: Tracer;
}

/** The span attribute names picket sets, on both the proxy and the agent side. */
export const TraceAttributes = {
  /** the agent's id in the pool (proxy side) */
  agent: 'picket.agent.name',
  /** the transport kind (`uds`, `grpc`, `reverse`, `v1`, …) */
  transport: 'picket.transport',
  /** the event type (`request_headers`, …) */
  eventType: 'picket.event.type',
  correlationId: 'picket.correlation_id',
  /** `allow`, `block`, `redirect` or `challenge` */
  decision: 'picket.decision',
  /** the HTTP status of a block or redirect */
  status: 'picket.status',
  /** a WebSocket frame's decision: `allow`, `drop` or `close` */
  websocketDecision: 'picket.websocket_decision',
  /** the `AgentProtocolError` code of a failed call (proxy side) */
  errorCode: 'picket.error.code',
  /** the failure mode that answered instead of the agent: `open` or `closed` (proxy side) */
  failureMode: 'picket.failure_mode',
} as const;
