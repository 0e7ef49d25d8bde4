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
function addHeader(out: Headers, name: string, value: string): void {
  const prev = out[name];
  if (prev !== undefined && Object.hasOwn(out, name)) prev.push(value);
  else putOwn(out, name, [value]);
}

/**
 * Sets `key` as an own data property: a plain assignment of `"__proto__"` would replace
 * the object's prototype (or be ignored) instead of adding the entry.
 */
function putOwn<T>(out: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') {
    Object.defineProperty(out, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else out[key] = value;
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
function jsonText(v: unknown): string {
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

function metadataFromProto(m: IRequestMetadata | null | undefined): RequestMetadata {
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
    for (const k of keys) custom[k] = jsonText(a.custom[k]);
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

// ---------------------------------------------------------------- fast paths (hot per-call messages)
//
// The messages of every call — ProxyToAgent{request_headers} from the proxy, AgentToProxy{response}
// from the agent — are written and read here directly, without the protobufjs message objects
// and writer operations in between (they were most of the per-call allocations). Each fast path
// handles plain, well-typed values only and returns `undefined` for anything else (and on any
// unexpected exception), so the caller takes the general path (the conversions above +
// protobufjs), which keeps every odd case and error exactly as it was. Output is identical to
// that path's: the same bytes (golden vectors G1–G6) and deep-equal objects.

/** Thrown inside a fast path for a value it does not handle; never escapes this module. */
const BAIL = { bail: true } as const;

const MAX_U32 = 0xffff_ffff;

/** Encoded messages are views into 64 KiB slabs that are written once, never reused. */
const SLAB_SIZE = 64 * 1024;
let slab = Buffer.allocUnsafe(SLAB_SIZE);
/** next free offset in `slab` */
let slabAt = 0;
/** the buffer and position of the message being written */
let out: Buffer = slab;
let pos = 0;

/** Starts a message of at most `bound` bytes; returns its start offset in `out`. */
function beginMessage(bound: number): number {
  if (bound > SLAB_SIZE >>> 2) {
    out = Buffer.allocUnsafe(bound);
    pos = 0;
    return 0;
  }
  if (SLAB_SIZE - slabAt < bound) {
    slab = Buffer.allocUnsafe(SLAB_SIZE);
    slabAt = 0;
  }
  out = slab;
  pos = slabAt;
  return pos;
}

function endMessage(start: number): Buffer {
  if (pos > out.length) throw BAIL; // the room was misjudged: never hand out a cut message
  const bytes = out.subarray(start, pos);
  if (out === slab) slabAt = (pos + 7) & ~7;
  return bytes;
}

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x20_0000 ? 3 : v < 0x1000_0000 ? 4 : 5;
}

/** A varint of an integer in 0 … 2^32-1. */
function u32(v: number): void {
  while (v > 127) {
    out[pos++] = (v & 127) | 128;
    v >>>= 7;
  }
  out[pos++] = v;
}

/** A varint of a safe non-negative integer (uint64 as protobufjs writes a number). */
function u64(v: number): void {
  while (v > MAX_U32) {
    out[pos++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  u32(v);
}

/**
 * A length-prefixed string, bytes as protobufjs writes them: its own UTF-8 loop below 40
 * UTF-16 units (a lone surrogate becomes 3 bytes of itself), Buffer#write from 40 on.
 */
function str(s: string): void {
  const n = s.length;
  if (n < 40) {
    const lenAt = pos;
    // from ~24 units Buffer#write beats the loop; it wrote the same bytes if they were all ASCII
    if (n >= 24 && out.write(s, pos + 1) === n) {
      out[lenAt] = n;
      pos += n + 1;
      return;
    }
    let p = pos + 1; // < 40 units are < 120 bytes: a one-byte length
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        out[p++] = c;
      } else if (c < 0x800) {
        out[p++] = (c >> 6) | 192;
        out[p++] = (c & 63) | 128;
      } else if ((c & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        c = 0x10000 + ((c & 0x3ff) << 10) + (s.charCodeAt(++i) & 0x3ff);
        out[p++] = (c >> 18) | 240;
        out[p++] = ((c >> 12) & 63) | 128;
        out[p++] = ((c >> 6) & 63) | 128;
        out[p++] = (c & 63) | 128;
      } else {
        out[p++] = (c >> 12) | 224;
        out[p++] = ((c >> 6) & 63) | 128;
        out[p++] = (c & 63) | 128;
      }
    }
    out[lenAt] = p - lenAt - 1;
    pos = p;
    return;
  }
  const reserved = varintSize(n); // right for ASCII; moved below otherwise
  const len = out.write(s, pos + reserved);
  const size = varintSize(len);
  if (size !== reserved) out.copyWithin(pos + size, pos + reserved, pos + reserved + len);
  u32(len);
  pos += len;
}

/** Reserves the length of a nested message; returns where it goes. */
function openNested(): number {
  return pos++;
}

/** Writes the nested message's length (moving its bytes when the length needs > 1 byte). */
function closeNested(lenAt: number): void {
  const len = pos - lenAt - 1;
  if (len < 0x80) {
    out[lenAt] = len;
    return;
  }
  const size = varintSize(len);
  out.copyWithin(lenAt + size, lenAt + 1, pos);
  pos = lenAt;
  u32(len);
  pos += len;
}

/** Room for a string field: tag, length and up to 3 bytes per UTF-16 unit (+ a nested header). */
function strRoom(v: unknown): number {
  if (typeof v !== 'string') throw BAIL;
  return 3 * v.length + 16;
}

function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_U32;
}

function isU64(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** `ProxyToAgent{request_headers}` for `e` (see the section comment), or undefined. */
export function encodeRequestHeadersFast(
  e: RequestHeadersEvent,
  now = Date.now(),
): Buffer | undefined {
  try {
    return writeRequestHeaders(e, now);
  } catch {
    return undefined; // BAIL, or anything unexpected: the general path decides
  }
}

function writeRequestHeaders(e: RequestHeadersEvent, now: number): Buffer {
  if (!isObject(e)) throw BAIL;
  const m = e.metadata;
  if (!isObject(m)) throw BAIL;
  // check every value and add up the room needed
  let room = 64;
  if (m.correlation_id) room += strRoom(m.correlation_id);
  if (m.request_id) room += strRoom(m.request_id);
  if (m.client_ip) room += strRoom(m.client_ip);
  if (m.client_port && !isU32(m.client_port)) throw BAIL;
  if (m.server_name != null) room += strRoom(m.server_name);
  const protocol = m.protocol;
  if (protocol != null) room += strRoom(protocol);
  if (m.tls_version != null) room += strRoom(m.tls_version);
  if (m.route_id != null) room += strRoom(m.route_id);
  if (m.upstream_id != null) room += strRoom(m.upstream_id);
  const ts = timestampToMs(m.timestamp, now);
  if (ts && !isU64(ts)) throw BAIL;
  if (m.traceparent != null) room += strRoom(m.traceparent);
  if (m.tls_cipher != null) room += strRoom(m.tls_cipher);
  if (e.method) room += strRoom(e.method);
  if (e.uri) room += strRoom(e.uri);
  const httpVersion = protocol?.startsWith('HTTP/') ? protocol : 'HTTP/1.1';
  room += strRoom(httpVersion);
  const h = e.headers;
  let names: string[] | undefined;
  if (h) {
    if (typeof h !== 'object') throw BAIL;
    names = Object.keys(h);
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const values = h[name];
      if (!values) continue;
      if (!Array.isArray(values)) throw BAIL;
      for (let j = 0; j < values.length; j++) {
        const v = values[j];
        room += 3 * name.length + 16;
        if (v) room += strRoom(v);
      }
    }
  }

  const start = beginMessage(room);
  out[pos++] = 18; // ProxyToAgent.request_headers
  const event = openNested();
  out[pos++] = 10; // RequestHeadersEvent.metadata
  const md = openNested();
  if (m.correlation_id) {
    out[pos++] = 10;
    str(m.correlation_id);
  }
  if (m.request_id) {
    out[pos++] = 18;
    str(m.request_id);
  }
  if (m.client_ip) {
    out[pos++] = 26;
    str(m.client_ip);
  }
  if (m.client_port) {
    out[pos++] = 32;
    u32(m.client_port);
  }
  if (m.server_name != null) {
    out[pos++] = 42;
    str(m.server_name);
  }
  if (protocol) {
    out[pos++] = 50;
    str(protocol);
  }
  if (m.tls_version != null) {
    out[pos++] = 58;
    str(m.tls_version);
  }
  if (m.route_id != null) {
    out[pos++] = 66;
    str(m.route_id);
  }
  if (m.upstream_id != null) {
    out[pos++] = 74;
    str(m.upstream_id);
  }
  if (ts) {
    out[pos++] = 80;
    u64(ts);
  }
  if (m.traceparent != null) {
    out[pos++] = 90;
    str(m.traceparent);
  }
  if (m.tls_cipher != null) {
    out[pos++] = 0xc2; // field 1000, length-delimited
    out[pos++] = 0x3e;
    str(m.tls_cipher);
  }
  closeNested(md);
  if (e.method) {
    out[pos++] = 18;
    str(e.method);
  }
  if (e.uri) {
    out[pos++] = 26;
    str(e.uri);
  }
  out[pos++] = 34;
  str(httpVersion);
  if (h && names) {
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const values = h[name];
      if (!values) continue;
      for (let j = 0; j < values.length; j++) {
        const v = values[j];
        out[pos++] = 42;
        const at = openNested();
        if (name) {
          out[pos++] = 10;
          str(name);
        }
        if (v) {
          out[pos++] = 18;
          str(v);
        }
        closeNested(at);
      }
    }
  }
  closeNested(event);
  return endMessage(start);
}

/** JSON texts of the audit `custom` values of the response being written (reused). */
const customTexts: string[] = [];

/** `AgentToProxy{response}` for `r` (see the section comment), or undefined. */
export function encodeAgentResponseFast(
  r: AgentResponse,
  correlationId: string,
  processingTimeMs: number,
): Buffer | undefined {
  try {
    return writeAgentResponse(r, correlationId, processingTimeMs);
  } catch {
    return undefined; // BAIL, or anything unexpected: the general path decides
  } finally {
    customTexts.length = 0;
  }
}

/** Room for header ops (checking them as agentResponseToProto + protobufjs would accept them). */
function headerOpsRoom(ops: unknown): number {
  if (!Array.isArray(ops)) throw BAIL;
  let room = 0;
  for (let i = 0; i < ops.length; i++) {
    const op: unknown = ops[i];
    if (!isObject(op)) throw BAIL;
    let hdr: unknown;
    if ('set' in op) hdr = op.set;
    else if ('add' in op) hdr = op.add;
    else if ('remove' in op) {
      const rm = op.remove;
      if (!isObject(rm)) throw BAIL;
      room += 16;
      if (rm.name != null) room += strRoom(rm.name);
      continue;
    } else throw BAIL;
    if (!isObject(hdr)) throw BAIL;
    room += 16;
    if (hdr.name) room += strRoom(hdr.name);
    if (hdr.value) room += strRoom(hdr.value);
  }
  return room;
}

function writeHeaderOps(ops: readonly HeaderOp[], tag: number): void {
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as HeaderOp;
    out[pos++] = tag;
    const at = openNested();
    if ('set' in op || 'add' in op) {
      const hdr = 'set' in op ? op.set : op.add;
      out[pos++] = 'set' in op ? 10 : 18;
      const h = openNested();
      if (hdr.name) {
        out[pos++] = 10;
        str(hdr.name);
      }
      if (hdr.value) {
        out[pos++] = 18;
        str(hdr.value);
      }
      closeNested(h);
    } else if (op.remove.name != null) {
      out[pos++] = 26;
      str(op.remove.name);
    }
    closeNested(at);
  }
}

function stringListRoom(list: unknown): number {
  if (!Array.isArray(list)) throw BAIL;
  let room = 0;
  for (let i = 0; i < list.length; i++) room += strRoom(list[i]);
  return room;
}

function writeStringList(list: readonly string[], tag: number): void {
  for (let i = 0; i < list.length; i++) {
    out[pos++] = tag;
    str(list[i] as string);
  }
}

/** Room for a map<string, string> (values must be strings, as protobufjs requires). */
function stringMapRoom(m: Record<string, unknown>, keys: readonly string[]): number {
  let room = 0;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    room += strRoom(k) + strRoom(m[k]);
  }
  return room;
}

