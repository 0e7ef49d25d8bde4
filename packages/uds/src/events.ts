import { type EventType, MessageType } from '@picket/protocol';

/** Frame type carrying each event. */
export const EVENT_FRAME_TYPE: Readonly<Record<EventType, number>> = {
  request_headers: MessageType.RequestHeaders,
  request_body_chunk: MessageType.RequestBodyChunk,
  response_headers: MessageType.ResponseHeaders,
  response_body_chunk: MessageType.ResponseBodyChunk,
  request_complete: MessageType.RequestComplete,
  web_socket_frame: MessageType.WebSocketFrame,
  guardrail_inspect: MessageType.GuardrailInspect,
  configure: MessageType.Configure,
};

/** Event carried by each event frame type (0x10–0x17). */
export const FRAME_EVENT_TYPE: ReadonlyMap<number, EventType> = new Map(
  (Object.entries(EVENT_FRAME_TYPE) as [EventType, number][]).map(([e, t]) => [t, e]),
);
