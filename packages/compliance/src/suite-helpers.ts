/** The compliance suite's events, assertions and waits (vitest's `expect`). */
import { createHash } from 'node:crypto';
import {
  AGENT_HANDLER_ERROR,
  AgentProtocolError,
  type AgentResponse,
  type AgentTransport,
  HANDLER_ERROR_BODY,
  HANDLER_ERROR_WEBSOCKET_CLOSE,
  PICKET_ERROR_TAG,
  type RequestBodyChunkEvent,
  type RequestHeadersEvent,
} from '@picket/protocol';
import { expect } from 'vitest';

let seq = 0;
/** A fresh correlation id. */
export const cid = (): string => `cid-${process.pid}-${++seq}`;

/** A RequestHeaders event for `uri`. */
export function requestHeaders(
  correlationId: string,
  uri = '/',
  method = 'GET',
): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: correlationId,
      request_id: `rid-${correlationId}`,
      client_ip: '127.0.0.1',
      client_port: 40000,
      server_name: 'example.com',
      protocol: 'HTTP/1.1',
      route_id: 'default',
      timestamp: '2026-01-01T00:00:00Z',
    },
    method,
    uri,
    headers: { host: ['example.com'], accept: ['*/*', 'text/html'] },
  };
}

export function chunk(
  correlationId: string,
  data: Uint8Array,
  index: number,
  last: boolean,
  sent = 0,
): RequestBodyChunkEvent {
  return {
    correlation_id: correlationId,
    data,
    is_last: last,
    total_size: null,
    chunk_index: index,
    bytes_received: sent + data.byteLength,
  };
}

export async function rejection(p: Promise<unknown>): Promise<AgentProtocolError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(AgentProtocolError);
    return e as AgentProtocolError;
  }
  throw new Error('expected the call to be rejected');
}

export async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A body longer than every wire carries (UDS 16 MiB, v1 10 MiB, gRPC 4 MiB). */
export const HUGE_ANSWER_BYTES = 17 * 1024 * 1024;

/**
 * The one handler-error answer every picket agent server gives: block 500 with a fixed
 * body, tag `picket_error`, reason code `AGENT_HANDLER_ERROR` (a WebSocket frame also
 * gets close 1011, where the wire carries WebSocket decisions).
 */
export function expectHandlerErrorAnswer(r: AgentResponse, websocket = false): void {
  expect(r.decision).toEqual({
    block: { status: 500, body: HANDLER_ERROR_BODY, headers: null },
  });
  expect(r.audit.tags).toEqual([PICKET_ERROR_TAG]);
  expect(r.audit.reason_codes).toEqual([AGENT_HANDLER_ERROR]);
  expect(r.audit.rule_ids).toEqual([]);
  expect(r.request_headers).toEqual([]);
  expect(r.response_headers).toEqual([]);
  if (websocket) expect(r.websocket_decision).toEqual({ close: HANDLER_ERROR_WEBSOCKET_CLOSE });
}

/** Resolves with the next `event` the transport emits. */
export function next<T>(
  t: AgentTransport,
  event: 'health' | 'metrics' | 'configUpdate',
): Promise<T> {
  return new Promise((resolve) => t.once(event, (v: unknown) => resolve(v as T)));
}
