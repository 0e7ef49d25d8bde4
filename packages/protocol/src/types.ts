/**
 * Message types of the Zentinel agent protocol, shaped exactly like their JSON
 * on the wire (snake_case keys, externally tagged enums), so a value can be
 * written and read without a renaming layer. Body bytes are `Uint8Array`; each
 * codec decides how they travel (base64 text in JSON, `bin` in msgpack/CBOR).
 */

/** Payload encodings a UDS connection can negotiate. Rust peers know json and msgpack only. */
export type Encoding = 'json' | 'msgpack' | 'cbor';
/** What a transport's messages are encoded with: a UDS encoding, or protobuf on gRPC. */
export type TransportEncoding = Encoding | 'protobuf';

/** `EventType` strings (serde snake_case: note `web_socket_frame`). */
export const EventType = {
  Configure: 'configure',
  RequestHeaders: 'request_headers',
  RequestBodyChunk: 'request_body_chunk',
  ResponseHeaders: 'response_headers',
  ResponseBodyChunk: 'response_body_chunk',
  RequestComplete: 'request_complete',
  WebSocketFrame: 'web_socket_frame',
  GuardrailInspect: 'guardrail_inspect',
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

/** Header map: name → values (a header may repeat). */
export type Headers = Record<string, string[]>;

// ---------------------------------------------------------------- events (proxy → agent)

export interface RequestMetadata {
  correlation_id: string;
  request_id: string;
  client_ip: string;
  client_port: number;
  server_name?: string | null;
  /** e.g. `HTTP/1.1` */
  protocol: string;
  tls_version?: string | null;
  tls_cipher?: string | null;
  route_id?: string | null;
  upstream_id?: string | null;
  /** RFC 3339 (`2026-01-01T00:00:00.123+00:00`); a decimal epoch-ms string when converted from gRPC. */
  timestamp: string;
  /** W3C traceparent; omitted on the wire when absent. */
  traceparent?: string;
}

export interface RequestHeadersEvent {
  metadata: RequestMetadata;
  method: string;
  /** path + query */
  uri: string;
  headers: Headers;
}

export interface RequestBodyChunkEvent {
  correlation_id: string;
  data: Uint8Array;
  is_last: boolean;
  total_size?: number | null;
  chunk_index: number;
  /** cumulative bytes received so far */
  bytes_received: number;
}

export interface ResponseHeadersEvent {
  correlation_id: string;
  status: number;
  headers: Headers;
}

export interface ResponseBodyChunkEvent {
  correlation_id: string;
  data: Uint8Array;
  is_last: boolean;
  total_size?: number | null;
  chunk_index: number;
  /** cumulative bytes sent so far */
  bytes_sent: number;
}

export interface RequestCompleteEvent {
  correlation_id: string;
  status: number;
  duration_ms: number;
  request_body_size: number;
  response_body_size: number;
  upstream_attempts: number;
  error?: string | null;
}

export type WebSocketOpcode = 'continuation' | 'text' | 'binary' | 'close' | 'ping' | 'pong';

export interface WebSocketFrameEvent {
  correlation_id: string;
  /** One of {@link WebSocketOpcode}; a Rust gRPC agent server passes a decimal frame type instead. */
  opcode: string;
  data: Uint8Array;
  client_to_server: boolean;
  /** 0-based per direction */
  frame_index: number;
  fin: boolean;
  route_id?: string | null;
  client_ip: string;
}

export type GuardrailInspectionType = 'prompt_injection' | 'pii_detection';

export interface GuardrailInspectEvent {
  correlation_id: string;
  inspection_type: GuardrailInspectionType;
  content: string;
  model?: string;
  categories: string[];
  route_id?: string;
  metadata: Record<string, string>;
}

/** Frame 0x17: configuration pushed to an agent. */
export interface ConfigureEvent {
  correlation_id: string;
  config: unknown;
  config_version?: string | null;
}

/** Every event, keyed by its `EventType`. */
export interface EventMap {
  configure: ConfigureEvent;
  request_headers: RequestHeadersEvent;
  request_body_chunk: RequestBodyChunkEvent;
  response_headers: ResponseHeadersEvent;
  response_body_chunk: ResponseBodyChunkEvent;
  request_complete: RequestCompleteEvent;
  web_socket_frame: WebSocketFrameEvent;
  guardrail_inspect: GuardrailInspectEvent;
}
export type AgentEvent = EventMap[EventType];

// ---------------------------------------------------------------- response (agent → proxy)

export interface BlockDecision {
  status: number;
  body?: string | null;
  headers?: Record<string, string> | null;
}
export interface RedirectDecision {
  url: string;
  status: number;
}
export interface ChallengeDecision {
  challenge_type: string;
  params: Record<string, string>;
}
/** Externally tagged like serde: `"allow"` or a single-key object. */
export type Decision =
  | 'allow'
  | { block: BlockDecision }
  | { redirect: RedirectDecision }
  | { challenge: ChallengeDecision };

export interface HeaderNameValue {
  name: string;
  value: string;
}
export type HeaderOp =
  | { set: HeaderNameValue }
  | { add: HeaderNameValue }
  | { remove: { name: string } };

export interface AuditMetadata {
  tags: string[];
  rule_ids: string[];
  /** f32 on the Rust side */
  confidence: number | null;
  reason_codes: string[];
  /** Any JSON; `correlation_id` here routes the reply on UDS. */
  custom: Record<string, unknown>;
}

/**
 * Body replacement. `null` data passes the chunk through, `""` drops it, any
 * other string replaces it — applied by the Rust proxy as raw UTF-8 text (not base64).
 */
export interface BodyMutation {
  data: string | null;
  chunk_index: number;
}

export type WebSocketDecision = 'allow' | 'drop' | { close: { code: number; reason: string } };

/** The one reply to every event. Key order here is the wire order. */
export interface AgentResponse {
  version: number;
  decision: Decision;
  request_headers: HeaderOp[];
  response_headers: HeaderOp[];
  routing_metadata: Record<string, string>;
  audit: AuditMetadata;
  needs_more: boolean;
  request_body_mutation: BodyMutation | null;
  response_body_mutation: BodyMutation | null;
  websocket_decision: WebSocketDecision | null;
}

// ---------------------------------------------------------------- guardrails

export type GuardrailSeverity = 'low' | 'medium' | 'high' | 'critical';

export interface GuardrailDetection {
  category: string;
  description: string;
  severity: GuardrailSeverity;
  confidence?: number;
  span?: { start: number; end: number };
}

/** Travels as a JSON string in `AgentResponse.routing_metadata.guardrail_response`. */
export interface GuardrailResponse {
  detected: boolean;
  confidence: number;
  detections: GuardrailDetection[];
  redacted_content?: string;
}

// ---------------------------------------------------------------- capabilities and handshake

export interface AgentFeatures {
  streaming_body: boolean;
  websocket: boolean;
  guardrails: boolean;
  config_push: boolean;
  metrics_export: boolean;
  concurrent_requests: number;
  cancellation: boolean;
  flow_control: boolean;
  health_reporting: boolean;
}

export interface AgentLimits {
  max_body_size: number;
  max_concurrency: number;
  preferred_chunk_size: number;
  /** gRPC only */
  max_memory?: number;
  /** gRPC only */
  max_processing_time_ms?: number;
}

/** gRPC only: how often the agent reports health. */
export interface HealthConfig {
  report_interval_ms: number;
  include_load_metrics: boolean;
  include_resource_metrics: boolean;
}

/**
 * What an agent can do. On UDS every field except the optional ones is required
 * (a Rust proxy rejects a handshake missing any of them).
 */
export interface AgentCapabilities {
  agent_id: string;
  name: string;
  version: string;
  /** proto numbering: RequestHeaders 1 … GuardrailInspect 7, Configure 8 */
  supported_events: number[];
  features: AgentFeatures;
  limits: AgentLimits;
  /** gRPC only */
  protocol_version?: number;
  /** gRPC only */
  health_config?: HealthConfig;
}

/** Frame 0x01 on a proxy-dialled UDS connection (always JSON). */
export interface HandshakeRequest {
  supported_versions: number[];
  proxy_id: string;
  proxy_version: string;
  config: unknown;
  /** Omitted on the wire when empty (⇒ json). */
  supported_encodings: Encoding[];
}

/**
 * Extension a picket agent adds to its handshake response. Rust proxies ignore
 * unknown keys; a picket proxy seeing it may send raw binary bodies in msgpack.
 */
export interface PicketExtension {
  /** picket wire-extension revision */
  version: number;
  /** the agent accepts `bin` body data in msgpack events */
  binary_bodies: boolean;
}

/** Frame 0x02 (always JSON). */
export interface HandshakeResponse {
  protocol_version: number;
  capabilities: AgentCapabilities;
  success: boolean;
  error: string | null;
  encoding: Encoding;
  picket?: PicketExtension;
}

/** Reverse connections: frame 0x01 sent by the agent after dialling the proxy. */
export interface RegistrationRequest {
  protocol_version: number;
  agent_id: string;
  capabilities: AgentCapabilities;
  auth_token: string | null;
  metadata: unknown;
}

/** Reverse connections: frame 0x02 sent by the proxy. */
export interface RegistrationResponse {
  success: boolean;
  error: string | null;
  proxy_id: string;
  proxy_version: string;
  /** `<agent_id>-<epoch ms in lowercase hex>`; `""` on failure */
  connection_id: string;
}

// ---------------------------------------------------------------- control messages

/** Why the proxy cancels a request. The wire numbers differ per transport (see cancel-reason.ts). */
export type CancelReason =
  | 'client_disconnect'
  | 'timeout'
  | 'blocked_by_agent'
  | 'upstream_error'
  | 'proxy_shutdown'
  | 'manual';

/** Frame 0x40 (always JSON): `reason` is the 0-based UDS number. */
export interface CancelMessage {
  correlation_id: string;
  reason: number;
  timestamp_ms: number;
}

/** Frame 0x41 (always JSON); 0x42 Pong echoes the same bytes. */
export interface PingMessage {
  sequence: number;
  timestamp_ms: number;
}

export type HealthState = 'healthy' | 'degraded' | 'draining' | 'unhealthy';

/** Frame 0x30: `state` 1 healthy, 2 degraded, 3 draining, 4 unhealthy. */
export interface HealthStatusMessage {
  state: number;
  /** picket extension, ignored by Rust proxies */
  message?: string;
}

export type FlowAction = 'pause' | 'resume';

/** Frame 0x33: `action` 1 pause, 2 resume (anything else means resume/normal). */
export interface FlowControlMessage {
  action: number;
}

export interface CounterMetric {
  name: string;
  help?: string;
  labels: Record<string, string>;
  value: number;
}
export interface GaugeMetric {
  name: string;
  help?: string;
  labels: Record<string, string>;
  value: number;
}
export interface HistogramBucket {
  /** upper bound; `Infinity` is written as `"+Inf"` */
  le: number;
  count: number;
}
export interface HistogramMetric {
  name: string;
  help?: string;
  labels: Record<string, string>;
  sum: number;
  count: number;
  buckets: HistogramBucket[];
}

/** Frame 0x31. */
export interface MetricsReport {
  agent_id: string;
  timestamp_ms: number;
  interval_ms: number;
  counters: CounterMetric[];
  gauges: GaugeMetric[];
  histograms: HistogramMetric[];
}

export interface RuleDefinition {
  id: string;
  priority: number;
  definition: unknown;
  enabled: boolean;
  description: string | null;
  tags: string[];
}

/** Internally tagged by `type`. */
export type ConfigUpdateType =
  | { type: 'request_reload' }
  | { type: 'rule_update'; rule_set: string; rules: RuleDefinition[]; remove_rules: string[] }
  | { type: 'list_update'; list_id: string; add: string[]; remove: string[] }
  | { type: 'restart_required'; reason: string; grace_period_ms: number }
  | { type: 'config_error'; error: string; field: string | null };

/** Frame 0x32. */
export interface ConfigUpdateRequest {
  update_type: ConfigUpdateType;
  request_id: string;
  timestamp_ms: number;
}

export interface ConfigUpdateResponse {
  request_id: string;
  accepted: boolean;
  error: string | null;
  timestamp_ms: number;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** gRPC `LogMessage` from an agent. */
export interface LogMessage {
  level: LogLevel;
  message: string;
  correlation_id: string | null;
  fields: Record<string, string>;
  timestamp_ms: number;
}
