/**
 * UDS v2 frame type ids, as the Rust code uses them (not the upstream docs'
 * 0x21 / 0x30 cancel / 0xF0 ping table). Reverse connections reuse 0x01 / 0x02
 * for registration. Any other byte is a protocol error that ends the connection.
 */
export const MessageType = {
  HandshakeRequest: 0x01,
  HandshakeResponse: 0x02,
  RequestHeaders: 0x10,
  RequestBodyChunk: 0x11,
  ResponseHeaders: 0x12,
  ResponseBodyChunk: 0x13,
  RequestComplete: 0x14,
  WebSocketFrame: 0x15,
  GuardrailInspect: 0x16,
  Configure: 0x17,
  AgentResponse: 0x20,
  HealthStatus: 0x30,
  MetricsReport: 0x31,
  ConfigUpdateRequest: 0x32,
  FlowControl: 0x33,
  Cancel: 0x40,
  Ping: 0x41,
  Pong: 0x42,
} as const;

export type MessageType = (typeof MessageType)[keyof typeof MessageType];
export type MessageTypeName = keyof typeof MessageType;

const NAMES = new Map<number, MessageTypeName>(
  (Object.entries(MessageType) as [MessageTypeName, number][]).map(([name, id]) => [id, name]),
);

/** True for the 18 type bytes the live protocol defines. */
export function isMessageType(byte: number): byte is MessageType {
  return NAMES.has(byte);
}

/** `"RequestHeaders (0x10)"`, or `"unknown (0xff)"`, for error messages and logs. */
export function describeMessageType(byte: number): string {
  const hex = `0x${byte.toString(16).padStart(2, '0')}`;
  return `${NAMES.get(byte) ?? 'unknown'} (${hex})`;
}

/** Frame types that carry a proxy→agent event and are answered by one AgentResponse. */
export const EVENT_MESSAGE_TYPES = [
  MessageType.RequestHeaders,
  MessageType.RequestBodyChunk,
  MessageType.ResponseHeaders,
  MessageType.ResponseBodyChunk,
  MessageType.RequestComplete,
  MessageType.WebSocketFrame,
  MessageType.GuardrailInspect,
  MessageType.Configure,
] as const;
export type EventMessageType = (typeof EVENT_MESSAGE_TYPES)[number];
