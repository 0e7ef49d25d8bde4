/**
 * Conversions between picket's wire-shaped protocol types (@picket/protocol) and the
 * protobuf messages of `zentinel.agent.v2`, following the Rust client and server
 * (spec §4.4 / §4.5) where they are lossless and doing better where they are not:
 *
 * - proto3 implicit-presence fields are set only when non-default (prost omits defaults;
 *   protobufjs writes whatever is set), `optional` fields whenever present — so the bytes
 *   equal prost's (golden vectors G1–G6).
 * - bodies travel as raw bytes; audit `custom` values as JSON text (like a Rust agent);
 *   a received custom value is JSON-parsed when it parses, else kept as the raw string.
 * - what upstream's messages cannot carry goes into picket extension fields (≥ 1000) that
 *   Rust peers skip; see the README's table.
 *
 * The two per-call messages usually go through fast-paths.ts instead, which must match
 * these conversions (+ protobufjs) byte for byte and falls back to them for anything odd.
 */
import {
  type AgentCapabilities,
  AgentProtocolError,
  type AgentResponse,
  type AuditMetadata,
  type BodyMutation,
  type ConfigUpdateRequest,
  type ConfigUpdateResponse,
  type ConfigUpdateType,
  type ConfigureEvent,
  type Decision,
  ErrorCode,
  type EventMap,
  type EventType,
  emptyAudit,
  eventTypeFromNumber,
  type GuardrailInspectEvent,
  type HandshakeRequest,
  type HeaderOp,
  type Headers,
  type HealthState,
  healthStateFromWire,
  healthStateToWire,
  invalidMessage,
  type LogLevel,
  type LogMessage,
  type MetricsReport,
  PROTOCOL_VERSION,
  putOwn,
  type RequestBodyChunkEvent,
  type RequestCompleteEvent,
  type RequestHeadersEvent,
  type RequestMetadata,
  type ResponseBodyChunkEvent,
  type ResponseHeadersEvent,
  type RuleDefinition,
  type WebSocketDecision,
  type WebSocketFrameEvent,
} from '@picket/protocol';
import type { zentinel } from './generated/agent_v2.js';
import {
  f32,
  type IAgentCapabilities,
  type IAgentResponse,
  type IAuditMetadata,
  type IBodyChunkEvent,
  type IConfigUpdateRequest,
  type IConfigUpdateResponse,
  type IConfigureEvent,
  type IGuardrailInspectEvent,
  type IHandshakeRequest,
  type IHeader,
  type IHeaderOp,
  type IHealthStatus,
  type ILogMessage,
  type IMetricsReport,
  type IProxyToAgent,
  type IRequestCompleteEvent,
  type IRequestHeadersEvent,
  type IRequestMetadata,
  type IResponseHeadersEvent,
  type IWebSocketFrameEvent,
  num,
  optNum,
} from './proto.js';

type PbAgentResponse = zentinel.agent.v2.IAgentResponse;
type PbCapabilities = zentinel.agent.v2.IAgentCapabilities;
type PbRequestHeaders = zentinel.agent.v2.IRequestHeadersEvent;
type PbBodyChunk = zentinel.agent.v2.IBodyChunkEvent;
type PbResponseHeaders = zentinel.agent.v2.IResponseHeadersEvent;
type PbRequestComplete = zentinel.agent.v2.IRequestCompleteEvent;
type PbWebSocketFrame = zentinel.agent.v2.IWebSocketFrameEvent;
type PbGuardrail = zentinel.agent.v2.IGuardrailInspectEvent;
type PbConfigure = zentinel.agent.v2.IConfigureEvent;
type PbHandshakeRequest = zentinel.agent.v2.IHandshakeRequest;
type PbHealth = zentinel.agent.v2.IHealthStatus;
type PbMetrics = zentinel.agent.v2.IMetricsReport;
type PbConfigUpdate = zentinel.agent.v2.IConfigUpdateRequest;
type PbConfigUpdateResponse = zentinel.agent.v2.IConfigUpdateResponse;
type PbLog = zentinel.agent.v2.ILogMessage;

// ---------------------------------------------------------------- small helpers

/** A plain Uint8Array view (protobufjs hands out Buffers that share the frame's memory). */
function bytes(b: Uint8Array | null | undefined): Uint8Array {
  if (!b) return new Uint8Array(0);
  return Buffer.isBuffer(b) ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : b;
}

/** Headers map → repeated Header, one entry per value, in map order. */
export function headersToProto(h: Headers | null | undefined): IHeader[] {
  const out: IHeader[] = [];
  if (!h) return out;
  for (const name of Object.keys(h)) {
    const values = h[name];
    if (!values) continue;
    for (const value of values) out.push(header(name, value));
  }
  return out;
}

/** repeated Header → headers map (values of a repeated name collected in order). */
export function headersFromProto(list: readonly IHeader[] | null | undefined): Headers {
  const out: Headers = {};
  if (!list) return out;
  for (let i = 0; i < list.length; i++) {
    const h = list[i] as IHeader;
    addHeader(out, h.name ?? '', h.value ?? '');
  }
  return out;
}