/** Map entries: key and value always written, as protobufjs writes map fields. */
function writeStringMap(
  m: Record<string, string>,
  keys: readonly string[],
  tag1: number,
  tag2: number,
): void {
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    out[pos++] = tag1;
    if (tag2) out[pos++] = tag2;
    const at = openNested();
    out[pos++] = 10;
    str(k);
    out[pos++] = 18;
    str(m[k] as string);
    closeNested(at);
  }
}

function writeAgentResponse(r: AgentResponse, cid: string, processingTimeMs: number): Buffer {
  if (!isObject(r) || typeof cid !== 'string') throw BAIL;
  let room = 96 + (cid ? strRoom(cid) : 0);
  // decision: allow, block or redirect (a challenge takes the general path)
  const d: unknown = r.decision;
  let block: Record<string, unknown> | undefined;
  let blockHeaders: string[] | undefined;
  let redirect: Record<string, unknown> | undefined;
  if (d !== 'allow') {
    if (!isObject(d)) throw BAIL;
    if ('block' in d) {
      if (!isObject(d.block)) throw BAIL;
      block = d.block;
      if (block.status && !isU32(block.status)) throw BAIL;
      if (block.body != null) room += strRoom(block.body);
      const bh = block.headers;
      if (bh) {
        if (!isObject(bh)) throw BAIL;
        blockHeaders = Object.keys(bh);
        for (let i = 0; i < blockHeaders.length; i++) {
          const k = blockHeaders[i] as string;
          const v = bh[k] ?? '';
          room += 16 + 3 * k.length;
          if (v) room += strRoom(v);
        }
      }
    } else if ('redirect' in d) {
      if (!isObject(d.redirect)) throw BAIL;
      redirect = d.redirect;
      if (redirect.url) room += strRoom(redirect.url);
      if (redirect.status && !isU32(redirect.status)) throw BAIL;
    } else throw BAIL;
  }
  const reqOps = r.request_headers;
  if (reqOps?.length) room += headerOpsRoom(reqOps);
  const resOps = r.response_headers;
  if (resOps?.length) room += headerOpsRoom(resOps);
  const a = r.audit ?? emptyAudit();
  if (!isObject(a)) throw BAIL;
  if (a.tags?.length) room += stringListRoom(a.tags);
  if (a.rule_ids?.length) room += stringListRoom(a.rule_ids);
  if (a.confidence != null && typeof a.confidence !== 'number') throw BAIL;
  if (a.reason_codes?.length) room += stringListRoom(a.reason_codes);
  const custom = a.custom;
  let customKeys: string[] | undefined;
  if (custom) {
    if (!isObject(custom)) throw BAIL;
    customKeys = Object.keys(custom);
    for (let i = 0; i < customKeys.length; i++) {
      const k = customKeys[i] as string;
      if (k === '__proto__') throw BAIL; // the general path drops it; not worth copying
      const text = jsonText(custom[k]);
      customTexts.push(text);
      room += strRoom(k) + strRoom(text);
    }
  }
  const ms = Math.max(0, Math.round(processingTimeMs));
  if (!isU64(ms)) throw BAIL;
  const rm = r.routing_metadata;
  let rmKeys: string[] | undefined;
  if (rm) {
    if (!isObject(rm)) throw BAIL;
    rmKeys = Object.keys(rm);
    room += stringMapRoom(rm, rmKeys);
  }
  const reqMut = r.request_body_mutation;
  if (reqMut) room += mutationRoom(reqMut);
  const resMut = r.response_body_mutation;
  if (resMut) room += mutationRoom(resMut);
  const ws: unknown = r.websocket_decision;
  if (ws && ws !== 'allow' && ws !== 'drop') {
    if (!isObject(ws) || !isObject(ws.close)) throw BAIL;
    const c = ws.close;
    if (c.code && !isU32(c.code)) throw BAIL;
    if (c.reason) room += strRoom(c.reason);
  }

  const start = beginMessage(room);
  out[pos++] = 18; // AgentToProxy.response
  const resp = openNested();
  if (cid) {
    out[pos++] = 10;
    str(cid);
  }
  if (block) {
    out[pos++] = 26;
    const at = openNested();
    if (block.status) {
      out[pos++] = 8;
      u32(block.status as number);
    }
    if (block.body != null) {
      out[pos++] = 18;
      str(block.body as string);
    }
    if (blockHeaders) {
      const bh = block.headers as Record<string, string | null | undefined>;
      for (let i = 0; i < blockHeaders.length; i++) {
        const k = blockHeaders[i] as string;
        const v = bh[k] ?? '';
        out[pos++] = 26;
        const h = openNested();
        if (k) {
          out[pos++] = 10;
          str(k);
        }
        if (v) {
          out[pos++] = 18;
          str(v);
        }
        closeNested(h);
      }
    }
    closeNested(at);
  } else if (redirect) {
    out[pos++] = 34;
    const at = openNested();
    if (redirect.url) {
      out[pos++] = 10;
      str(redirect.url as string);
    }
    if (redirect.status) {
      out[pos++] = 16;
      u32(redirect.status as number);
    }
    closeNested(at);
  } else {
    out[pos++] = 18; // allow {}
    out[pos++] = 0;
  }
  if (reqOps?.length) writeHeaderOps(reqOps, 82);
  if (resOps?.length) writeHeaderOps(resOps, 90);
  out[pos++] = 98; // audit, always present
  const audit = openNested();
  if (a.tags?.length) writeStringList(a.tags, 10);
  if (a.rule_ids?.length) writeStringList(a.rule_ids, 18);
  if (a.confidence != null) {
    out[pos++] = 29;
    pos = out.writeFloatLE(a.confidence, pos);
  }
  if (a.reason_codes?.length) writeStringList(a.reason_codes, 34);
  if (customKeys) {
    for (let i = 0; i < customKeys.length; i++) {
      out[pos++] = 42;
      const at = openNested();
      out[pos++] = 10;
      str(customKeys[i] as string);
      out[pos++] = 18;
      str(customTexts[i] as string);
      closeNested(at);
    }
  }
  closeNested(audit);
  out[pos++] = 104;
  u64(ms);
  if (r.needs_more) {
    out[pos++] = 112;
    out[pos++] = 1;
  }
  if (rm && rmKeys) writeStringMap(rm, rmKeys, 0xc2, 0x3e); // field 1000
  if (reqMut) writeMutation(reqMut, 0xca); // field 1001
  if (resMut) writeMutation(resMut, 0xd2); // field 1002
  if (ws) {
    out[pos++] = 0xda; // field 1003
    out[pos++] = 0x3e;
    const at = openNested();
    if (ws === 'allow' || ws === 'drop') {
      out[pos++] = ws === 'allow' ? 10 : 18;
      out[pos++] = 0;
    } else {
      const c = (ws as { close: { code: number; reason: string } }).close;
      out[pos++] = 26;
      const cl = openNested();
      if (c.code) {
        out[pos++] = 8;
        u32(c.code);
      }
      if (c.reason) {
        out[pos++] = 18;
        str(c.reason);
      }
      closeNested(cl);
    }
    closeNested(at);
  }
  closeNested(resp);
  return endMessage(start);
}

