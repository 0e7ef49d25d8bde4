import {
  AgentProtocolError,
  type AgentResponse,
  type ConfigUpdateRequest,
  type Encoding,
  ErrorCode,
  type EventMap,
  type EventType,
  type FlowControlMessage,
  type HealthStatusMessage,
  type MetricsReport,
  parseAgentResponse,
  parseConfigUpdateRequest,
  parseEvent,
  parseFlowControl,
  parseHealthStatus,
  parseMetricsReport,
} from '@picket/protocol';
import { str } from './check.js';
import { cborEncoder, parseCbor, parseJson, parseMsgpack } from './codec.js';
import { decodeMessage, guardEncode } from './errors.js';
import { plain, utf8Encode } from './json.js';
import {
  agentResponseJson,
  configUpdateJson,
  eventJson,
  flowControlJson,
  healthJson,
  metricsJson,
} from './json-messages.js';
import { FALLBACK, readAgentResponseFast, readRequestHeadersFast } from './msgpack-reader.js';
import { writeResponseFast } from './msgpack-response.js';
import { encodedStr, F64, MsgpackWriter } from './msgpack-writer.js';
import {
  configUpdateObject,
  eventObject,
  flowControlObject,
  healthObject,
  metricsObject,
  type ResponseParts,
  responseObject,
  responseParts,
} from './objects.js';
import { normalizeF32 } from './rust-float.js';

/** How a connection's binary encoding carries body bytes. */
export interface MessageCodecOptions {
  /**
   * msgpack only: send body `data` as raw `bin` instead of a base64 string.
   * Only towards a picket agent that advertised `picket.binary_bodies` in its
   * HandshakeResponse — a Rust agent decodes `data` into a `String`.
   * CBOR always carries raw bytes; JSON always base64. Decoders accept both.
   */
  binaryBodies?: boolean;
}

/**
 * The negotiated encoding of one connection, at message level: events
 * (proxy → agent), AgentResponse (agent → proxy) and the agent's control
 * messages (0x30–0x33). Every `decode*` validates and throws only
 * `AgentProtocolError('INVALID_MESSAGE')`; every `encode*` throws
 * `INVALID_ARGUMENT` for a value a peer would reject.
 */
export interface MessageCodec {
  readonly encoding: Encoding;
  /** True when body `data` goes out as raw bytes (msgpack with `binaryBodies`, or CBOR). */
  readonly binaryBodies: boolean;
  /**
   * Proxy → agent. JSON: keys sorted at every level plus the injected top-level
   * `correlation_id`, byte-identical with Rust's proxy. msgpack / CBOR: one map
   * with `correlation_id` (the call's id) first, each key once, nested structs as maps.
   */
  encodeEvent<K extends EventType>(type: K, event: EventMap[K], correlationId: string): Uint8Array;
  /** Agent side: decodes and validates an event payload (maps or rmp-serde arrays; base64 or bin bodies). */
  decodeEvent<K extends EventType>(type: K, payload: Uint8Array): EventMap[K];
  /**
   * Agent → proxy. JSON in declaration order; msgpack as Rust's 10-element array (f32 confidence); CBOR as a named map.
   * Every field is checked while it is written (missing optional fields take serde's defaults), so a handler's
   * result needs no separate validation. `correlationId`, when given, is written as `audit.custom.correlation_id`
   * (how a UDS reply is routed), replacing any value there; `response` itself is never modified.
   */
  encodeResponse(response: AgentResponse, correlationId?: string): Uint8Array;
  /** Proxy side: decodes and validates an AgentResponse (map, full or short array). */
  decodeResponse(payload: Uint8Array): AgentResponse;
  /** 0x30 HealthStatus (agent → proxy): `{state, message?}`. */
  encodeHealth(m: HealthStatusMessage): Uint8Array;
  decodeHealth(payload: Uint8Array): HealthStatusMessage;
  /** 0x31 MetricsReport: f64 values as Rust writes them (`3.0`, `cb`), infinite bucket bounds as `"+Inf"`. */
  encodeMetrics(m: MetricsReport): Uint8Array;
  decodeMetrics(payload: Uint8Array): MetricsReport;
  /** 0x32 ConfigUpdateRequest, `update_type` internally tagged by `type`. */
  encodeConfigUpdate(m: ConfigUpdateRequest): Uint8Array;
  decodeConfigUpdate(payload: Uint8Array): ConfigUpdateRequest;
  /** 0x33 FlowControl: `action` 1 pause, 2 resume. */
  encodeFlowControl(m: FlowControlMessage): Uint8Array;
  decodeFlowControl(payload: Uint8Array): FlowControlMessage;
}

