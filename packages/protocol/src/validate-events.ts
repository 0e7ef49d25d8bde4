/** Validators (see validate.ts): The proxy-to-agent events and correlation-id lookups. */
import { invalidMessage } from './errors.js';
import type {
  AgentEvent,
  ConfigureEvent,
  EventMap,
  EventType,
  GuardrailInspectEvent,
  RequestBodyChunkEvent,
  RequestCompleteEvent,
  RequestHeadersEvent,
  RequestMetadata,
  ResponseBodyChunkEvent,
  ResponseHeadersEvent,
  WebSocketFrameEvent,
} from './types.js';
import { asHeaders, type Obj, Struct, U16, U32 } from './validate-primitives.js';

// ---------------------------------------------------------------- events

const METADATA_FIELDS = [
  'correlation_id',
  'request_id',
  'client_ip',
  'client_port',
  'server_name',
  'protocol',
  'tls_version',
  'tls_cipher',
  'route_id',
  'upstream_id',
  'timestamp',
  'traceparent',
];

export function parseRequestMetadata(v: unknown, path = 'metadata'): RequestMetadata {
  const s = new Struct(v, path, METADATA_FIELDS);
  const m: RequestMetadata = {
    correlation_id: s.str('correlation_id'),
    request_id: s.str('request_id'),
    client_ip: s.str('client_ip'),
    client_port: s.uint('client_port', U16),
    server_name: s.optStr('server_name'),
    protocol: s.str('protocol'),
    tls_version: s.optStr('tls_version'),
    tls_cipher: s.optStr('tls_cipher'),
    route_id: s.optStr('route_id'),
    upstream_id: s.optStr('upstream_id'),
    timestamp: s.str('timestamp'),
  };
  const tp = s.optStr('traceparent');
  if (tp !== null) m.traceparent = tp;
  return m;
}

export function parseRequestHeadersEvent(v: unknown, path = 'RequestHeaders'): RequestHeadersEvent {
  // msgpack events from a Rust proxy carry an extra top-level correlation_id: ignored.
  const s = new Struct(v, path, ['metadata', 'method', 'uri', 'headers']);
  return {
    metadata: parseRequestMetadata(s.req('metadata'), s.at('metadata')),
    method: s.str('method'),
    uri: s.str('uri'),
    headers: asHeaders(s.req('headers'), s.at('headers')),
  };
}

const REQUEST_CHUNK_FIELDS = [
  'correlation_id',
  'data',
  'is_last',
  'total_size',
  'chunk_index',
  'bytes_received',
];
export function parseRequestBodyChunkEvent(
  v: unknown,
  path = 'RequestBodyChunk',
): RequestBodyChunkEvent {
  const s = new Struct(v, path, REQUEST_CHUNK_FIELDS);
  return {
    correlation_id: s.str('correlation_id'),
    data: s.bytes('data'),
    is_last: s.bool('is_last'),
    total_size: s.optUint('total_size'),
    chunk_index: s.uintDefault('chunk_index', 0, U32),
    bytes_received: s.uintDefault('bytes_received', 0),
  };
}

export function parseResponseHeadersEvent(
  v: unknown,
  path = 'ResponseHeaders',
): ResponseHeadersEvent {
  const s = new Struct(v, path, ['correlation_id', 'status', 'headers']);
  return {
    correlation_id: s.str('correlation_id'),
    status: s.uint('status', U16),
    headers: asHeaders(s.req('headers'), s.at('headers')),
  };
}

const RESPONSE_CHUNK_FIELDS = [
  'correlation_id',
  'data',
  'is_last',
  'total_size',
  'chunk_index',
  'bytes_sent',
];
export function parseResponseBodyChunkEvent(
  v: unknown,
  path = 'ResponseBodyChunk',
): ResponseBodyChunkEvent {
  const s = new Struct(v, path, RESPONSE_CHUNK_FIELDS);
  return {
    correlation_id: s.str('correlation_id'),
    data: s.bytes('data'),
    is_last: s.bool('is_last'),
    total_size: s.optUint('total_size'),
    chunk_index: s.uintDefault('chunk_index', 0, U32),
    bytes_sent: s.uintDefault('bytes_sent', 0),
  };
}

