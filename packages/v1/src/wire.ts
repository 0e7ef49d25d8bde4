/**
 * The one place that turns v1 messages into frames and back (client and
 * server share it): JSON from @picket/codec (byte-exact with vectors
 * V10a/V10b), frames from @picket/framing, their errors mapped to
 * AgentProtocolError codes.
 */
import {
  decodeV1Request as decodeRequestJson,
  decodeV1Response,
  encodeV1Request,
  encodeV1Response,
} from '@picket/codec';
import { encodeV1Frame, isFramingError } from '@picket/framing';
import {
  AgentProtocolError,
  type AgentResponse,
  ErrorCode,
  type EventMap,
  type EventType,
} from '@picket/protocol';

export { decodeV1Response };

/** A decoded v1 request, with the event shaped like the v2 event of its type. */
export interface DecodedV1Request<K extends EventType = EventType> {
  version: number;
  eventType: K;
  event: EventMap[K];
}

/** Maps a FramingError (or anything else) to an AgentProtocolError, naming `where`. */
export function toProtocolError(err: unknown, where: string): AgentProtocolError {
  if (err instanceof AgentProtocolError) return err;
  if (isFramingError(err)) {
    const code =
      err.code === 'FRAME_TOO_LARGE' ? ErrorCode.MessageTooLarge : ErrorCode.InvalidMessage;
    return new AgentProtocolError(code, `${where}: ${err.message}`, { cause: err });
  }
  return AgentProtocolError.from(err, ErrorCode.Internal, where);
}

/**
 * A complete v1 request frame: `[u32 BE length][{"version","event_type","payload"}]`.
 * v1's configure payload is `{agent_id, config}`: the event's correlation id and
 * config version have no place on the v1 wire.
 */
export function requestFrame<K extends EventType>(
  type: K,
  event: EventMap[K],
  o: { agentId: string; version: number; maxMessageSize: number },
): Uint8Array {
  const json =
    type === 'configure'
      ? encodeV1Request({
          version: o.version,
          event_type: 'configure',
          payload: { agent_id: o.agentId, config: (event as EventMap['configure']).config ?? null },
        })
      : encodeV1Request({ version: o.version, event_type: type, payload: event } as Parameters<
          typeof encodeV1Request
        >[0]);
  return encodeV1Frame(json, { maxMessageSize: o.maxMessageSize });
}

/** Decodes and validates a v1 request; throws INVALID_MESSAGE naming what is wrong. */
export function decodeV1Request(payload: Uint8Array): DecodedV1Request {
  const req = decodeRequestJson(payload);
  if (req.event_type === 'configure') {
    return {
      version: req.version,
      eventType: 'configure',
      event: { correlation_id: '', config: req.payload.config, config_version: null },
    };
  }
  return { version: req.version, eventType: req.event_type, event: req.payload };
}

/** Event types whose answer may be a bare acknowledgement instead of an AgentResponse. */
export const ACK_EVENTS: ReadonlySet<EventType> = new Set<EventType>([
  'request_complete',
  'configure',
]);

/** A `{"success": …, "error"?: …}` acknowledgement (what the Python and Go v1 SDKs send). */
export interface V1Ack {
  success: boolean;
  error: string | undefined;
}

/**
 * The acknowledgement in `payload`, or undefined when it is not one: a JSON
 * object with a boolean `success`, no `decision`, and `error` (if any) a string
 * or null. Only called after the payload failed to decode as an AgentResponse.
 */
export function decodeV1Ack(payload: Uint8Array): V1Ack | undefined {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.success !== 'boolean' || 'decision' in o) return undefined;
  if (o.error !== undefined && o.error !== null && typeof o.error !== 'string') return undefined;
  return { success: o.success, error: typeof o.error === 'string' ? o.error : undefined };
}

/** A complete v1 response frame (AgentResponse JSON in declaration order). */
export function responseFrame(response: AgentResponse, maxMessageSize: number): Uint8Array {
  return encodeV1Frame(encodeV1Response(response), { maxMessageSize });
}
