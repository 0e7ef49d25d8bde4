/** Converters (see convert.ts): events, picket → proto (proxy side) and proto → picket (agent side). */
import {
  AgentProtocolError,
  type ConfigureEvent,
  ErrorCode,
  type EventMap,
  type EventType,
  type GuardrailInspectEvent,
  type HandshakeRequest,
  type RequestBodyChunkEvent,
  type RequestCompleteEvent,
  type RequestHeadersEvent,
  type RequestMetadata,
  type ResponseBodyChunkEvent,
  type ResponseHeadersEvent,
  type WebSocketFrameEvent,
} from '@picket/protocol';
import {
  bytes,
  headersFromProto,
  headersToProto,
  isRecord,
  jsonText,
  parseJsonLoose,
  timestampToMs,
} from './convert-helpers.js';
import type { zentinel } from './generated/agent_v2.js';
import {
  type IBodyChunkEvent,
  type IConfigureEvent,
  type IGuardrailInspectEvent,
  type IHandshakeRequest,
  type IProxyToAgent,
  type IRequestCompleteEvent,
  type IRequestHeadersEvent,
  type IRequestMetadata,
  type IResponseHeadersEvent,
  type IWebSocketFrameEvent,
  num,
  optNum,
} from './proto.js';

type PbRequestHeaders = zentinel.agent.v2.IRequestHeadersEvent;
type PbBodyChunk = zentinel.agent.v2.IBodyChunkEvent;
type PbResponseHeaders = zentinel.agent.v2.IResponseHeadersEvent;
type PbRequestComplete = zentinel.agent.v2.IRequestCompleteEvent;
type PbWebSocketFrame = zentinel.agent.v2.IWebSocketFrameEvent;
type PbGuardrail = zentinel.agent.v2.IGuardrailInspectEvent;
type PbConfigure = zentinel.agent.v2.IConfigureEvent;
type PbHandshakeRequest = zentinel.agent.v2.IHandshakeRequest;

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
