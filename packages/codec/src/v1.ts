/**
 * Legacy v1 payloads (`[u32 BE length][JSON]` frames, one request per round
 * trip). The request is `{"version","event_type","payload"}` in that order, its
 * payload built through `serde_json::Value` (keys sorted, no injected
 * `correlation_id`); the response is the same AgentResponse JSON as v2.
 * Byte-identical with golden vectors V10a / V10b.
 */
import {
  type AgentResponse,
  type EventMap,
  type EventType,
  invalidMessage,
  parseEvent,
} from '@picket/protocol';
import { obj, str, U32, uint } from './check.js';
import { parseJson } from './codec.js';
import { cannotEncode, decodeMessage, guardEncode } from './errors.js';
import { sortedJson, utf8Encode } from './json.js';
import { agentResponseJson, eventJson } from './json-messages.js';
import { createMessageCodec } from './message-codec.js';

/** v1's `configure` payload (v1 only): the agent's id and its configuration. */
export interface V1ConfigurePayload {
  agent_id: string;
  config: unknown;
}

/** v1 payload per event type: the v2 event structs, except `configure`. */
export interface V1PayloadMap extends Omit<EventMap, 'configure'> {
  configure: V1ConfigurePayload;
}

/** A v1 AgentRequest; `event_type` tells which payload it carries. */
export type V1Request = {
  [K in EventType]: { version: number; event_type: K; payload: V1PayloadMap[K] };
}[EventType];

const EVENT_TYPES: readonly string[] = [
  'configure',
  'request_headers',
  'request_body_chunk',
  'response_headers',
  'response_body_chunk',
  'request_complete',
  'web_socket_frame',
  'guardrail_inspect',
];

function v1Payload(req: V1Request): string {
  if (req.event_type === 'configure') {
    const p = obj(req.payload, 'V1Request.payload');
    return sortedJson({
      agent_id: str(p.agent_id, 'V1Request.payload.agent_id'),
      config: p.config ?? null,
    }) as string;
  }
  return eventJson(req.event_type, req.payload as EventMap[typeof req.event_type], undefined);
}

/** Encodes a v1 request exactly as a v1 proxy wrote it. */
export function encodeV1Request(req: V1Request): Uint8Array {
  return guardEncode('json', 'V1Request', () => {
    const r = obj(req, 'V1Request');
    const type = str(r.event_type, 'V1Request.event_type');
    if (!EVENT_TYPES.includes(type))
      throw cannotEncode('V1Request.event_type', `unknown event type "${type}"`);
    return utf8Encode(
      `{"version":${uint(r.version, 'V1Request.version', U32)},"event_type":"${type}","payload":${v1Payload(req)}}`,
    );
  });
}

function parseV1Request(v: unknown): V1Request {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) {
    throw invalidMessage('V1Request', 'expected an object');
  }
  const o = v as Record<string, unknown>;
  const version = o.version;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0 || version > U32) {
    throw invalidMessage('V1Request.version', 'expected an integer from 0 to 4294967295');
  }
  const type = o.event_type;
  if (typeof type !== 'string' || !EVENT_TYPES.includes(type)) {
    throw invalidMessage(
      'V1Request.event_type',
      `unknown event type ${JSON.stringify(type) ?? 'undefined'}`,
    );
  }
  if (!Object.hasOwn(o, 'payload'))
    throw invalidMessage('V1Request.payload', 'missing required field');
  if (type === 'configure') {
    const p = o.payload;
    if (p === null || typeof p !== 'object' || Array.isArray(p)) {
      throw invalidMessage('V1Request.payload', 'expected an object');
    }
    const agentId = (p as Record<string, unknown>).agent_id;
    if (typeof agentId !== 'string')
      throw invalidMessage('V1Request.payload.agent_id', 'expected a string');
    const config = (p as Record<string, unknown>).config;
    return {
      version,
      event_type: 'configure',
      payload: { agent_id: agentId, config: config ?? null },
    };
  }
  const event = parseEvent(type as Exclude<EventType, 'configure'>, o.payload);
  return { version, event_type: type, payload: event } as V1Request;
}

/** Decodes and validates a v1 request payload (the version number is not checked here). */
export function decodeV1Request(payload: Uint8Array): V1Request {
  return decodeMessage('JSON', 'V1Request', payload, parseJson, parseV1Request);
}

/** A v1 AgentResponse: the v2 JSON layout (v1 agents answer `version: 1`). */
export function encodeV1Response(response: AgentResponse): Uint8Array {
  return guardEncode('json', 'AgentResponse', () => utf8Encode(agentResponseJson(response)));
}

/** Decodes and validates a v1 AgentResponse (`version` is not checked here). */
export function decodeV1Response(payload: Uint8Array): AgentResponse {
  return createMessageCodec('json').decodeResponse(payload);
}
