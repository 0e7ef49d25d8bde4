import { goldenPayload, goldenVectors } from '@picket/compliance';
import { AgentProtocolError, type EventMap, type EventType } from '@picket/protocol';
import { expect } from 'vitest';

/** Every UDS / reverse / v1 golden vector of the spec (Part B), from the shared test kit. */
export const vectors = goldenVectors();

/** The exact payload bytes of golden vector `id` (frame header removed). */
export function payload(id: string): Uint8Array {
  return Uint8Array.from(goldenPayload(id));
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function text(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

export function bytesOf(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s, 'utf8'));
}

/** Asserts `fn` throws an AgentProtocolError with `code` (and a message matching `message`). */
export function expectProtocolError(
  fn: () => unknown,
  code: string,
  message?: RegExp,
): AgentProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(AgentProtocolError);
  const e = caught as AgentProtocolError;
  expect(e.code).toBe(code);
  if (message) expect(e.message).toMatch(message);
  return e;
}

/** UTF-8 byte order, as a Rust BTreeMap<String, _> sorts. */
function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Reference for "what serde_json writes for a Value": keys in UTF-8 byte order
 * at every level (iterated from a sorted array: JS objects would put
 * integer-like keys first).
 */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v))
    return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const parts = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort(byUtf8)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * Reference model of Rust's JSON event path, written independently of the
 * codec: struct → Value (Option::None ⇒ null, skipped fields dropped, bytes ⇒
 * base64) → insert correlation_id → sorted text.
 */
export function referenceEventJson<K extends EventType>(
  type: K,
  event: EventMap[K],
  cid: string,
): string {
  const e = structuredClone(event) as unknown as Record<string, unknown>;
  const nullIfAbsent = (o: Record<string, unknown>, keys: string[]) => {
    for (const k of keys) if (o[k] === undefined) o[k] = null;
  };
  if ('data' in e) e.data = Buffer.from(e.data as Uint8Array).toString('base64');
  switch (type) {
    case 'request_headers': {
      const m = e.metadata as Record<string, unknown>;
      nullIfAbsent(m, ['server_name', 'tls_version', 'tls_cipher', 'route_id', 'upstream_id']);
      if (m.traceparent === undefined || m.traceparent === null) delete m.traceparent;
      break;
    }
    case 'request_body_chunk':
    case 'response_body_chunk':
      nullIfAbsent(e, ['total_size']);
      break;
    case 'request_complete':
      nullIfAbsent(e, ['error']);
      break;
    case 'web_socket_frame':
      nullIfAbsent(e, ['route_id']);
      break;
    case 'guardrail_inspect':
      if (e.model === undefined || e.model === null) delete e.model;
      if (e.route_id === undefined || e.route_id === null) delete e.route_id;
      break;
    case 'configure':
      nullIfAbsent(e, ['config', 'config_version']);
      break;
  }
  e.correlation_id = cid;
  return canonicalJson(e);
}