function mutationRoom(m: unknown): number {
  if (!isObject(m)) throw BAIL;
  if (m.chunk_index && !isU32(m.chunk_index)) throw BAIL;
  return 24 + (m.data != null ? strRoom(m.data) : 0);
}

function writeMutation(m: BodyMutation, tag1: number): void {
  out[pos++] = tag1;
  out[pos++] = 0x3e;
  const at = openNested();
  if (m.data != null) {
    out[pos++] = 10;
    str(m.data);
  }
  if (m.chunk_index) {
    out[pos++] = 16;
    u32(m.chunk_index);
  }
  closeNested(at);
}

// -------- reading AgentToProxy{response}

/** A plain `AgentToProxy{response}` read in one pass: the response already converted. */
export class FastAgentResponse {
  /** as the ProxyToAgent/AgentToProxy `message` oneof getter names it */
  readonly message = 'response' as const;
  constructor(
    readonly correlationId: string,
    readonly response: AgentResponse,
  ) {}
}

const EMPTY = Buffer.alloc(0);
/** the message being read and the read position */
let inp: Buffer = EMPTY;
let at = 0;

interface Utf8SliceBuffer {
  utf8Slice?(start: number, end: number): string;
}

function readVarint32(end: number): number {
  let v = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (at >= end) throw BAIL;
    const b = inp[at++] as number;
    if (shift === 28) {
      if (b > 15) throw BAIL; // beyond 32 bits: the general reader decides
      return (v | (b << 28)) >>> 0;
    }
    v |= (b & 127) << shift;
    if (b < 128) return v >>> 0;
  }
  throw BAIL;
}

