/** The events `picket conform` sends: one request's lifecycle, built per correlation id. */
import type {
  ConfigureEvent,
  GuardrailInspectEvent,
  RequestBodyChunkEvent,
  RequestCompleteEvent,
  RequestHeadersEvent,
  ResponseBodyChunkEvent,
  ResponseHeadersEvent,
  WebSocketFrameEvent,
} from '@picket/protocol';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

export function requestHeaders(cid: string, uri = '/conform', method = 'GET'): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: cid,
      request_id: cid,
      client_ip: '127.0.0.1',
      client_port: 40000,
      server_name: 'conform.local',
      protocol: 'HTTP/1.1',
      timestamp: new Date().toISOString(),
    },
    method,
    uri,
    headers: { host: ['conform.local'], 'user-agent': ['picket-conform'] },
  };
}

export function requestBodyChunk(cid: string, isLast = true): RequestBodyChunkEvent {
  const data = text('picket conform body');
  return {
    correlation_id: cid,
    data,
    is_last: isLast,
    total_size: isLast ? data.byteLength : null,
    chunk_index: 0,
    bytes_received: data.byteLength,
  };
}

export function responseHeaders(cid: string): ResponseHeadersEvent {
  return { correlation_id: cid, status: 200, headers: { 'content-type': ['text/plain'] } };
}

export function responseBodyChunk(cid: string): ResponseBodyChunkEvent {
  const data = text('picket conform response');
  return {
    correlation_id: cid,
    data,
    is_last: true,
    total_size: data.byteLength,
    chunk_index: 0,
    bytes_sent: data.byteLength,
  };
}

export function requestComplete(cid: string): RequestCompleteEvent {
  return {
    correlation_id: cid,
    status: 200,
    duration_ms: 1,
    request_body_size: 0,
    response_body_size: 0,
    upstream_attempts: 1,
    error: null,
  };
}

export function webSocketFrame(cid: string): WebSocketFrameEvent {
  return {
    correlation_id: cid,
    opcode: 'text',
    data: text('hello'),
    client_to_server: true,
    frame_index: 0,
    fin: true,
    client_ip: '127.0.0.1',
  };
}

export function guardrailInspect(cid: string): GuardrailInspectEvent {
  return {
    correlation_id: cid,
    inspection_type: 'prompt_injection',
    content: 'What is the capital of France?',
    categories: [],
    metadata: {},
  };
}

export function configure(cid: string): ConfigureEvent {
  return { correlation_id: cid, config: {}, config_version: null };
}

/** Correlation ids of one run: fixed width, so no id is a substring of another. */
export function idSource(): () => string {
  const run = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  let n = 0;
  return () => `conform-${run}-${String(++n).padStart(6, '0')}`;
}