const EVENT_NAMES: Readonly<Record<EventType, string>> = {
  configure: 'Configure',
  request_headers: 'RequestHeaders',
  request_body_chunk: 'RequestBodyChunk',
  response_headers: 'ResponseHeaders',
  response_body_chunk: 'ResponseBodyChunk',
  request_complete: 'RequestComplete',
  web_socket_frame: 'WebSocketFrame',
  guardrail_inspect: 'GuardrailInspect',
};

function eventName(type: EventType): string {
  const name = Object.hasOwn(EVENT_NAMES, type) ? EVENT_NAMES[type] : undefined;
  if (!name)
    throw new AgentProtocolError(ErrorCode.InvalidArgument, `unknown event type "${String(type)}"`);
  return name;
}

/** Body `data` as a plain Uint8Array (decoders may hand out Buffer views into the payload). */
function plainData<T>(event: T): T {
  const e = event as { data?: unknown };
  const d = e.data;
  if (d instanceof Uint8Array && d.constructor !== Uint8Array) {
    e.data = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  }
  return event;
}

function validateResponse(v: unknown): AgentResponse {
  const r = parseAgentResponse(v);
  // f32 on the Rust side: keep the value a float32 holds, written with its shortest digits
  if (r.audit.confidence !== null) r.audit.confidence = normalizeF32(r.audit.confidence);
  return r;
}

let writerBusy = false;
const sharedWriter = new MsgpackWriter(4096);

