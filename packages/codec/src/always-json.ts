/**
 * Messages that are JSON whatever the negotiated encoding: handshake (0x01 /
 * 0x02), reverse registration (0x01 / 0x02), Cancel (0x40) and Ping / Pong
 * (0x41 / 0x42). Output is byte-identical with the Rust code (golden vectors
 * V1, V2, V7, V8, V9a–c).
 */
import {
  type CancelMessage,
  type GuardrailResponse,
  type HandshakeRequest,
  type HandshakeResponse,
  type PingMessage,
  parseCancel,
  parseGuardrailResponse,
  parseHandshakeRequest,
  parseHandshakeResponse,
  parsePing,
  parseRegistrationRequest,
  parseRegistrationResponse,
  type RegistrationRequest,
  type RegistrationResponse,
} from '@picket/protocol';
import { parseJson } from './codec.js';
import { decodeMessage, guardDecode, guardEncode } from './errors.js';
import { utf8Encode } from './json.js';
import {
  cancelJson,
  guardrailResponseJson,
  handshakeRequestJson,
  handshakeResponseJson,
  pingJson,
  registrationRequestJson,
  registrationResponseJson,
} from './json-messages.js';

/** Proxy → agent frame 0x01: declaration order, `supported_encodings` omitted when empty. */
export function encodeHandshakeRequest(m: HandshakeRequest): Uint8Array {
  return guardEncode('json', 'HandshakeRequest', () => utf8Encode(handshakeRequestJson(m)));
}
/** Unknown encoding names are dropped (a Rust agent would reject the whole request). */
export function decodeHandshakeRequest(payload: Uint8Array): HandshakeRequest {
  return decodeMessage('JSON', 'HandshakeRequest', payload, parseJson, parseHandshakeRequest);
}

/** Agent → proxy frame 0x02: capabilities with all UDS fields; the `picket` extension last when set. */
export function encodeHandshakeResponse(m: HandshakeResponse): Uint8Array {
  return guardEncode('json', 'HandshakeResponse', () => utf8Encode(handshakeResponseJson(m)));
}
/** Requires every UDS capability field, as a Rust proxy does; reads the `picket` extension. */
export function decodeHandshakeResponse(payload: Uint8Array): HandshakeResponse {
  return decodeMessage('JSON', 'HandshakeResponse', payload, parseJson, parseHandshakeResponse);
}

/** Reverse connection, agent → proxy frame 0x01. */
export function encodeRegistrationRequest(m: RegistrationRequest): Uint8Array {
  return guardEncode('json', 'RegistrationRequest', () => utf8Encode(registrationRequestJson(m)));
}
/** Validates a RegistrationRequest (capabilities complete); policy checks are the listener's job. */
export function decodeRegistrationRequest(payload: Uint8Array): RegistrationRequest {
  return decodeMessage('JSON', 'RegistrationRequest', payload, parseJson, parseRegistrationRequest);
}

/** Reverse connection, proxy → agent frame 0x02. */
export function encodeRegistrationResponse(m: RegistrationResponse): Uint8Array {
  return guardEncode('json', 'RegistrationResponse', () => utf8Encode(registrationResponseJson(m)));
}
/** Validates a RegistrationResponse. */
export function decodeRegistrationResponse(payload: Uint8Array): RegistrationResponse {
  return decodeMessage(
    'JSON',
    'RegistrationResponse',
    payload,
    parseJson,
    parseRegistrationResponse,
  );
}

/** Frame 0x40, keys sorted (`json!` in Rust); `reason` is the 0-based UDS number. */
export function encodeCancel(m: CancelMessage): Uint8Array {
  return guardEncode('json', 'Cancel', () => utf8Encode(cancelJson(m)));
}
/** Validates a Cancel; `timestamp_ms` defaults to 0. */
export function decodeCancel(payload: Uint8Array): CancelMessage {
  return decodeMessage('JSON', 'Cancel', payload, parseJson, parseCancel);
}

/** Frame 0x41 (a Pong, 0x42, echoes the same bytes). */
export function encodePing(m: PingMessage): Uint8Array {
  return guardEncode('json', 'Ping', () => utf8Encode(pingJson(m)));
}
/** Validates a Ping (or a Pong's echoed payload). */
export function decodePing(payload: Uint8Array): PingMessage {
  return decodeMessage('JSON', 'Ping', payload, parseJson, parsePing);
}

/**
 * The JSON text an agent puts in `routing_metadata.guardrail_response`, as a
 * Rust agent writes it (`{"detected":false,"confidence":0.0,"detections":[]}`).
 */
export function encodeGuardrailResponse(r: GuardrailResponse): string {
  return guardEncode('json', 'GuardrailResponse', () => guardrailResponseJson(r));
}
/** Parses `routing_metadata.guardrail_response` text; `INVALID_MESSAGE` when it is not a GuardrailResponse. */
export function decodeGuardrailResponse(text: string): GuardrailResponse {
  const raw = guardDecode('invalid JSON in GuardrailResponse', () => JSON.parse(text) as unknown);
  return guardDecode('invalid GuardrailResponse', () => parseGuardrailResponse(raw));
}
