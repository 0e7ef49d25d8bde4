/**
 * Event builders with the defaults a proxy would fill in, so a test names only
 * what it is about: `requestHeadersEvent('req-1', { uri: '/admin' })`.
 */
import type {
  ConfigureEvent,
  GuardrailInspectEvent,
  GuardrailInspectionType,
  Headers,
  RequestBodyChunkEvent,
  RequestCompleteEvent,
  RequestHeadersEvent,
  RequestMetadata,
  ResponseBodyChunkEvent,
  ResponseHeadersEvent,
  WebSocketFrameEvent,
} from '@picket/protocol';

/** Headers as a test writes them: one value or several per name. */
export type HeadersInit = Readonly<Record<string, string | readonly string[]>>;

/** Body bytes as a test writes them: text (sent as UTF-8) or bytes. */
export type BodyInit = string | Uint8Array;

/** What `requestHeaders` takes; everything defaults (`GET /`, no headers, client 127.0.0.1). */
export interface RequestHeadersInit {
  method?: string;
  uri?: string;
  headers?: HeadersInit;
  /** overrides of the request metadata (client_ip, route_id, traceparent …); the correlation id is the request's */
  metadata?: Partial<Omit<RequestMetadata, 'correlation_id'>>;
}

/** What `responseHeaders` takes; default status 200, no headers. */
export interface ResponseHeadersInit {
  status?: number;
  headers?: HeadersInit;
}

/** What `complete` takes; unset fields come from what the request sent (status, body sizes). */
export type RequestCompleteInit = Partial<Omit<RequestCompleteEvent, 'correlation_id'>>;

/** What `webSocketFrame` takes; default a final text frame from the client. */
export interface WebSocketFrameInit
  extends Partial<Omit<WebSocketFrameEvent, 'correlation_id' | 'data'>> {
  data?: BodyInit;
}

/** What `guardrailInspect` takes; default a `prompt_injection` inspection. */
export interface GuardrailInspectInit
  extends Partial<Omit<GuardrailInspectEvent, 'correlation_id' | 'content'>> {
  content: string;
  inspection_type?: GuardrailInspectionType;
}

/** `init` with every value a list, as the protocol carries headers. */
export function toHeaders(init: HeadersInit = {}): Headers {
  const out: Headers = {};
  for (const [name, value] of Object.entries(init)) {
    out[name] = typeof value === 'string' ? [value] : [...value];
  }
  return out;
}

/** `data` as bytes (text as UTF-8). */
export function toBytes(data: BodyInit): Uint8Array {
  return typeof data === 'string' ? new TextEncoder().encode(data) : data;
}

export function requestHeadersEvent(
  correlationId: string,
  init: RequestHeadersInit = {},
): RequestHeadersEvent {
  return {
    metadata: {
      request_id: correlationId,
      client_ip: '127.0.0.1',
      client_port: 40000,
      protocol: 'HTTP/1.1',
      timestamp: new Date().toISOString(),
      ...init.metadata,
      correlation_id: correlationId,
    },
    method: init.method ?? 'GET',
    uri: init.uri ?? '/',
    headers: toHeaders(init.headers),
  };
}

/** A request body chunk; `chunkIndex` / `bytesReceived` count what was sent before it. */
export function requestBodyChunkEvent(
  correlationId: string,
  data: BodyInit,
  o: { isLast: boolean; chunkIndex: number; bytesBefore: number; totalSize?: number | null },
): RequestBodyChunkEvent {
  const bytes = toBytes(data);
  return {
    correlation_id: correlationId,
    data: bytes,
    is_last: o.isLast,
    total_size: o.totalSize ?? null,
    chunk_index: o.chunkIndex,
    bytes_received: o.bytesBefore + bytes.length,
  };
}

export function responseHeadersEvent(
  correlationId: string,
  init: ResponseHeadersInit = {},
): ResponseHeadersEvent {
  return {
    correlation_id: correlationId,
    status: init.status ?? 200,
    headers: toHeaders(init.headers),
  };
}

/** A response body chunk; `chunkIndex` / `bytesSent` count what was sent before it. */
export function responseBodyChunkEvent(
  correlationId: string,
  data: BodyInit,
  o: { isLast: boolean; chunkIndex: number; bytesBefore: number; totalSize?: number | null },
): ResponseBodyChunkEvent {
  const bytes = toBytes(data);
  return {
    correlation_id: correlationId,
    data: bytes,
    is_last: o.isLast,
    total_size: o.totalSize ?? null,
    chunk_index: o.chunkIndex,
    bytes_sent: o.bytesBefore + bytes.length,
  };
}

export function requestCompleteEvent(
  correlationId: string,
  init: RequestCompleteInit = {},
): RequestCompleteEvent {
  return {
    status: 200,
    duration_ms: 1,
    request_body_size: 0,
    response_body_size: 0,
    upstream_attempts: 1,
    error: null,
    ...init,
    correlation_id: correlationId,
  };
}

export function webSocketFrameEvent(
  correlationId: string,
  frameIndex: number,
  init: WebSocketFrameInit = {},
): WebSocketFrameEvent {
  const { data, ...rest } = init;
  return {
    opcode: 'text',
    client_to_server: true,
    frame_index: frameIndex,
    fin: true,
    client_ip: '127.0.0.1',
    ...rest,
    data: toBytes(data ?? ''),
    correlation_id: correlationId,
  };
}

export function guardrailInspectEvent(
  correlationId: string,
  init: GuardrailInspectInit,
): GuardrailInspectEvent {
  return {
    inspection_type: 'prompt_injection',
    categories: [],
    metadata: {},
    ...init,
    correlation_id: correlationId,
  };
}

export function configureEvent(
  correlationId: string,
  config: unknown,
  configVersion?: string,
): ConfigureEvent {
  return { correlation_id: correlationId, config, config_version: configVersion ?? null };
}