function skipVarint64(end: number): void {
  for (let i = 0; i < 10; i++) {
    if (at >= end) throw BAIL;
    if ((inp[at++] as number) < 128) return;
  }
  throw BAIL;
}

/** The end of a nested message starting here. */
function readNestedEnd(end: number): number {
  const len = readVarint32(end);
  const e = at + len;
  if (e > end) throw BAIL;
  return e;
}

function readStr(end: number): string {
  const e = readNestedEnd(end);
  const start = at;
  at = e;
  return start === e ? '' : utf8(start, e);
}

/** UTF-8 text of `inp[start, end)`, decoded as protobufjs decodes it (invalid bytes → U+FFFD). */
function utf8(start: number, end: number): string {
  const b = inp as Buffer & Utf8SliceBuffer;
  return b.utf8Slice ? b.utf8Slice(start, end) : b.toString('utf8', start, end);
}

/** Reads AgentToProxy{response} (and nothing else) from `b`, or undefined. */
export function decodeAgentResponseFast(b: Buffer): FastAgentResponse | undefined {
  inp = b;
  at = 0;
  try {
    const end = b.length;
    if (end < 2 || b[0] !== 18) return undefined; // not a lone `response`
    at = 1;
    const e = readNestedEnd(end);
    if (e !== end) return undefined;
    return readAgentResponse(e);
  } catch {
    return undefined; // BAIL, or anything unexpected: the general path decides
  } finally {
    inp = EMPTY;
  }
}