const COMPLETE_FIELDS = [
  'correlation_id',
  'status',
  'duration_ms',
  'request_body_size',
  'response_body_size',
  'upstream_attempts',
  'error',
];
export function parseRequestCompleteEvent(
  v: unknown,
  path = 'RequestComplete',
): RequestCompleteEvent {
  const s = new Struct(v, path, COMPLETE_FIELDS);
  return {
    correlation_id: s.str('correlation_id'),
    status: s.uint('status', U16),
    duration_ms: s.uint('duration_ms'),
    request_body_size: s.uint('request_body_size'),
    response_body_size: s.uint('response_body_size'),
    upstream_attempts: s.uint('upstream_attempts', U32),
    error: s.optStr('error'),
  };
}

const WS_FIELDS = [
  'correlation_id',
  'opcode',
  'data',
  'client_to_server',
  'frame_index',
  'fin',
  'route_id',
  'client_ip',
];
export function parseWebSocketFrameEvent(v: unknown, path = 'WebSocketFrame'): WebSocketFrameEvent {
  const s = new Struct(v, path, WS_FIELDS);
  return {
    correlation_id: s.str('correlation_id'),
    opcode: s.str('opcode'),
    data: s.bytes('data'),
    client_to_server: s.bool('client_to_server'),
    frame_index: s.uint('frame_index'),
    fin: s.bool('fin'),
    route_id: s.optStr('route_id'),
    client_ip: s.str('client_ip'),
  };
}

const GUARDRAIL_FIELDS = [
  'correlation_id',
  'inspection_type',
  'content',
  'model',
  'categories',
  'route_id',
  'metadata',
];
export function parseGuardrailInspectEvent(
  v: unknown,
  path = 'GuardrailInspect',
): GuardrailInspectEvent {
  const s = new Struct(v, path, GUARDRAIL_FIELDS);
  const type = s.str('inspection_type');
  if (type !== 'prompt_injection' && type !== 'pii_detection') {
    throw invalidMessage(
      s.at('inspection_type'),
      `unknown value "${type}" (prompt_injection, pii_detection)`,
    );
  }
  const e: GuardrailInspectEvent = {
    correlation_id: s.str('correlation_id'),
    inspection_type: type,
    content: s.str('content'),
    categories: s.strList('categories'),
    metadata: s.strMap('metadata'),
  };
  const model = s.optStr('model');
  if (model !== null) e.model = model;
  const route = s.optStr('route_id');
  if (route !== null) e.route_id = route;
  return e;
}

export function parseConfigureEvent(v: unknown, path = 'Configure'): ConfigureEvent {
  const s = new Struct(v, path, ['correlation_id', 'config', 'config_version']);
  return {
    correlation_id: s.strDefault('correlation_id', ''),
    config: s.any('config'),
    config_version: s.optStr('config_version'),
  };
}

const EVENT_PARSERS: { [K in EventType]: (v: unknown) => EventMap[K] } = {
  configure: parseConfigureEvent,
  request_headers: parseRequestHeadersEvent,
  request_body_chunk: parseRequestBodyChunkEvent,
  response_headers: parseResponseHeadersEvent,
  response_body_chunk: parseResponseBodyChunkEvent,
  request_complete: parseRequestCompleteEvent,
  web_socket_frame: parseWebSocketFrameEvent,
  guardrail_inspect: parseGuardrailInspectEvent,
};

/** Parses the event of the given type. */
export function parseEvent<K extends EventType>(type: K, v: unknown): EventMap[K] {
  return EVENT_PARSERS[type](v) as EventMap[K];
}

/** The correlation id of any event (RequestHeaders keeps it in its metadata). */
export function eventCorrelationId(e: AgentEvent): string {
  return 'metadata' in e &&
    typeof e.metadata === 'object' &&
    e.metadata !== null &&
    'correlation_id' in e.metadata
    ? (e as RequestHeadersEvent).metadata.correlation_id
    : (e as { correlation_id: string }).correlation_id;
}

/**
 * Best-effort correlation id of a payload that failed validation, so the
 * failure can still be answered: top-level `correlation_id`, else
 * `metadata.correlation_id` (what a Rust agent does too).
 */
export function salvageCorrelationId(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Obj;
  if (typeof o.correlation_id === 'string') return o.correlation_id;
  const m = o.metadata;
  if (
    m !== null &&
    typeof m === 'object' &&
    !Array.isArray(m) &&
    typeof (m as Obj).correlation_id === 'string'
  ) {
    return (m as Obj).correlation_id as string;
  }
  if (Array.isArray(m) && typeof m[0] === 'string') return m[0];
  return undefined;
}