/**
 * Adds a header value. Names are whatever the peer sent: `constructor`, `toString` or
 * `__proto__` must become own entries like any other, not reach Object.prototype.
 */
export function addHeader(out: Headers, name: string, value: string): void {
  const prev = out[name];
  if (prev !== undefined && Object.hasOwn(out, name)) prev.push(value);
  else putOwn(out, name, [value]);
}

function header(name: string, value: string): IHeader {
  const h: IHeader = {};
  if (name) h.name = name;
  if (value) h.value = value;
  return h;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})$/;
const EPOCH_MS = /^\d{1,16}$/;

/**
 * The metadata `timestamp` as epoch ms: RFC 3339 text is parsed (Rust sends "now"
 * instead; the event's own time is more useful), a decimal string (from a gRPC hop) is
 * taken as is, anything else falls back to now.
 */
export function timestampToMs(ts: string | null | undefined, now = Date.now()): number {
  if (ts) {
    if ((typeof ts !== 'string' || ts.length <= 16) && EPOCH_MS.test(ts)) return Number(ts);
    if (RFC3339.test(ts)) {
      // the pattern allows a space only between date and time (index 10)
      const ms = Date.parse(ts.charCodeAt(10) === 32 ? ts.replace(' ', 'T') : ts);
      if (Number.isFinite(ms) && ms >= 0) return ms;
    }
  }
  return now;
}

/** JSON text of any value; `undefined` / unserialisable values become `null`. */
export function jsonText(v: unknown): string {
  // numbers and booleans print as JSON.stringify prints them (non-finite numbers as null)
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  try {
    return JSON.stringify(v) ?? 'null';
  } catch {
    return 'null';
  }
}