function readHeader(end: number): { name: string; value: string } {
  const e = readNestedEnd(end);
  let name = '';
  let value = '';
  while (at < e) {
    const tag = readVarint32(e);
    if (tag === 10) name = readStr(e);
    else if (tag === 18) value = readStr(e);
    else throw BAIL;
  }
  return { name, value };
}

/** One HeaderOp as agentResponseFromProto converts it (undefined: an op with no operation). */
function readHeaderOp(end: number): HeaderOp | undefined {
  const e = readNestedEnd(end);
  let set: { name: string; value: string } | undefined;
  let add: { name: string; value: string } | undefined;
  let remove: string | undefined;
  while (at < e) {
    const tag = readVarint32(e);
    if (tag === 10) set = readHeader(e);
    else if (tag === 18) add = readHeader(e);
    else if (tag === 26) remove = readStr(e);
    else throw BAIL;
  }
  if (set) return { set };
  if (add) return { add };
  if (remove !== undefined) return { remove: { name: remove } };
  return undefined;
}

/** A map<string, string> entry: [key, value], both defaulting to ''. */
function readMapEntry(end: number): [string, string] {
  const e = readNestedEnd(end);
  let key = '';
  let value = '';
  while (at < e) {
    const tag = readVarint32(e);
    if (tag === 10) key = readStr(e);
    else if (tag === 18) value = readStr(e);
    else throw BAIL;
  }
  if (key === '__proto__') throw BAIL;
  return [key, value];
}