/** Runs `fn` with the shared msgpack writer (a fresh one if re-entered, e.g. from a `toJSON`). */
function withWriter(fn: (w: MsgpackWriter) => void): Uint8Array {
  if (writerBusy) {
    const w = new MsgpackWriter();
    fn(w);
    return w.finish();
  }
  writerBusy = true;
  try {
    fn(sharedWriter.reset());
    return sharedWriter.finish();
  } finally {
    sharedWriter.shrink(256 * 1024);
    writerBusy = false;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return (
    (proto === Object.prototype || proto === null) &&
    typeof (v as { toJSON?: unknown }).toJSON !== 'function'
  );
}

function isOptStr(v: unknown): v is string | null | undefined {
  return v === undefined || v === null || typeof v === 'string';
}

/** RequestHeaders' keys, encoded once: copying them beats writing them char by char. */
const RH = {
  correlation_id: encodedStr('correlation_id'),
  metadata: encodedStr('metadata'),
  request_id: encodedStr('request_id'),
  client_ip: encodedStr('client_ip'),
  client_port: encodedStr('client_port'),
  server_name: encodedStr('server_name'),
  protocol: encodedStr('protocol'),
  tls_version: encodedStr('tls_version'),
  tls_cipher: encodedStr('tls_cipher'),
  route_id: encodedStr('route_id'),
  upstream_id: encodedStr('upstream_id'),
  timestamp: encodedStr('timestamp'),
  traceparent: encodedStr('traceparent'),
  method: encodedStr('method'),
  uri: encodedStr('uri'),
  headers: encodedStr('headers'),
};

/**
 * RequestHeaders written straight from the event: the same bytes as
 * `eventObject` + the generic writer, without the intermediate copy. Returns
 * undefined for anything unusual (a field of the wrong type, headers that are
 * not a plain object of string arrays …) so the generic path handles it and
 * words the error.
 */
function writeRequestHeadersFast(event: unknown, cid: string): Uint8Array | undefined {
  if (!isPlainObject(event)) return undefined;
  const m = event.metadata;
  if (!isPlainObject(m)) return undefined;
  const correlationId = m.correlation_id;
  const requestId = m.request_id;
  const clientIp = m.client_ip;
  const clientPort = m.client_port;
  const serverName = m.server_name;
  const protocol = m.protocol;
  const tlsVersion = m.tls_version;
  const tlsCipher = m.tls_cipher;
  const routeId = m.route_id;
  const upstreamId = m.upstream_id;
  const timestamp = m.timestamp;
  const traceparent = m.traceparent;
  const method = event.method;
  const uri = event.uri;
  const headers = event.headers;
  if (
    typeof correlationId !== 'string' ||
    typeof requestId !== 'string' ||
    typeof clientIp !== 'string' ||
    typeof clientPort !== 'number' ||
    !Number.isInteger(clientPort) ||
    clientPort < 0 ||
    clientPort > 0xffff ||
    !isOptStr(serverName) ||
    typeof protocol !== 'string' ||
    !isOptStr(tlsVersion) ||
    !isOptStr(tlsCipher) ||
    !isOptStr(routeId) ||
    !isOptStr(upstreamId) ||
    typeof timestamp !== 'string' ||
    !isOptStr(traceparent) ||
    typeof method !== 'string' ||
    typeof uri !== 'string' ||
    !isPlainObject(headers)
  ) {
    return undefined;
  }
  // for-in, not Object.keys: no array per event (an inherited enumerable key, from a
  // polluted prototype, sends the event down the generic path)
  // the values are checked as they are written (one read each); a wrong one drops the message
  let count = 0;
  for (const name in headers) {
    if (!Object.hasOwn(headers, name)) return undefined;
    count++;
  }
  writerBusy = true;
  try {
    const w = sharedWriter.reset();
    w.map(5);
    w.raw(RH.correlation_id);
    w.str(cid);
    w.raw(RH.metadata);
    const hasTrace = traceparent !== undefined && traceparent !== null;
    w.map(hasTrace ? 12 : 11);
    w.raw(RH.correlation_id);
    w.str(correlationId);
    w.raw(RH.request_id);
    w.str(requestId);
    w.raw(RH.client_ip);
    w.str(clientIp);
    w.raw(RH.client_port);
    w.int(clientPort);
    writeOptStr(w, RH.server_name, serverName);
    w.raw(RH.protocol);
    w.str(protocol);
    writeOptStr(w, RH.tls_version, tlsVersion);
    writeOptStr(w, RH.tls_cipher, tlsCipher);
    writeOptStr(w, RH.route_id, routeId);
    writeOptStr(w, RH.upstream_id, upstreamId);
    w.raw(RH.timestamp);
    w.str(timestamp);
    if (hasTrace) {
      w.raw(RH.traceparent);
      w.str(traceparent);
    }
    w.raw(RH.method);
    w.str(method);
    w.raw(RH.uri);
    w.str(uri);
    w.raw(RH.headers);
    w.map(count);
    for (const name in headers) {
      const values = headers[name];
      if (!Array.isArray(values)) return undefined;
      w.str(name);
      w.array(values.length);
      for (const v of values) {
        if (typeof v !== 'string') return undefined;
        w.str(v);
      }
    }
    return w.finish();
  } finally {
    sharedWriter.shrink(256 * 1024);
    writerBusy = false;
  }
}

function writeOptStr(w: MsgpackWriter, key: Uint8Array, v: string | null | undefined): void {
  w.raw(key);
  if (v === undefined || v === null) w.nil();
  else w.str(v);
}

function writeStrMap(w: MsgpackWriter, m: Record<string, string>): void {
  const keys = Object.keys(m);
  w.map(keys.length);
  for (const k of keys) {
    w.str(k);
    w.str(m[k] as string);
  }
}

/**
 * rmp-serde's `to_vec` layout: structs as arrays, struct variants as `{name: [fields]}`.
 * @internal exported only for the fast writer's equivalence test
 */
export function writeResponseArray(w: MsgpackWriter, p: ResponseParts): void {
  w.array(10);
  w.int(p.version);
  const d = p.decision;
  if (d[0] === 'allow') {
    w.str('allow');
  } else {
    w.map(1);
    w.str(d[0]);
    if (d[0] === 'block') {
      w.array(3);
      w.int(d[1]);
      if (d[2] === null) w.nil();
      else w.str(d[2]);
      if (d[3] === null) w.nil();
      else writeStrMap(w, d[3]);
    } else if (d[0] === 'redirect') {
      w.array(2);
      w.str(d[1]);
      w.int(d[2]);
    } else {
      w.array(2);
      w.str(d[1]);
      writeStrMap(w, d[2]);
    }
  }
  for (const ops of [p.request_headers, p.response_headers]) {
    w.array(ops.length);
    for (const op of ops) {
      w.map(1);
      w.str(op[0]);
      if (op[0] === 'remove') {
        w.array(1);
        w.str(op[1]);
      } else {
        w.array(2);
        w.str(op[1]);
        w.str(op[2]);
      }
    }
  }
  writeStrMap(w, p.routing_metadata);
  const a = p.audit;
  w.array(5);
  w.strArray(a.tags);
  w.strArray(a.rule_ids);
  if (a.confidence === null) w.nil();
  else w.f32(a.confidence);
  w.strArray(a.reason_codes);
  w.value(a.custom);
  w.bool(p.needs_more);
  for (const m of [p.request_body_mutation, p.response_body_mutation]) {
    if (m === null) {
      w.nil();
    } else {
      w.array(2);
      if (m[0] === null) w.nil();
      else w.str(m[0]);
      w.int(m[1]);
    }
  }
  const ws = p.websocket_decision;
  if (ws === null) {
    w.nil();
  } else if (ws[0] === 'close') {
    w.map(1);
    w.str('close');
    w.array(2);
    w.int(ws[1]);
    w.str(ws[2]);
  } else {
    w.str(ws[0]);
  }
}

const toF64 = (n: number) => new F64(n);
const identity = (n: number) => n;

class JsonMessageCodec implements MessageCodec {
  readonly encoding = 'json' as const;
  readonly binaryBodies = false;

  encodeEvent<K extends EventType>(type: K, event: EventMap[K], correlationId: string): Uint8Array {
    return guardEncode('json', eventName(type), () =>
      utf8Encode(eventJson(type, event, str(correlationId, 'correlationId'))),
    );
  }
  decodeEvent<K extends EventType>(type: K, payload: Uint8Array): EventMap[K] {
    return decodeMessage('JSON', eventName(type), payload, parseJson, (v) => parseEvent(type, v));
  }
  encodeResponse(response: AgentResponse, correlationId?: string): Uint8Array {
    return guardEncode('json', 'AgentResponse', () =>
      utf8Encode(agentResponseJson(response, correlationId)),
    );
  }
  decodeResponse(payload: Uint8Array): AgentResponse {
    return decodeMessage('JSON', 'AgentResponse', payload, parseJson, validateResponse);
  }
  encodeHealth(m: HealthStatusMessage): Uint8Array {
    return guardEncode('json', 'HealthStatus', () => utf8Encode(healthJson(m)));
  }
  decodeHealth(payload: Uint8Array): HealthStatusMessage {
    return decodeMessage('JSON', 'HealthStatus', payload, parseJson, parseHealthStatus);
  }
  encodeMetrics(m: MetricsReport): Uint8Array {
    return guardEncode('json', 'MetricsReport', () => utf8Encode(metricsJson(m)));
  }
  decodeMetrics(payload: Uint8Array): MetricsReport {
    return decodeMessage('JSON', 'MetricsReport', payload, parseJson, parseMetricsReport);
  }
  encodeConfigUpdate(m: ConfigUpdateRequest): Uint8Array {
    return guardEncode('json', 'ConfigUpdateRequest', () => utf8Encode(configUpdateJson(m)));
  }
  decodeConfigUpdate(payload: Uint8Array): ConfigUpdateRequest {
    return decodeMessage(
      'JSON',
      'ConfigUpdateRequest',
      payload,
      parseJson,
      parseConfigUpdateRequest,
    );
  }
  encodeFlowControl(m: FlowControlMessage): Uint8Array {
    return guardEncode('json', 'FlowControl', () => utf8Encode(flowControlJson(m)));
  }
  decodeFlowControl(payload: Uint8Array): FlowControlMessage {
    return decodeMessage('JSON', 'FlowControl', payload, parseJson, parseFlowControl);
  }
}

/** Shared decode side of the two binary encodings (both readers accept maps and positional arrays). */
abstract class BinaryMessageCodec implements MessageCodec {
  abstract readonly encoding: 'msgpack' | 'cbor';
  abstract readonly binaryBodies: boolean;
  protected abstract readonly label: string;
  protected abstract readonly parse: (bytes: Uint8Array) => unknown;
  protected abstract encodeValue(what: string, value: unknown): Uint8Array;

  abstract encodeResponse(response: AgentResponse, correlationId?: string): Uint8Array;
  abstract encodeMetrics(m: MetricsReport): Uint8Array;

  encodeEvent<K extends EventType>(type: K, event: EventMap[K], correlationId: string): Uint8Array {
    const what = eventName(type);
    const cid = str(correlationId, 'correlationId');
    return this.encodeValue(what, eventObject(type, event, cid, this.binaryBodies));
  }
  decodeEvent<K extends EventType>(type: K, payload: Uint8Array): EventMap[K] {
    return decodeMessage(this.label, eventName(type), payload, this.parse, (v) =>
      plainData(parseEvent(type, v)),
    );
  }
  decodeResponse(payload: Uint8Array): AgentResponse {
    return decodeMessage(this.label, 'AgentResponse', payload, this.parse, validateResponse);
  }
  encodeHealth(m: HealthStatusMessage): Uint8Array {
    return this.encodeValue('HealthStatus', healthObject(m));
  }
  decodeHealth(payload: Uint8Array): HealthStatusMessage {
    return decodeMessage(this.label, 'HealthStatus', payload, this.parse, parseHealthStatus);
  }
  decodeMetrics(payload: Uint8Array): MetricsReport {
    return decodeMessage(this.label, 'MetricsReport', payload, this.parse, parseMetricsReport);
  }
  encodeConfigUpdate(m: ConfigUpdateRequest): Uint8Array {
    return this.encodeValue('ConfigUpdateRequest', configUpdateObject(m));
  }
  decodeConfigUpdate(payload: Uint8Array): ConfigUpdateRequest {
    return decodeMessage(
      this.label,
      'ConfigUpdateRequest',
      payload,
      this.parse,
      parseConfigUpdateRequest,
    );
  }
  encodeFlowControl(m: FlowControlMessage): Uint8Array {
    return this.encodeValue('FlowControl', flowControlObject(m));
  }
  decodeFlowControl(payload: Uint8Array): FlowControlMessage {
    return decodeMessage(this.label, 'FlowControl', payload, this.parse, parseFlowControl);
  }
}

class MsgpackMessageCodec extends BinaryMessageCodec {
  readonly encoding = 'msgpack' as const;
  protected readonly label = 'msgpack';
  protected readonly parse = parseMsgpack;
  constructor(readonly binaryBodies: boolean) {
    super();
  }
  protected encodeValue(what: string, value: unknown): Uint8Array {
    return guardEncode('msgpack', what, () => withWriter((w) => w.value(value)));
  }
  override encodeEvent<K extends EventType>(
    type: K,
    event: EventMap[K],
    correlationId: string,
  ): Uint8Array {
    // The hottest message: checked and written in one pass when it has the usual shape.
    if (type === 'request_headers' && typeof correlationId === 'string' && !writerBusy) {
      const out = writeRequestHeadersFast(event, correlationId);
      if (out !== undefined) return out;
    }
    return super.encodeEvent(type, event, correlationId);
  }
  override decodeEvent<K extends EventType>(type: K, payload: Uint8Array): EventMap[K] {
    // The hottest message: decoded and validated in one pass when it has the usual shape.
    if (type === 'request_headers' && payload instanceof Uint8Array) {
      const fast = readRequestHeadersFast(payload);
      if (fast !== FALLBACK) return fast as EventMap[K];
    }
    return super.decodeEvent(type, payload);
  }
  override decodeResponse(payload: Uint8Array): AgentResponse {
    // Every call's reply: decoded and validated in one pass when it has the usual shape.
    if (payload instanceof Uint8Array) {
      const fast = readAgentResponseFast(payload);
      if (fast !== FALLBACK) {
        if (fast.audit.confidence !== null) {
          fast.audit.confidence = normalizeF32(fast.audit.confidence);
        }
        return fast;
      }
    }
    return super.decodeResponse(payload);
  }
  encodeResponse(response: AgentResponse, correlationId?: string): Uint8Array {
    return guardEncode('msgpack', 'AgentResponse', () => {
      if (!writerBusy) {
        writerBusy = true;
        try {
          if (writeResponseFast(sharedWriter.reset(), response, correlationId)) {
            return sharedWriter.finish();
          }
        } finally {
          sharedWriter.reset().shrink(256 * 1024);
          writerBusy = false;
        }
      }
      const parts = responseParts(response, correlationId);
      return withWriter((w) => writeResponseArray(w, parts));
    });
  }
  encodeMetrics(m: MetricsReport): Uint8Array {
    return this.encodeValue('MetricsReport', metricsObject(m, toF64));
  }
}

class CborMessageCodec extends BinaryMessageCodec {
  readonly encoding = 'cbor' as const;
  readonly binaryBodies = true;
  protected readonly label = 'CBOR';
  protected readonly parse = parseCbor;
  protected encodeValue(what: string, value: unknown): Uint8Array {
    return guardEncode('cbor', what, () => plain(cborEncoder.encode(value)));
  }
  encodeResponse(response: AgentResponse, correlationId?: string): Uint8Array {
    return this.encodeValue('AgentResponse', responseObject(response, correlationId));
  }
  encodeMetrics(m: MetricsReport): Uint8Array {
    return this.encodeValue('MetricsReport', metricsObject(m, identity));
  }
}

const JSON_MESSAGES = new JsonMessageCodec();
const MSGPACK_MESSAGES = new MsgpackMessageCodec(false);
const MSGPACK_BINARY_MESSAGES = new MsgpackMessageCodec(true);
const CBOR_MESSAGES = new CborMessageCodec();

/**
 * The message codec for a negotiated encoding. Instances are stateless and
 * shared. `binaryBodies` only matters for msgpack (see {@link MessageCodecOptions}).
 */
export function createMessageCodec(
  encoding: Encoding,
  options: MessageCodecOptions = {},
): MessageCodec {
  switch (encoding) {
    case 'json':
      return JSON_MESSAGES;
    case 'msgpack':
      return options.binaryBodies ? MSGPACK_BINARY_MESSAGES : MSGPACK_MESSAGES;
    case 'cbor':
      return CBOR_MESSAGES;
    default:
      throw new AgentProtocolError(
        ErrorCode.Unsupported,
        `unknown encoding "${String(encoding)}" (json, msgpack, cbor)`,
      );
  }
}