/** JSON.parse when it parses, else the raw text (Rust agents send JSON text, others may not). */
export function parseJsonLoose(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function strMap(m: { [k: string]: string } | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (m) for (const k of Object.keys(m)) putOwn(out, k, m[k] ?? '');
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------- events: picket → proto (proxy side)

function metadataToProto(m: RequestMetadata, now: number): IRequestMetadata {
  const md: IRequestMetadata = {};
  if (m.correlation_id) md.correlation_id = m.correlation_id;
  if (m.request_id) md.request_id = m.request_id;
  if (m.client_ip) md.client_ip = m.client_ip;
  if (m.client_port) md.client_port = m.client_port;
  if (m.server_name != null) md.server_name = m.server_name;
  if (m.protocol) md.protocol = m.protocol;
  if (m.tls_version != null) md.tls_version = m.tls_version;
  if (m.route_id != null) md.route_id = m.route_id;
  if (m.upstream_id != null) md.upstream_id = m.upstream_id;
  const ts = timestampToMs(m.timestamp, now);
  if (ts) md.timestamp_ms = ts;
  if (m.traceparent != null) md.traceparent = m.traceparent;
  if (m.tls_cipher != null) md.tls_cipher = m.tls_cipher;
  return md;
}

/** RequestHeaders → proto. `http_version` is the metadata protocol when it is `HTTP/…` (Rust hard-codes HTTP/1.1). */
export function requestHeadersToProto(
  e: RequestHeadersEvent,
  now = Date.now(),
): IRequestHeadersEvent {
  const out: IRequestHeadersEvent = { metadata: metadataToProto(e.metadata, now) };
  if (e.method) out.method = e.method;
  if (e.uri) out.uri = e.uri;
  const proto = e.metadata.protocol;
  out.http_version = proto?.startsWith('HTTP/') ? proto : 'HTTP/1.1';
  const headers = headersToProto(e.headers);
  if (headers.length) out.headers = headers;
  return out;
}

function bodyChunkToProto(
  cid: string,
  data: Uint8Array,
  isLast: boolean,
  totalSize: number | null | undefined,
  chunkIndex: number,
  transferred: number,
  now: number,
): IBodyChunkEvent {
  const out: IBodyChunkEvent = {};
  if (cid) out.correlation_id = cid;
  if (chunkIndex) out.chunk_index = chunkIndex;
  if (data.length) out.data = data;
  if (isLast) out.is_last = true;
  if (totalSize != null) out.total_size = totalSize;
  if (transferred) out.bytes_transferred = transferred;
  out.timestamp_ms = now;
  return out;
}

export function requestBodyChunkToProto(
  e: RequestBodyChunkEvent,
  now = Date.now(),
): IBodyChunkEvent {
  return bodyChunkToProto(
    e.correlation_id,
    e.data,
    e.is_last,
    e.total_size,
    e.chunk_index,
    e.bytes_received,
    now,
  );
}

export function responseBodyChunkToProto(
  e: ResponseBodyChunkEvent,
  now = Date.now(),
): IBodyChunkEvent {
  return bodyChunkToProto(
    e.correlation_id,
    e.data,
    e.is_last,
    e.total_size,
    e.chunk_index,
    e.bytes_sent,
    now,
  );
}

export function responseHeadersToProto(e: ResponseHeadersEvent): IResponseHeadersEvent {
  const out: IResponseHeadersEvent = {};
  if (e.correlation_id) out.correlation_id = e.correlation_id;
  if (e.status) out.status_code = e.status;
  const headers = headersToProto(e.headers);
  if (headers.length) out.headers = headers;
  return out;
}

export function requestCompleteToProto(e: RequestCompleteEvent): IRequestCompleteEvent {
  const out: IRequestCompleteEvent = {};
  if (e.correlation_id) out.correlation_id = e.correlation_id;
  if (e.status) out.status_code = e.status;
  if (e.duration_ms) out.duration_ms = e.duration_ms;
  if (e.request_body_size) out.bytes_received = e.request_body_size;
  if (e.response_body_size) out.bytes_sent = e.response_body_size;
  if (e.error != null) out.error = e.error;
  if (e.upstream_attempts !== 1) out.upstream_attempts = e.upstream_attempts;
  return out;
}

/** proto FrameType: TEXT 1, BINARY 2, PING 3, PONG 4, CLOSE 5; continuation has none (0). */
const FRAME_TYPES: Readonly<Record<string, number>> = {
  continuation: 0,
  text: 1,
  binary: 2,
  ping: 3,
  pong: 4,
  close: 5,
};
const FRAME_NAMES = ['continuation', 'text', 'binary', 'ping', 'pong', 'close'] as const;

export function webSocketFrameToProto(e: WebSocketFrameEvent): IWebSocketFrameEvent {
  const out: IWebSocketFrameEvent = {};
  if (e.correlation_id) out.correlation_id = e.correlation_id;
  if (e.client_to_server) out.client_to_server = true;
  // a decimal opcode comes from a Rust gRPC hop; keep its number
  const ft = FRAME_TYPES[e.opcode] ?? (/^\d+$/.test(e.opcode) ? Number(e.opcode) : 0);
  if (ft) out.frame_type = ft;
  if (e.data.length) out.payload = e.data;
  if (e.frame_index) out.frame_index = e.frame_index;
  if (!e.fin) out.fin = false;
  if (e.route_id != null) out.route_id = e.route_id;
  if (e.client_ip) out.client_ip = e.client_ip;
  return out;
}

/** Guardrail: `content_type` PROMPT; what the proto has no field for travels in `context_json`. */
export function guardrailToProto(e: GuardrailInspectEvent): IGuardrailInspectEvent {
  const out: IGuardrailInspectEvent = { content_type: 1 };
  if (e.correlation_id) out.correlation_id = e.correlation_id;
  if (e.content) out.content = e.content;
  if (e.model != null) out.model = e.model;
  const context: Record<string, unknown> = {
    inspection_type: e.inspection_type,
    categories: e.categories,
    metadata: e.metadata,
  };
  if (e.route_id != null) context.route_id = e.route_id;
  out.context_json = JSON.stringify(context);
  return out;
}

export function configureToProto(e: ConfigureEvent, now = Date.now()): IConfigureEvent {
  const out: IConfigureEvent = { config_json: jsonText(e.config) };
  if (e.config_version != null) out.config_version = e.config_version;
  out.timestamp_ms = now;
  out.correlation_id = e.correlation_id;
  return out;
}

/** Any event as the ProxyToAgent envelope. */
export function eventToProto<K extends EventType>(
  type: K,
  event: EventMap[K],
  now = Date.now(),
): IProxyToAgent {
  switch (type) {
    case 'request_headers':
      return { request_headers: requestHeadersToProto(event as RequestHeadersEvent, now) };
    case 'request_body_chunk':
      return { request_body_chunk: requestBodyChunkToProto(event as RequestBodyChunkEvent, now) };
    case 'response_headers':
      return { response_headers: responseHeadersToProto(event as ResponseHeadersEvent) };
    case 'response_body_chunk':
      return {
        response_body_chunk: responseBodyChunkToProto(event as ResponseBodyChunkEvent, now),
      };
    case 'request_complete':
      return { request_complete: requestCompleteToProto(event as RequestCompleteEvent) };
    case 'web_socket_frame':
      return { websocket_frame: webSocketFrameToProto(event as WebSocketFrameEvent) };
    case 'guardrail_inspect':
      return { guardrail: guardrailToProto(event as GuardrailInspectEvent) };
    case 'configure':
      return { configure: configureToProto(event as ConfigureEvent, now) };
    default:
      throw new AgentProtocolError(ErrorCode.InvalidArgument, `unknown event type ${String(type)}`);
  }
}

/** A Ping (sequence 0 is a proto3 default and so not written, as in golden vector G5). */
export function pingToProto(sequence: number, now = Date.now()): IProxyToAgent {
  const ping: { sequence?: number; timestamp_ms?: number } = {};
  if (sequence) ping.sequence = sequence;
  if (now) ping.timestamp_ms = now;
  return { ping };
}

/** The handshake a picket proxy sends: versions [2, 1], config_json "{}" unless given. */
export function handshakeRequestToProto(r: HandshakeRequest): IHandshakeRequest {
  const out: IHandshakeRequest = {};
  if (r.supported_versions.length) out.supported_versions = r.supported_versions;
  if (r.proxy_id) out.proxy_id = r.proxy_id;
  if (r.proxy_version) out.proxy_version = r.proxy_version;
  const cfg = r.config == null ? '{}' : jsonText(r.config);
  if (cfg) out.config_json = cfg;
  return out;
}

// ---------------------------------------------------------------- events: proto → picket (agent side)

/** proto RequestMetadata → picket (absent fields as their defaults). */
export function metadataFromProto(m: IRequestMetadata | null | undefined): RequestMetadata {
  const md: RequestMetadata = {
    correlation_id: m?.correlation_id ?? '',
    request_id: m?.request_id ?? '',
    client_ip: m?.client_ip ?? '',
    client_port: m?.client_port ?? 0,
    server_name: m?.server_name ?? null,
    protocol: m?.protocol ?? '',
    tls_version: m?.tls_version ?? null,
    tls_cipher: m?.tls_cipher ?? null,
    route_id: m?.route_id ?? null,
    upstream_id: m?.upstream_id ?? null,
    timestamp: String(num(m?.timestamp_ms)),
  };
  if (m?.traceparent != null) md.traceparent = m.traceparent;
  return md;
}

export function requestHeadersFromProto(e: PbRequestHeaders): RequestHeadersEvent {
  return {
    metadata: metadataFromProto(e.metadata),
    method: e.method ?? '',
    uri: e.uri ?? '',
    headers: headersFromProto(e.headers),
  };
}

export function requestBodyChunkFromProto(e: PbBodyChunk): RequestBodyChunkEvent {
  return {
    correlation_id: e.correlation_id ?? '',
    data: bytes(e.data),
    is_last: e.is_last ?? false,
    total_size: optNum(e.total_size) ?? null,
    chunk_index: e.chunk_index ?? 0,
    bytes_received: num(e.bytes_transferred),
  };
}

export function responseBodyChunkFromProto(e: PbBodyChunk): ResponseBodyChunkEvent {
  return {
    correlation_id: e.correlation_id ?? '',
    data: bytes(e.data),
    is_last: e.is_last ?? false,
    total_size: optNum(e.total_size) ?? null,
    chunk_index: e.chunk_index ?? 0,
    bytes_sent: num(e.bytes_transferred),
  };
}

export function responseHeadersFromProto(e: PbResponseHeaders): ResponseHeadersEvent {
  return {
    correlation_id: e.correlation_id ?? '',
    status: e.status_code ?? 0,
    headers: headersFromProto(e.headers),
  };
}

export function requestCompleteFromProto(e: PbRequestComplete): RequestCompleteEvent {
  return {
    correlation_id: e.correlation_id ?? '',
    status: e.status_code ?? 0,
    duration_ms: num(e.duration_ms),
    request_body_size: num(e.bytes_received),
    response_body_size: num(e.bytes_sent),
    upstream_attempts: e.upstream_attempts ?? 1,
    error: e.error ?? null,
  };
}

/** Frame types become opcode names (a Rust agent server passes the decimal number instead). */
export function webSocketFrameFromProto(e: PbWebSocketFrame): WebSocketFrameEvent {
  const ft = e.frame_type ?? 0;
  return {
    correlation_id: e.correlation_id ?? '',
    opcode: FRAME_NAMES[ft] ?? String(ft),
    data: bytes(e.payload),
    client_to_server: e.client_to_server ?? false,
    frame_index: e.frame_index ?? 0,
    fin: e.fin ?? true,
    route_id: e.route_id ?? null,
    client_ip: e.client_ip ?? '',
  };
}

export function guardrailFromProto(e: PbGuardrail): GuardrailInspectEvent {
  const ctx = e.context_json ? parseJsonLoose(e.context_json) : {};
  const c = isRecord(ctx) ? ctx : {};
  const out: GuardrailInspectEvent = {
    correlation_id: e.correlation_id ?? '',
    inspection_type: c.inspection_type === 'pii_detection' ? 'pii_detection' : 'prompt_injection',
    content: e.content ?? '',
    categories: Array.isArray(c.categories)
      ? c.categories.filter((x): x is string => typeof x === 'string')
      : [],
    metadata: isRecord(c.metadata)
      ? Object.fromEntries(
          Object.entries(c.metadata).filter(
            (kv): kv is [string, string] => typeof kv[1] === 'string',
          ),
        )
      : {},
  };
  if (e.model != null) out.model = e.model;
  if (typeof c.route_id === 'string') out.route_id = c.route_id;
  return out;
}

export function configureFromProto(e: PbConfigure): ConfigureEvent {
  return {
    correlation_id: e.correlation_id ?? '',
    config: e.config_json ? parseJsonLoose(e.config_json) : null,
    config_version: e.config_version ?? null,
  };
}

export function handshakeRequestFromProto(r: PbHandshakeRequest): HandshakeRequest {
  return {
    supported_versions: [...(r.supported_versions ?? [])],
    proxy_id: r.proxy_id ?? '',
    proxy_version: r.proxy_version ?? '',
    config: r.config_json ? parseJsonLoose(r.config_json) : null,
    supported_encodings: [],
  };
}

// ---------------------------------------------------------------- responses

function decisionToProto(d: Decision, out: IAgentResponse): void {
  if (d === 'allow') {
    out.allow = {};
  } else if (typeof d !== 'object' || d === null) {
    throw invalidMessage('AgentResponse.decision', `unknown decision ${JSON.stringify(d)}`);
  } else if ('block' in d) {
    const b = d.block;
    const block: NonNullable<IAgentResponse['block']> = {};
    if (b.status) block.status = b.status;
    if (b.body != null) block.body = b.body;
    if (b.headers) {
      const hs = Object.keys(b.headers).map((k) => header(k, b.headers?.[k] ?? ''));
      if (hs.length) block.headers = hs;
    }
    out.block = block;
  } else if ('redirect' in d) {
    const r: NonNullable<IAgentResponse['redirect']> = {};
    if (d.redirect.url) r.url = d.redirect.url;
    if (d.redirect.status) r.status = d.redirect.status;
    out.redirect = r;
  } else if ('challenge' in d) {
    const c: NonNullable<IAgentResponse['challenge']> = {};
    if (d.challenge.challenge_type) c.challenge_type = d.challenge.challenge_type;
    if (d.challenge.params && Object.keys(d.challenge.params).length) c.params = d.challenge.params;
    out.challenge = c;
  } else {
    throw invalidMessage('AgentResponse.decision', `unknown decision ${JSON.stringify(d)}`);
  }
}

function headerOpsToProto(ops: readonly HeaderOp[]): IHeaderOp[] {
  return ops.map((op): IHeaderOp => {
    if ('set' in op) return { set: header(op.set.name, op.set.value) };
    if ('add' in op) return { add: header(op.add.name, op.add.value) };
    if ('remove' in op) return { remove: op.remove.name };
    throw invalidMessage('AgentResponse header op', JSON.stringify(op));
  });
}

/** Audit with custom values as JSON text, as a Rust agent sends them. */
function auditToProto(a: AuditMetadata): IAuditMetadata {
  const out: IAuditMetadata = {};
  if (a.tags?.length) out.tags = a.tags;
  if (a.rule_ids?.length) out.rule_ids = a.rule_ids;
  if (a.confidence != null) out.confidence = a.confidence;
  if (a.reason_codes?.length) out.reason_codes = a.reason_codes;
  const keys = a.custom ? Object.keys(a.custom) : [];
  if (keys.length) {
    const custom: Record<string, string> = {};
    for (const k of keys) putOwn(custom, k, jsonText(a.custom[k]));
    out.custom = custom;
  }
  return out;
}

function mutationToProto(m: BodyMutation): NonNullable<IAgentResponse['request_body_mutation']> {
  const out: NonNullable<IAgentResponse['request_body_mutation']> = {};
  if (m.data != null) out.data = m.data;
  if (m.chunk_index) out.chunk_index = m.chunk_index;
  return out;
}

function wsDecisionToProto(
  d: WebSocketDecision,
): NonNullable<IAgentResponse['websocket_decision']> {
  if (d === 'allow') return { allow: {} };
  if (d === 'drop') return { drop: {} };
  const close: { code?: number; reason?: string } = {};
  if (d.close.code) close.code = d.close.code;
  if (d.close.reason) close.reason = d.close.reason;
  return { close };
}

/**
 * AgentResponse → proto as a Rust agent server writes it: the given correlation id,
 * `audit` and `processing_time_ms` always present; picket extension fields only when set.
 */
export function agentResponseToProto(
  r: AgentResponse,
  correlationId: string,
  processingTimeMs: number,
): IAgentResponse {
  const out: IAgentResponse = {};
  if (correlationId) out.correlation_id = correlationId;
  decisionToProto(r.decision, out);
  if (r.request_headers?.length) out.request_headers = headerOpsToProto(r.request_headers);
  if (r.response_headers?.length) out.response_headers = headerOpsToProto(r.response_headers);
  out.audit = auditToProto(r.audit ?? emptyAudit());
  out.processing_time_ms = Math.max(0, Math.round(processingTimeMs));
  if (r.needs_more) out.needs_more = true;
  if (r.routing_metadata && Object.keys(r.routing_metadata).length) {
    out.routing_metadata = r.routing_metadata;
  }
  if (r.request_body_mutation) out.request_body_mutation = mutationToProto(r.request_body_mutation);
  if (r.response_body_mutation) {
    out.response_body_mutation = mutationToProto(r.response_body_mutation);
  }
  if (r.websocket_decision) out.websocket_decision = wsDecisionToProto(r.websocket_decision);
  return out;
}

function decisionFromProto(r: PbAgentResponse): Decision {
  if (r.block) {
    const hs = r.block.headers ?? [];
    let headers: Record<string, string> | null = null;
    if (hs.length) {
      headers = {};
      for (const h of hs) putOwn(headers, h.name ?? '', h.value ?? '');
    }
    return { block: { status: r.block.status ?? 0, body: r.block.body ?? null, headers } };
  }
  if (r.redirect)
    return { redirect: { url: r.redirect.url ?? '', status: r.redirect.status ?? 0 } };
  if (r.challenge) {
    return {
      challenge: {
        challenge_type: r.challenge.challenge_type ?? '',
        params: strMap(r.challenge.params),
      },
    };
  }
  return 'allow'; // allow, or no decision at all (Rust: none ⇒ allow)
}

function headerOpsFromProto(ops: readonly IHeaderOp[]): HeaderOp[] {
  const out: HeaderOp[] = [];
  for (const op of ops) {
    if (op.set) out.push({ set: { name: op.set.name ?? '', value: op.set.value ?? '' } });
    else if (op.add) out.push({ add: { name: op.add.name ?? '', value: op.add.value ?? '' } });
    else if (op.remove != null) out.push({ remove: { name: op.remove } });
    // an op without operation is dropped, as Rust does
  }
  return out;
}

function auditFromProto(a: IAuditMetadata | null | undefined): AuditMetadata {
  const custom: Record<string, unknown> = {};
  if (a?.custom) {
    for (const k of Object.keys(a.custom)) putOwn(custom, k, parseJsonLoose(a.custom[k] ?? ''));
  }
  return {
    tags: a?.tags ? [...a.tags] : [],
    rule_ids: a?.rule_ids ? [...a.rule_ids] : [],
    confidence: a?.confidence == null ? null : f32(a.confidence),
    reason_codes: a?.reason_codes ? [...a.reason_codes] : [],
    custom,
  };
}

function mutationFromProto(
  m: NonNullable<IAgentResponse['request_body_mutation']> | null | undefined,
): BodyMutation | null {
  if (!m) return null;
  return { data: m.data ?? null, chunk_index: m.chunk_index ?? 0 };
}

function wsDecisionFromProto(
  d: NonNullable<IAgentResponse['websocket_decision']> | null | undefined,
): WebSocketDecision | null {
  if (!d) return null;
  if (d.close) return { close: { code: d.close.code ?? 0, reason: d.close.reason ?? '' } };
  if (d.drop) return 'drop';
  if (d.allow) return 'allow';
  return null;
}

/** proto AgentResponse → picket AgentResponse (version 2). */
export function agentResponseFromProto(r: PbAgentResponse): AgentResponse {
  return {
    version: PROTOCOL_VERSION,
    decision: decisionFromProto(r),
    request_headers: headerOpsFromProto(r.request_headers ?? []),
    response_headers: headerOpsFromProto(r.response_headers ?? []),
    routing_metadata: strMap(r.routing_metadata),
    audit: auditFromProto(r.audit),
    needs_more: r.needs_more ?? false,
    request_body_mutation: mutationFromProto(r.request_body_mutation),
    response_body_mutation: mutationFromProto(r.response_body_mutation),
    websocket_decision: wsDecisionFromProto(r.websocket_decision),
  };
}

// ---------------------------------------------------------------- capabilities

/** Rust's gRPC defaults for what picket capabilities may leave out (golden vector G2). */
export const DEFAULT_HEALTH_CONFIG = {
  report_interval_ms: 10_000,
  include_load_metrics: true,
  include_resource_metrics: false,
} as const;
export const DEFAULT_MAX_PROCESSING_TIME_MS = 5000;

/** Capabilities as a Rust agent server sends them: health_config and max_processing_time_ms filled in. */
export function capabilitiesToProto(c: AgentCapabilities): IAgentCapabilities {
  const out: IAgentCapabilities = {};
  const pv = c.protocol_version ?? PROTOCOL_VERSION;
  if (pv) out.protocol_version = pv;
  if (c.agent_id) out.agent_id = c.agent_id;
  if (c.name) out.name = c.name;
  if (c.version) out.version = c.version;
  if (c.supported_events.length) out.supported_events = c.supported_events;
  const f = c.features;
  const features: NonNullable<IAgentCapabilities['features']> = {};
  if (f.streaming_body) features.streaming_body = true;
  if (f.websocket) features.websocket = true;
  if (f.guardrails) features.guardrails = true;
  if (f.config_push) features.config_push = true;
  if (f.metrics_export) features.metrics_export = true;
  if (f.concurrent_requests) features.concurrent_requests = f.concurrent_requests;
  if (f.cancellation) features.cancellation = true;
  if (f.flow_control) features.flow_control = true;
  if (f.health_reporting) features.health_reporting = true;
  out.features = features;
  const l = c.limits;
  const limits: NonNullable<IAgentCapabilities['limits']> = {};
  if (l.max_body_size) limits.max_body_size = l.max_body_size;
  if (l.max_concurrency) limits.max_concurrency = l.max_concurrency;
  if (l.preferred_chunk_size) limits.preferred_chunk_size = l.preferred_chunk_size;
  if (l.max_memory != null) limits.max_memory = l.max_memory;
  limits.max_processing_time_ms = l.max_processing_time_ms ?? DEFAULT_MAX_PROCESSING_TIME_MS;
  out.limits = limits;
  const h = c.health_config ?? DEFAULT_HEALTH_CONFIG;
  const hc: NonNullable<IAgentCapabilities['health_config']> = {};
  if (h.report_interval_ms) hc.report_interval_ms = h.report_interval_ms;
  if (h.include_load_metrics) hc.include_load_metrics = true;
  if (h.include_resource_metrics) hc.include_resource_metrics = true;
  out.health_config = hc;
  return out;
}

/** proto capabilities → picket (supported_events outside 1..8 dropped, like Rust). */
export function capabilitiesFromProto(c: PbCapabilities | null | undefined): AgentCapabilities {
  const f = c?.features;
  const l = c?.limits;
  const out: AgentCapabilities = {
    agent_id: c?.agent_id ?? '',
    name: c?.name ?? '',
    version: c?.version ?? '',
    supported_events: (c?.supported_events ?? []).filter(
      (n) => n >= 1 && n <= 8 && eventTypeFromNumber(n) !== undefined,
    ),
    features: {
      streaming_body: f?.streaming_body ?? false,
      websocket: f?.websocket ?? false,
      guardrails: f?.guardrails ?? false,
      config_push: f?.config_push ?? false,
      metrics_export: f?.metrics_export ?? false,
      concurrent_requests: f?.concurrent_requests ?? 0,
      cancellation: f?.cancellation ?? false,
      flow_control: f?.flow_control ?? false,
      health_reporting: f?.health_reporting ?? false,
    },
    limits: {
      max_body_size: num(l?.max_body_size),
      max_concurrency: l?.max_concurrency ?? 0,
      preferred_chunk_size: num(l?.preferred_chunk_size),
    },
    protocol_version: c?.protocol_version ?? 0,
  };
  const maxMemory = optNum(l?.max_memory);
  if (maxMemory !== undefined) out.limits.max_memory = maxMemory;
  const maxTime = optNum(l?.max_processing_time_ms);
  if (maxTime !== undefined) out.limits.max_processing_time_ms = maxTime;
  if (c?.health_config) {
    out.health_config = {
      report_interval_ms: c.health_config.report_interval_ms ?? 0,
      include_load_metrics: c.health_config.include_load_metrics ?? false,
      include_resource_metrics: c.health_config.include_resource_metrics ?? false,
    };
  }
  return out;
}

// ---------------------------------------------------------------- control messages

/** HealthStatus for a state (+ message), stamped now. */
export function healthToProto(
  agentId: string,
  state: HealthState,
  message?: string,
  now = Date.now(),
): IHealthStatus {
  const out: IHealthStatus = { state: healthStateToWire(state), timestamp_ms: now };
  if (agentId) out.agent_id = agentId;
  if (message != null) out.message = message;
  if (state === 'unhealthy') out.recoverable = true;
  return out;
}

/** `undefined` for UNSPECIFIED / unknown states. */
export function healthFromProto(h: PbHealth): { state: HealthState; message?: string } | undefined {
  const state = healthStateFromWire(h.state ?? 0);
  if (!state) return undefined;
  const message = h.message ?? h.unhealthy_reason ?? undefined;
  return message != null ? { state, message } : { state };
}

export function metricsToProto(m: MetricsReport): IMetricsReport {
  const labels = (l: Record<string, string>) => (Object.keys(l).length ? l : undefined);
  return {
    agent_id: m.agent_id || undefined,
    timestamp_ms: m.timestamp_ms || undefined,
    interval_ms: m.interval_ms || undefined,
    counters: m.counters.map((c) => ({
      name: c.name,
      help: c.help,
      labels: labels(c.labels),
      value: c.value || undefined,
    })),
    gauges: m.gauges.map((g) => ({
      name: g.name,
      help: g.help,
      labels: labels(g.labels),
      value: g.value || undefined,
    })),
    histograms: m.histograms.map((h) => ({
      name: h.name,
      help: h.help,
      labels: labels(h.labels),
      sum: h.sum || undefined,
      count: h.count || undefined,
      buckets: h.buckets.map((b) => ({ le: b.le, count: b.count || undefined })),
    })),
  };
}

export function metricsFromProto(m: PbMetrics, agentId?: string): MetricsReport {
  const help = (h: string | null | undefined) => (h ? { help: h } : {});
  return {
    agent_id: agentId || (m.agent_id ?? ''),
    timestamp_ms: num(m.timestamp_ms),
    interval_ms: num(m.interval_ms),
    counters: (m.counters ?? []).map((c) => ({
      name: c.name ?? '',
      ...help(c.help),
      labels: strMap(c.labels),
      value: num(c.value),
    })),
    gauges: (m.gauges ?? []).map((g) => ({
      name: g.name ?? '',
      ...help(g.help),
      labels: strMap(g.labels),
      value: g.value ?? 0,
    })),
    histograms: (m.histograms ?? []).map((h) => ({
      name: h.name ?? '',
      ...help(h.help),
      labels: strMap(h.labels),
      sum: h.sum ?? 0,
      count: num(h.count),
      buckets: (h.buckets ?? []).map((b) => ({ le: b.le ?? 0, count: num(b.count) })),
    })),
  };
}

function ruleToProto(r: RuleDefinition) {
  return {
    id: r.id || undefined,
    priority: r.priority || undefined,
    definition_json: jsonText(r.definition),
    enabled: r.enabled || undefined,
    description: r.description ?? undefined,
    tags: r.tags,
  };
}

export function configUpdateToProto(r: ConfigUpdateRequest): IConfigUpdateRequest {
  const out: IConfigUpdateRequest = {
    request_id: r.request_id || undefined,
    timestamp_ms: r.timestamp_ms || undefined,
  };
  const u = r.update_type;
  switch (u.type) {
    case 'request_reload':
      out.request_reload = {};
      break;
    case 'rule_update':
      out.rule_update = {
        rule_set: u.rule_set || undefined,
        rules: u.rules.map(ruleToProto),
        remove_rules: u.remove_rules,
      };
      break;
    case 'list_update':
      out.list_update = { list_id: u.list_id || undefined, add: u.add, remove: u.remove };
      break;
    case 'restart_required':
      out.restart_required = {
        reason: u.reason || undefined,
        grace_period_ms: u.grace_period_ms || undefined,
      };
      break;
    case 'config_error':
      out.config_error = { error: u.error || undefined, field: u.field ?? undefined };
      break;
  }
  return out;
}

/** `undefined` when no update type is set (nothing to act on). */
export function configUpdateFromProto(r: PbConfigUpdate): ConfigUpdateRequest | undefined {
  let update: ConfigUpdateType;
  if (r.request_reload) update = { type: 'request_reload' };
  else if (r.rule_update) {
    update = {
      type: 'rule_update',
      rule_set: r.rule_update.rule_set ?? '',
      rules: (r.rule_update.rules ?? []).map((d) => ({
        id: d.id ?? '',
        priority: d.priority ?? 0,
        definition: d.definition_json ? parseJsonLoose(d.definition_json) : null,
        enabled: d.enabled ?? false,
        description: d.description ?? null,
        tags: [...(d.tags ?? [])],
      })),
      remove_rules: [...(r.rule_update.remove_rules ?? [])],
    };
  } else if (r.list_update) {
    update = {
      type: 'list_update',
      list_id: r.list_update.list_id ?? '',
      add: [...(r.list_update.add ?? [])],
      remove: [...(r.list_update.remove ?? [])],
    };
  } else if (r.restart_required) {
    update = {
      type: 'restart_required',
      reason: r.restart_required.reason ?? '',
      grace_period_ms: num(r.restart_required.grace_period_ms),
    };
  } else if (r.config_error) {
    update = {
      type: 'config_error',
      error: r.config_error.error ?? '',
      field: r.config_error.field ?? null,
    };
  } else return undefined;
  return { update_type: update, request_id: r.request_id ?? '', timestamp_ms: num(r.timestamp_ms) };
}

export function configResponseToProto(r: ConfigUpdateResponse): IConfigUpdateResponse {
  const out: IConfigUpdateResponse = {};
  if (r.request_id) out.request_id = r.request_id;
  if (r.accepted) out.accepted = true;
  if (r.error != null) out.error = r.error;
  if (r.timestamp_ms) out.timestamp_ms = r.timestamp_ms;
  return out;
}

export function configResponseFromProto(r: PbConfigUpdateResponse): ConfigUpdateResponse {
  return {
    request_id: r.request_id ?? '',
    accepted: r.accepted ?? false,
    error: r.error ?? null,
    timestamp_ms: num(r.timestamp_ms),
  };
}

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export function logToProto(l: LogMessage): ILogMessage {
  const out: ILogMessage = { level: LOG_LEVELS.indexOf(l.level) + 1, timestamp_ms: l.timestamp_ms };
  if (l.message) out.message = l.message;
  if (l.correlation_id != null) out.correlation_id = l.correlation_id;
  if (Object.keys(l.fields).length) out.fields = l.fields;
  return out;
}

/** Unknown levels read as `info`. */
export function logFromProto(l: PbLog): LogMessage {
  return {
    level: LOG_LEVELS[(l.level ?? 0) - 1] ?? 'info',
    message: l.message ?? '',
    correlation_id: l.correlation_id ?? null,
    fields: strMap(l.fields),
    timestamp_ms: num(l.timestamp_ms),
  };
}

/** Which ProxyToAgent member carries which event type. */
export const EVENT_FIELDS = {
  request_headers: 'request_headers',
  request_body_chunk: 'request_body_chunk',
  response_headers: 'response_headers',
  response_body_chunk: 'response_body_chunk',
  request_complete: 'request_complete',
  web_socket_frame: 'websocket_frame',
  guardrail_inspect: 'guardrail',
  configure: 'configure',
} as const satisfies Record<EventType, keyof IProxyToAgent>;