function readAudit(end: number): AuditMetadata {
  const e = readNestedEnd(end);
  const audit: AuditMetadata = {
    tags: [],
    rule_ids: [],
    confidence: null,
    reason_codes: [],
    custom: {},
  };
  while (at < e) {
    const tag = readVarint32(e);
    switch (tag) {
      case 10:
        audit.tags.push(readStr(e));
        break;
      case 18:
        audit.rule_ids.push(readStr(e));
        break;
      case 29:
        if (at + 4 > e) throw BAIL;
        audit.confidence = f32(inp.readFloatLE(at));
        at += 4;
        break;
      case 34:
        audit.reason_codes.push(readStr(e));
        break;
      case 42: {
        const [k, v] = readMapEntry(e);
        audit.custom[k] = parseJsonLoose(v);
        break;
      }
      default:
        throw BAIL;
    }
  }
  return audit;
}

function readBlock(end: number): Decision {
  const e = readNestedEnd(end);
  let status = 0;
  let body: string | null = null;
  let headers: Record<string, string> | null = null;
  while (at < e) {
    const tag = readVarint32(e);
    if (tag === 8) status = readVarint32(e);
    else if (tag === 18) body = readStr(e);
    else if (tag === 26) {
      const h = readHeader(e);
      if (h.name === '__proto__') throw BAIL;
      if (headers === null) headers = {};
      headers[h.name] = h.value;
    } else throw BAIL;
  }
  return { block: { status, body, headers } };
}

function readRedirect(end: number): Decision {
  const e = readNestedEnd(end);
  let url = '';
  let status = 0;
  while (at < e) {
    const tag = readVarint32(e);
    if (tag === 10) url = readStr(e);
    else if (tag === 16) status = readVarint32(e);
    else throw BAIL;
  }
  return { redirect: { url, status } };
}

function readMutation(end: number): BodyMutation {
  const e = readNestedEnd(end);
  let data: string | null = null;
  let chunkIndex = 0;
  while (at < e) {
    const tag = readVarint32(e);
    if (tag === 10) data = readStr(e);
    else if (tag === 16) chunkIndex = readVarint32(e);
    else throw BAIL;
  }
  return { data, chunk_index: chunkIndex };
}

function readWsDecision(end: number): WebSocketDecision | null {
  const e = readNestedEnd(end);
  let allowed = false;
  let dropped = false;
  let close: { code: number; reason: string } | undefined;
  while (at < e) {
    const tag = readVarint32(e);
    if (tag === 10 || tag === 18) {
      if (readNestedEnd(e) !== at) throw BAIL; // an AllowDecision with content
      if (tag === 10) allowed = true;
      else dropped = true;
    } else if (tag === 26) {
      const ce = readNestedEnd(e);
      close = { code: 0, reason: '' };
      while (at < ce) {
        const t = readVarint32(ce);
        if (t === 8) close.code = readVarint32(ce);
        else if (t === 18) close.reason = readStr(ce);
        else throw BAIL;
      }
    } else throw BAIL;
  }
  if (close) return { close };
  if (dropped) return 'drop';
  return allowed ? 'allow' : null;
}

