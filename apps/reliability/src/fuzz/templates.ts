/**
 * Valid protocol messages with random content: the seeds the mutators start from (besides
 * the golden vectors). Each builder returns the wire-shaped object of @picket/protocol.
 */
import type {
  AgentCapabilities,
  AgentResponse,
  EventMap,
  EventType,
  Headers,
  RequestMetadata,
} from '@picket/protocol';
import { allow, block, createCapabilities, redirect, setHeader } from '@picket/protocol';
import type { Rng } from '../lib/prng.js';

/**
 * The spec's golden vectors (Part B), from the shared test kit: `golden(id)` is frame `id`
 * (V1, V3 …) as bytes (v2: with its 5-byte header; v1: with its 4-byte one).
 */
export { goldenFrame as golden } from '@picket/compliance/testkit';

/** URIs that make the fuzz agent misbehave on purpose (see fuzz-agent.ts). */
export const TRIGGER_URIS = ['/fuzz/throw', '/fuzz/garbage', '/fuzz/slow', '/fuzz/reject'];

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE'];

function word(rng: Rng, max = 12): string {
  const n = rng.int(1, max);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(rng.int(0x61, 0x7a));
  return s;
}

function headers(rng: Rng): Headers {
  const h: Headers = { host: ['example.com'] };
  const n = rng.size(12);
  for (let i = 0; i < n; i++) {
    h[`x-${word(rng, 8)}`] = Array.from({ length: rng.int(1, 3) }, () => word(rng, 20));
  }
  return h;
}

/** Valid request metadata with correlation id `cid`. */
export function metadata(rng: Rng, cid: string): RequestMetadata {
  return {
    correlation_id: cid,
    request_id: cid,
    client_ip: `10.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`,
    client_port: rng.int(1, 65535),
    server_name: rng.chance(0.5) ? 'example.com' : null,
    protocol: rng.pick(['HTTP/1.1', 'HTTP/2', 'HTTP/1.0']),
    tls_version: null,
    tls_cipher: null,
    route_id: rng.chance(0.5) ? 'default' : null,
    upstream_id: null,
    timestamp: new Date(1767225600000 + rng.int(0, 1e9)).toISOString(),
  };
}

function body(rng: Rng): Uint8Array {
  return rng.bytes(rng.size(512));
}

/** A valid event of `type` with correlation id `cid`. */
export function validEvent<K extends EventType>(rng: Rng, type: K, cid: string): EventMap[K] {
  const events: { [T in EventType]: () => EventMap[T] } = {
    request_headers: () => ({
      metadata: metadata(rng, cid),
      method: rng.pick(METHODS),
      uri: rng.chance(0.2) ? rng.pick(TRIGGER_URIS) : `/${word(rng)}/${word(rng)}`,
      headers: headers(rng),
    }),
    request_body_chunk: () => {
      const data = body(rng);
      return {
        correlation_id: cid,
        data,
        is_last: rng.chance(0.5),
        total_size: rng.chance(0.5) ? data.length : null,
        chunk_index: rng.int(0, 10),
        bytes_received: data.length,
      };
    },
    response_headers: () => ({
      correlation_id: cid,
      status: rng.pick([200, 204, 301, 404, 500]),
      headers: headers(rng),
    }),
    response_body_chunk: () => {
      const data = body(rng);
      return {
        correlation_id: cid,
        data,
        is_last: rng.chance(0.5),
        total_size: null,
        chunk_index: rng.int(0, 10),
        bytes_sent: data.length,
      };
    },
    request_complete: () => ({
      correlation_id: cid,
      status: rng.pick([200, 403, 500]),
      duration_ms: rng.int(0, 5000),
      request_body_size: rng.int(0, 1e6),
      response_body_size: rng.int(0, 1e6),
      upstream_attempts: rng.int(0, 3),
      error: null,
    }),
    web_socket_frame: () => ({
      correlation_id: cid,
      opcode: rng.pick(['text', 'binary', 'ping', 'close']),
      data: body(rng),
      client_to_server: rng.chance(0.5),
      frame_index: rng.int(0, 100),
      fin: true,
      route_id: null,
      client_ip: '127.0.0.1',
    }),
    guardrail_inspect: () => ({
      correlation_id: cid,
      inspection_type: rng.pick(['prompt_injection', 'pii_detection'] as const),
      content: word(rng, 200),
      categories: [],
      metadata: {},
    }),
    configure: () => ({
      correlation_id: cid,
      config: { rules: [word(rng)], level: rng.int(0, 9) },
      config_version: null,
    }),
  };
  return events[type]() as EventMap[K];
}

/** Every event type. */
export const EVENT_TYPES: readonly EventType[] = [
  'request_headers',
  'request_body_chunk',
  'response_headers',
  'response_body_chunk',
  'request_complete',
  'web_socket_frame',
  'guardrail_inspect',
  'configure',
];

/** A valid agent response (random decision) routed to `cid` through `audit.custom`. */
export function validResponse(rng: Rng, cid: string): AgentResponse {
  const custom = { correlation_id: cid };
  switch (rng.int(0, 3)) {
    case 0:
      return allow({ requestHeaders: [setHeader('x-fuzz', word(rng))], custom });
    case 1:
      return block(rng.pick([401, 403, 429, 500]), { body: word(rng), tags: ['fuzz'], custom });
    case 2:
      return redirect(`https://example.com/${word(rng)}`, 302, { custom });
    default:
      return allow({ custom });
  }
}

/** Capabilities of a fuzz peer. */
export function capabilities(agentId: string): AgentCapabilities {
  return createCapabilities({ agentId, name: 'Fuzz Agent', version: '1.0.0' });
}