function readAgentResponse(end: number): FastAgentResponse {
  let cid = '';
  let decision: Decision | undefined;
  const requestHeaders: HeaderOp[] = [];
  const responseHeaders: HeaderOp[] = [];
  let audit: AuditMetadata | undefined;
  let needsMore = false;
  let routing: Record<string, string> | undefined;
  let reqMut: BodyMutation | null | undefined;
  let resMut: BodyMutation | null | undefined;
  let ws: WebSocketDecision | null | undefined;
  while (at < end) {
    const tag = readVarint32(end);
    switch (tag) {
      case 10:
        cid = readStr(end);
        break;
      case 18:
        if (decision !== undefined || readNestedEnd(end) !== at) throw BAIL;
        decision = 'allow';
        break;
      case 26:
        if (decision !== undefined) throw BAIL;
        decision = readBlock(end);
        break;
      case 34:
        if (decision !== undefined) throw BAIL;
        decision = readRedirect(end);
        break;
      case 82:
      case 90: {
        const op = readHeaderOp(end);
        if (op) (tag === 82 ? requestHeaders : responseHeaders).push(op);
        break;
      }
      case 98:
        if (audit !== undefined) throw BAIL; // a repeated message field replaces: general path
        audit = readAudit(end);
        break;
      case 104:
        skipVarint64(end);
        break;
      case 112:
        needsMore = readVarint32(end) !== 0;
        break;
      case 8002: {
        const [k, v] = readMapEntry(end);
        if (routing === undefined) routing = {};
        routing[k] = v;
        break;
      }
      case 8010:
        if (reqMut !== undefined) throw BAIL;
        reqMut = readMutation(end);
        break;
      case 8018:
        if (resMut !== undefined) throw BAIL;
        resMut = readMutation(end);
        break;
      case 8026:
        if (ws !== undefined) throw BAIL;
        ws = readWsDecision(end);
        break;
      default:
        throw BAIL; // challenge, unknown fields, unexpected wire types
    }
  }
  return new FastAgentResponse(cid, {
    version: PROTOCOL_VERSION,
    decision: decision ?? 'allow',
    request_headers: requestHeaders,
    response_headers: responseHeaders,
    routing_metadata: routing ?? {},
    audit: audit ?? { tags: [], rule_ids: [], confidence: null, reason_codes: [], custom: {} },
    needs_more: needsMore,
    request_body_mutation: reqMut ?? null,
    response_body_mutation: resMut ?? null,
    websocket_decision: ws ?? null,
  });
}

// -------- reading ProxyToAgent{request_headers}

/** A plain `ProxyToAgent{request_headers}` read in one pass: the event already converted. */
export class FastRequestHeaders {
  /** as the ProxyToAgent `message` oneof getter names it */
  readonly message = 'request_headers' as const;
  constructor(readonly event: RequestHeadersEvent) {}
}

/**
 * Recently seen short ASCII strings of the kinds that repeat from request to request
 * (header names, method, protocol, TLS and route names), so the same string object
 * comes back instead of a new one: no UTF-8 decoding, and a header name that is already
 * a known property key. Direct-mapped by a hash of the bytes; a miss just replaces.
 */
const RECURRING = new Array<string | undefined>(512);
const MAX_RECURRING_LENGTH = 48;

function readRecurring(end: number): string {
  const len = readVarint32(end);
  const start = at;
  const e = start + len;
  if (e > end) throw BAIL;
  if (len === 0) return '';
  if (len > MAX_RECURRING_LENGTH) {
    at = e;
    return utf8(start, e);
  }
  let h = len;
  let high = 0;
  for (let i = start; i < e; i++) {
    const b = inp[i] as number;
    high |= b;
    h = (Math.imul(h, 31) + b) | 0;
  }
  const slot = (h ^ (h >>> 9)) & 511;
  const known = RECURRING[slot];
  if (known !== undefined && known.length === len) {
    let same = true;
    for (let i = 0; i < len; i++) {
      if (known.charCodeAt(i) !== inp[start + i]) {
        same = false;
        break;
      }
    }
    if (same) {
      at = e;
      return known;
    }
  }
  at = e;
  if (high >= 0x80) return utf8(start, e);
  const s = inp.toString('latin1', start, e); // ASCII: the same string, decoded cheaper
  RECURRING[slot] = s;
  return s;
}

/** A uint64 varint as protobufjs reads it (a Long) and `num` turns it into a number. */
function readU64(end: number): number {
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < 4; i++) {
    if (at >= end) throw BAIL;
    const b = inp[at++] as number;
    lo = (lo | ((b & 127) << (i * 7))) >>> 0;
    if (b < 128) return lo;
  }
  if (at >= end) throw BAIL;
  let b = inp[at++] as number;
  lo = (lo | ((b & 127) << 28)) >>> 0;
  hi = ((b & 127) >> 4) >>> 0;
  if (b < 128) return hi * 4294967296 + lo;
  for (let i = 0; i < 5; i++) {
    if (at >= end) throw BAIL;
    b = inp[at++] as number;
    hi = (hi | ((b & 127) << (i * 7 + 3))) >>> 0;
    if (b < 128) return hi * 4294967296 + lo;
  }
  throw BAIL;
}

/** Reads ProxyToAgent{request_headers} (and nothing else) from `b`, or undefined. */
export function decodeRequestHeadersFast(b: Buffer): FastRequestHeaders | undefined {
  inp = b;
  at = 0;
  try {
    const end = b.length;
    if (end < 2 || b[0] !== 18) return undefined; // not a lone `request_headers`
    at = 1;
    const e = readNestedEnd(end);
    if (e !== end) return undefined;
    return new FastRequestHeaders(readRequestHeaders(e));
  } catch {
    return undefined; // BAIL, or anything unexpected: the general path decides
  } finally {
    inp = EMPTY;
  }
}

function readMetadata(end: number): RequestMetadata {
  const e = readNestedEnd(end);
  let cid = '';
  let requestId = '';
  let clientIp = '';
  let clientPort = 0;
  let serverName: string | null = null;
  let protocol = '';
  let tlsVersion: string | null = null;
  let tlsCipher: string | null = null;
  let routeId: string | null = null;
  let upstreamId: string | null = null;
  let timestampMs = 0;
  let traceparent: string | undefined;
  while (at < e) {
    const tag = readVarint32(e);
    switch (tag) {
      case 10:
        cid = readStr(e);
        break;
      case 18:
        requestId = readStr(e);
        break;
      case 26:
        clientIp = readStr(e);
        break;
      case 32:
        clientPort = readVarint32(e);
        break;
      case 42:
        serverName = readRecurring(e);
        break;
      case 50:
        protocol = readRecurring(e);
        break;
      case 58:
        tlsVersion = readRecurring(e);
        break;
      case 66:
        routeId = readRecurring(e);
        break;
      case 74:
        upstreamId = readRecurring(e);
        break;
      case 80:
        timestampMs = readU64(e);
        break;
      case 90:
        traceparent = readStr(e);
        break;
      case 8002:
        tlsCipher = readRecurring(e);
        break;
      default:
        throw BAIL;
    }
  }
  const md: RequestMetadata = {
    correlation_id: cid,
    request_id: requestId,
    client_ip: clientIp,
    client_port: clientPort,
    server_name: serverName,
    protocol,
    tls_version: tlsVersion,
    tls_cipher: tlsCipher,
    route_id: routeId,
    upstream_id: upstreamId,
    timestamp: String(timestampMs),
  };
  if (traceparent !== undefined) md.traceparent = traceparent;
  return md;
}

function readRequestHeaders(end: number): RequestHeadersEvent {
  let metadata: RequestMetadata | undefined;
  let method = '';
  let uri = '';
  const headers: Headers = {};
  while (at < end) {
    const tag = readVarint32(end);
    switch (tag) {
      case 10:
        if (metadata !== undefined) throw BAIL; // a repeated message field replaces: general path
        metadata = readMetadata(end);
        break;
      case 18:
        method = readRecurring(end);
        break;
      case 26:
        uri = readStr(end);
        break;
      case 34:
        at = readNestedEnd(end); // http_version: not part of the picket event
        break;
      case 42: {
        const e = readNestedEnd(end);
        let name = '';
        let value = '';
        while (at < e) {
          const t = readVarint32(e);
          if (t === 10) name = readRecurring(e);
          else if (t === 18) value = readStr(e);
          else throw BAIL;
        }
        addHeader(headers, name, value);
        break;
      }
      default:
        throw BAIL;
    }
  }
  return {
    metadata: metadata ?? metadataFromProto(undefined),
    method,
    uri,
    headers,
  };
}
