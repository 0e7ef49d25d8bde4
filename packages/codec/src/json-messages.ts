/**
 * Hand-written JSON serializers, one per message, producing the exact text the
 * Rust code writes:
 *
 * - proxy → agent events go through `serde_json::Value` in Rust, so every key
 *   is sorted (including header names and other maps) and a top-level
 *   `correlation_id` is injected; `None` is `null` except `traceparent`,
 *   guardrail `model` / `route_id`, which are omitted;
 * - structs serialized directly (AgentResponse, handshake, registration,
 *   control messages) keep field declaration order.
 *
 * Keys are emitted in their known order instead of sorting generically, because
 * event encoding is on the proxy's hot path; only dynamic maps are sorted.
 */
import type {
  AgentCapabilities,
  AgentResponse,
  AuditMetadata,
  BodyMutation,
  CancelMessage,
  ConfigUpdateRequest,
  ConfigureEvent,
  Encoding,
  EventMap,
  EventType,
  FlowControlMessage,
  GuardrailInspectEvent,
  GuardrailResponse,
  HandshakeRequest,
  HandshakeResponse,
  HealthStatusMessage,
  MetricsReport,
  PingMessage,
  RegistrationRequest,
  RegistrationResponse,
  RequestBodyChunkEvent,
  RequestCompleteEvent,
  RequestHeadersEvent,
  ResponseBodyChunkEvent,
  ResponseHeadersEvent,
  WebSocketFrameEvent,
} from '@picket/protocol';
import {
  bool,
  bytes,
  int,
  list,
  num,
  obj,
  optList,
  optObj,
  optStr,
  optUint,
  str,
  U16,
  U32,
  uint,
} from './check.js';
import { cannotEncode } from './errors.js';
import { sortedJson, sortKeys, toBase64 } from './json.js';
import { formatF32, formatF64 } from './rust-float.js';

const q = JSON.stringify as (s: string) => string;

/** JSON string literal of a required string field. */
function s(v: unknown, path: string): string {
  return q(str(v, path));
}
/** JSON of an `Option<String>`: `null` when absent. */
function ns(v: unknown, path: string): string {
  const x = optStr(v, path);
  return x === null ? 'null' : q(x);
}
function u(v: unknown, path: string, max?: number): string {
  return String(uint(v, path, max));
}
function nu(v: unknown, path: string, max?: number): string {
  const x = optUint(v, path, max);
  return x === null ? 'null' : String(x);
}
function b(v: unknown, path: string): string {
  return bool(v, path) ? 'true' : 'false';
}
/** `bool` with `#[serde(default)]`: absent ⇒ false. */
function bd(v: unknown, path: string): string {
  return v === undefined || v === null ? 'false' : b(v, path);
}
// The loops below build a field path only when a check fails: they run per header on the hot path.
function strArray(v: unknown, path: string): string {
  const arr = optList(v, path);
  let out = '[';
  for (let i = 0; i < arr.length; i++) {
    const x = arr[i];
    if (typeof x !== 'string') str(x, `${path}[${i}]`);
    out += i > 0 ? `,${q(x as string)}` : q(x as string);
  }
  return `${out}]`;
}
/** A `HashMap<String, String>` serialized directly: insertion order (Rust's is random anyway). */
function strMap(v: unknown, path: string): string {
  const o = optObj(v, path);
  let out = '{';
  let first = true;
  for (const k in o) {
    if (!Object.hasOwn(o, k)) continue;
    const x = o[k];
    if (typeof x !== 'string') str(x, `${path}.${k}`);
    out += `${first ? '' : ','}${q(k)}:${q(x as string)}`;
    first = false;
  }
  return `${out}}`;
}
/** A map that went through `serde_json::Value`: keys sorted. */
function sortedStrMap(v: unknown, path: string): string {
  const o = optObj(v, path);
  const keys = sortKeys(Object.keys(o));
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    const x = o[k];
    if (typeof x !== 'string') str(x, `${path}.${k}`);
    out += `${i > 0 ? ',' : ''}${q(k)}:${q(x as string)}`;
  }
  return `${out}}`;
}
/** Header map name → values, keys sorted (event path). */
function headers(v: unknown, path: string): string {
  const o = obj(v, path);
  const keys = sortKeys(Object.keys(o));
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    const values = o[k];
    if (!Array.isArray(values)) list(values, `${path}.${k}`);
    out += `${i > 0 ? ',' : ''}${q(k)}:[`;
    for (let j = 0; j < (values as unknown[]).length; j++) {
      const x = (values as unknown[])[j];
      if (typeof x !== 'string') str(x, `${path}.${k}[${j}]`);
      out += j > 0 ? `,${q(x as string)}` : q(x as string);
    }
    out += ']';
  }
  return `${out}}`;
}
function anyValue(v: unknown): string {
  return sortedJson(v) ?? 'null';
}
function data(v: unknown, path: string): string {
  return `"${toBase64(bytes(v, path))}"`;
}

// ---------------------------------------------------------------- events (sorted keys)

/** `cid` undefined ⇒ no injected key (v1 payloads); otherwise it is written/overwritten as Rust's proxy does. */
function requestHeaders(e: RequestHeadersEvent, cid: string | undefined): string {
  const ev = obj(e, 'RequestHeaders');
  const m = obj(ev.metadata, 'RequestHeaders.metadata');
  let out = cid === undefined ? '{"headers":' : `{"correlation_id":${q(cid)},"headers":`;
  out += headers(ev.headers, 'RequestHeaders.headers');
  out += `,"metadata":{"client_ip":${s(m.client_ip, 'RequestHeaders.metadata.client_ip')}`;
  out += `,"client_port":${u(m.client_port, 'RequestHeaders.metadata.client_port', U16)}`;
  out += `,"correlation_id":${s(m.correlation_id, 'RequestHeaders.metadata.correlation_id')}`;
  out += `,"protocol":${s(m.protocol, 'RequestHeaders.metadata.protocol')}`;
  out += `,"request_id":${s(m.request_id, 'RequestHeaders.metadata.request_id')}`;
  out += `,"route_id":${ns(m.route_id, 'RequestHeaders.metadata.route_id')}`;
  out += `,"server_name":${ns(m.server_name, 'RequestHeaders.metadata.server_name')}`;
  out += `,"timestamp":${s(m.timestamp, 'RequestHeaders.metadata.timestamp')}`;
  out += `,"tls_cipher":${ns(m.tls_cipher, 'RequestHeaders.metadata.tls_cipher')}`;
  out += `,"tls_version":${ns(m.tls_version, 'RequestHeaders.metadata.tls_version')}`;
  if (m.traceparent !== undefined && m.traceparent !== null) {
    out += `,"traceparent":${s(m.traceparent, 'RequestHeaders.metadata.traceparent')}`;
  }
  out += `,"upstream_id":${ns(m.upstream_id, 'RequestHeaders.metadata.upstream_id')}}`;
  out += `,"method":${s(ev.method, 'RequestHeaders.method')},"uri":${s(ev.uri, 'RequestHeaders.uri')}}`;
  return out;
}

function ownCid(e: { correlation_id?: unknown }, cid: string | undefined, path: string): string {
  return cid === undefined ? s(e.correlation_id, `${path}.correlation_id`) : q(cid);
}

function requestBodyChunk(e: RequestBodyChunkEvent, cid: string | undefined): string {
  const ev = obj(e, 'RequestBodyChunk');
  return (
    `{"bytes_received":${u(ev.bytes_received, 'RequestBodyChunk.bytes_received')}` +
    `,"chunk_index":${u(ev.chunk_index, 'RequestBodyChunk.chunk_index', U32)}` +
    `,"correlation_id":${ownCid(ev, cid, 'RequestBodyChunk')}` +
    `,"data":${data(ev.data, 'RequestBodyChunk.data')}` +
    `,"is_last":${b(ev.is_last, 'RequestBodyChunk.is_last')}` +
    `,"total_size":${nu(ev.total_size, 'RequestBodyChunk.total_size')}}`
  );
}

function responseBodyChunk(e: ResponseBodyChunkEvent, cid: string | undefined): string {
  const ev = obj(e, 'ResponseBodyChunk');
  return (
    `{"bytes_sent":${u(ev.bytes_sent, 'ResponseBodyChunk.bytes_sent')}` +
    `,"chunk_index":${u(ev.chunk_index, 'ResponseBodyChunk.chunk_index', U32)}` +
    `,"correlation_id":${ownCid(ev, cid, 'ResponseBodyChunk')}` +
    `,"data":${data(ev.data, 'ResponseBodyChunk.data')}` +
    `,"is_last":${b(ev.is_last, 'ResponseBodyChunk.is_last')}` +
    `,"total_size":${nu(ev.total_size, 'ResponseBodyChunk.total_size')}}`
  );
}

function responseHeaders(e: ResponseHeadersEvent, cid: string | undefined): string {
  const ev = obj(e, 'ResponseHeaders');
  return (
    `{"correlation_id":${ownCid(ev, cid, 'ResponseHeaders')}` +
    `,"headers":${headers(ev.headers, 'ResponseHeaders.headers')}` +
    `,"status":${u(ev.status, 'ResponseHeaders.status', U16)}}`
  );
}

function requestComplete(e: RequestCompleteEvent, cid: string | undefined): string {
  const ev = obj(e, 'RequestComplete');
  return (
    `{"correlation_id":${ownCid(ev, cid, 'RequestComplete')}` +
    `,"duration_ms":${u(ev.duration_ms, 'RequestComplete.duration_ms')}` +
    `,"error":${ns(ev.error, 'RequestComplete.error')}` +
    `,"request_body_size":${u(ev.request_body_size, 'RequestComplete.request_body_size')}` +
    `,"response_body_size":${u(ev.response_body_size, 'RequestComplete.response_body_size')}` +
    `,"status":${u(ev.status, 'RequestComplete.status', U16)}` +
    `,"upstream_attempts":${u(ev.upstream_attempts, 'RequestComplete.upstream_attempts', U32)}}`
  );
}

function webSocketFrame(e: WebSocketFrameEvent, cid: string | undefined): string {
  const ev = obj(e, 'WebSocketFrame');
  return (
    `{"client_ip":${s(ev.client_ip, 'WebSocketFrame.client_ip')}` +
    `,"client_to_server":${b(ev.client_to_server, 'WebSocketFrame.client_to_server')}` +
    `,"correlation_id":${ownCid(ev, cid, 'WebSocketFrame')}` +
    `,"data":${data(ev.data, 'WebSocketFrame.data')}` +
    `,"fin":${b(ev.fin, 'WebSocketFrame.fin')}` +
    `,"frame_index":${u(ev.frame_index, 'WebSocketFrame.frame_index')}` +
    `,"opcode":${s(ev.opcode, 'WebSocketFrame.opcode')}` +
    `,"route_id":${ns(ev.route_id, 'WebSocketFrame.route_id')}}`
  );
}

/** Rust rejects any other value, so the encoder does too. */
export function inspectionType(v: unknown, path: string): string {
  const t = str(v, path);
  if (t !== 'prompt_injection' && t !== 'pii_detection') {
    throw cannotEncode(path, `unknown value "${t}" (prompt_injection, pii_detection)`);
  }
  return t;
}

function guardrailInspect(e: GuardrailInspectEvent, cid: string | undefined): string {
  const ev = obj(e, 'GuardrailInspect');
  let out =
    `{"categories":${strArray(ev.categories, 'GuardrailInspect.categories')}` +
    `,"content":${s(ev.content, 'GuardrailInspect.content')}` +
    `,"correlation_id":${ownCid(ev, cid, 'GuardrailInspect')}` +
    `,"inspection_type":${q(inspectionType(ev.inspection_type, 'GuardrailInspect.inspection_type'))}` +
    `,"metadata":${sortedStrMap(ev.metadata, 'GuardrailInspect.metadata')}`;
  if (ev.model !== undefined && ev.model !== null)
    out += `,"model":${s(ev.model, 'GuardrailInspect.model')}`;
  if (ev.route_id !== undefined && ev.route_id !== null) {
    out += `,"route_id":${s(ev.route_id, 'GuardrailInspect.route_id')}`;
  }
  return `${out}}`;
}

function configure(e: ConfigureEvent, cid: string | undefined): string {
  const ev = obj(e, 'Configure');
  return (
    `{"config":${anyValue(ev.config)}` +
    `,"config_version":${ns(ev.config_version, 'Configure.config_version')}` +
    `,"correlation_id":${cid === undefined ? q(optStr(ev.correlation_id, 'Configure.correlation_id') ?? '') : q(cid)}}`
  );
}

const EVENT_WRITERS: { [K in EventType]: (e: EventMap[K], cid: string | undefined) => string } = {
  request_headers: requestHeaders,
  request_body_chunk: requestBodyChunk,
  response_headers: responseHeaders,
  response_body_chunk: responseBodyChunk,
  request_complete: requestComplete,
  web_socket_frame: webSocketFrame,
  guardrail_inspect: guardrailInspect,
  configure,
};

/** Looks up the writer for `type`, failing clearly on a name that is not an EventType. */
export function eventWriter<K extends EventType>(
  type: K,
): (e: EventMap[K], cid: string | undefined) => string {
  const w = Object.hasOwn(EVENT_WRITERS, type) ? EVENT_WRITERS[type] : undefined;
  if (!w) throw cannotEncode('event', `unknown event type "${String(type)}"`);
  return w as (e: EventMap[K], cid: string | undefined) => string;
}

/** Event JSON text as Rust's proxy writes it (`cid` undefined: no injected key, as in v1 payloads). */
export function eventJson<K extends EventType>(
  type: K,
  event: EventMap[K],
  cid: string | undefined,
): string {
  return eventWriter(type)(event, cid === undefined ? undefined : str(cid, 'correlationId'));
}

// ---------------------------------------------------------------- AgentResponse (declaration order)

function decision(v: unknown, path: string): string {
  if (v === 'allow') return '"allow"';
  const d = obj(v, path);
  if (d.block !== undefined) {
    const x = obj(d.block, `${path}.block`);
    const h = x.headers;
    return (
      `{"block":{"status":${u(x.status, `${path}.block.status`, U16)}` +
      `,"body":${ns(x.body, `${path}.block.body`)}` +
      `,"headers":${h === undefined || h === null ? 'null' : strMap(h, `${path}.block.headers`)}}}`
    );
  }
  if (d.redirect !== undefined) {
    const x = obj(d.redirect, `${path}.redirect`);
    return `{"redirect":{"url":${s(x.url, `${path}.redirect.url`)},"status":${u(x.status, `${path}.redirect.status`, U16)}}}`;
  }
  if (d.challenge !== undefined) {
    const x = obj(d.challenge, `${path}.challenge`);
    return (
      `{"challenge":{"challenge_type":${s(x.challenge_type, `${path}.challenge.challenge_type`)}` +
      `,"params":${strMap(x.params, `${path}.challenge.params`)}}}`
    );
  }
  throw cannotEncode(path, 'expected "allow", {block}, {redirect} or {challenge}');
}

function headerOps(v: unknown, path: string): string {
  const ops = optList(v, path);
  let out = '[';
  for (let i = 0; i < ops.length; i++) {
    const p = `${path}[${i}]`;
    const op = obj(ops[i], p);
    if (i > 0) out += ',';
    if (op.set !== undefined || op.add !== undefined) {
      const name = op.set !== undefined ? 'set' : 'add';
      const nv = obj(op[name], `${p}.${name}`);
      out += `{"${name}":{"name":${s(nv.name, `${p}.${name}.name`)},"value":${s(nv.value, `${p}.${name}.value`)}}}`;
    } else if (op.remove !== undefined) {
      const r = obj(op.remove, `${p}.remove`);
      out += `{"remove":{"name":${s(r.name, `${p}.remove.name`)}}}`;
    } else {
      throw cannotEncode(p, 'expected {set}, {add} or {remove}');
    }
  }
  return `${out}]`;
}

function audit(v: unknown, path: string, correlationId: string | undefined): string {
  const a = optObj(v, path) as Partial<AuditMetadata>;
  const c = a.confidence;
  const given = optObj(a.custom, `${path}.custom`);
  const custom = correlationId === undefined ? given : { ...given, correlation_id: correlationId };
  return (
    `{"tags":${strArray(a.tags, `${path}.tags`)}` +
    `,"rule_ids":${strArray(a.rule_ids, `${path}.rule_ids`)}` +
    `,"confidence":${c === undefined || c === null ? 'null' : formatF32(num(c, `${path}.confidence`))}` +
    `,"reason_codes":${strArray(a.reason_codes, `${path}.reason_codes`)}` +
    `,"custom":${JSON.stringify(custom)}}`
  );
}

function bodyMutation(v: unknown, path: string): string {
  if (v === undefined || v === null) return 'null';
  const m = obj(v, path) as Partial<BodyMutation>;
  const idx = m.chunk_index === undefined ? 0 : m.chunk_index;
  return `{"data":${ns(m.data, `${path}.data`)},"chunk_index":${u(idx, `${path}.chunk_index`, U32)}}`;
}

function wsDecision(v: unknown, path: string): string {
  if (v === undefined || v === null) return 'null';
  if (v === 'allow' || v === 'drop') return `"${v}"`;
  const d = obj(v, path);
  if (d.close !== undefined) {
    const c = obj(d.close, `${path}.close`);
    return `{"close":{"code":${u(c.code, `${path}.close.code`, U16)},"reason":${s(c.reason, `${path}.close.reason`)}}}`;
  }
  throw cannotEncode(path, 'expected "allow", "drop" or {close}');
}

/**
 * AgentResponse JSON in declaration order, as a Rust agent writes it. Fields a
 * Rust reader defaults (header ops, routing metadata, audit, mutations…) may be
 * left out of `r` and are written with their default values.
 */
export function agentResponseJson(r: AgentResponse, correlationId?: string): string {
  const x = obj(r, 'AgentResponse') as Partial<AgentResponse>;
  return (
    `{"version":${u(x.version, 'AgentResponse.version', U32)}` +
    `,"decision":${decision(x.decision, 'AgentResponse.decision')}` +
    `,"request_headers":${headerOps(x.request_headers, 'AgentResponse.request_headers')}` +
    `,"response_headers":${headerOps(x.response_headers, 'AgentResponse.response_headers')}` +
    `,"routing_metadata":${strMap(x.routing_metadata, 'AgentResponse.routing_metadata')}` +
    `,"audit":${audit(x.audit, 'AgentResponse.audit', correlationId)}` +
    `,"needs_more":${bd(x.needs_more, 'AgentResponse.needs_more')}` +
    `,"request_body_mutation":${bodyMutation(x.request_body_mutation, 'AgentResponse.request_body_mutation')}` +
    `,"response_body_mutation":${bodyMutation(x.response_body_mutation, 'AgentResponse.response_body_mutation')}` +
    `,"websocket_decision":${wsDecision(x.websocket_decision, 'AgentResponse.websocket_decision')}}`
  );
}

// ---------------------------------------------------------------- handshake and registration

const ENCODINGS: readonly string[] = ['json', 'msgpack', 'cbor'];
function encodingName(v: unknown, path: string): Encoding {
  const e = str(v, path);
  if (!ENCODINGS.includes(e))
    throw cannotEncode(path, `unknown encoding "${e}" (json, msgpack, cbor)`);
  return e as Encoding;
}

function capabilities(v: AgentCapabilities, path: string): string {
  const c = obj(v, path);
  const f = obj(c.features, `${path}.features`);
  const l = obj(c.limits, `${path}.limits`);
  const ev = list(c.supported_events, `${path}.supported_events`);
  let events = '[';
  for (let i = 0; i < ev.length; i++)
    events += `${i > 0 ? ',' : ''}${int(ev[i], `${path}.supported_events[${i}]`)}`;
  const fp = `${path}.features`;
  const lp = `${path}.limits`;
  return (
    `{"agent_id":${s(c.agent_id, `${path}.agent_id`)},"name":${s(c.name, `${path}.name`)}` +
    `,"version":${s(c.version, `${path}.version`)},"supported_events":${events}]` +
    `,"features":{"streaming_body":${b(f.streaming_body, `${fp}.streaming_body`)}` +
    `,"websocket":${b(f.websocket, `${fp}.websocket`)}` +
    `,"guardrails":${b(f.guardrails, `${fp}.guardrails`)}` +
    `,"config_push":${b(f.config_push, `${fp}.config_push`)}` +
    `,"metrics_export":${b(f.metrics_export, `${fp}.metrics_export`)}` +
    `,"concurrent_requests":${u(f.concurrent_requests, `${fp}.concurrent_requests`, U32)}` +
    `,"cancellation":${b(f.cancellation, `${fp}.cancellation`)}` +
    `,"flow_control":${b(f.flow_control, `${fp}.flow_control`)}` +
    `,"health_reporting":${b(f.health_reporting, `${fp}.health_reporting`)}}` +
    // UdsLimits has exactly these three fields; max_memory / max_processing_time_ms are gRPC-only.
    `,"limits":{"max_body_size":${u(l.max_body_size, `${lp}.max_body_size`)}` +
    `,"max_concurrency":${u(l.max_concurrency, `${lp}.max_concurrency`, U32)}` +
    `,"preferred_chunk_size":${u(l.preferred_chunk_size, `${lp}.preferred_chunk_size`)}}}`
  );
}

export function handshakeRequestJson(m: HandshakeRequest): string {
  const x = obj(m, 'HandshakeRequest');
  const versions = list(x.supported_versions, 'HandshakeRequest.supported_versions');
  let out = '{"supported_versions":[';
  for (let i = 0; i < versions.length; i++) {
    out += `${i > 0 ? ',' : ''}${u(versions[i], `HandshakeRequest.supported_versions[${i}]`, U32)}`;
  }
  out +=
    `],"proxy_id":${s(x.proxy_id, 'HandshakeRequest.proxy_id')}` +
    `,"proxy_version":${s(x.proxy_version, 'HandshakeRequest.proxy_version')}` +
    `,"config":${anyValue(x.config)}`;
  // skip_serializing_if = "Vec::is_empty": an empty list means json-only
  const enc = optList(x.supported_encodings, 'HandshakeRequest.supported_encodings');
  if (enc.length > 0) {
    out += ',"supported_encodings":[';
    for (let i = 0; i < enc.length; i++) {
      out += `${i > 0 ? ',' : ''}${q(encodingName(enc[i], `HandshakeRequest.supported_encodings[${i}]`))}`;
    }
    out += ']';
  }
  return `${out}}`;
}

export function handshakeResponseJson(m: HandshakeResponse): string {
  const x = obj(m, 'HandshakeResponse');
  let out =
    `{"protocol_version":${u(x.protocol_version, 'HandshakeResponse.protocol_version', U32)}` +
    `,"capabilities":${capabilities(x.capabilities as AgentCapabilities, 'HandshakeResponse.capabilities')}` +
    `,"success":${b(x.success, 'HandshakeResponse.success')}` +
    `,"error":${ns(x.error, 'HandshakeResponse.error')}` +
    `,"encoding":${q(encodingName(x.encoding ?? 'json', 'HandshakeResponse.encoding'))}`;
  if (x.picket !== undefined && x.picket !== null) {
    // picket extension: an extra key Rust proxies ignore
    const p = obj(x.picket, 'HandshakeResponse.picket');
    out += `,"picket":{"version":${u(p.version, 'HandshakeResponse.picket.version', U32)},"binary_bodies":${b(p.binary_bodies, 'HandshakeResponse.picket.binary_bodies')}}`;
  }
  return `${out}}`;
}

export function registrationRequestJson(m: RegistrationRequest): string {
  const x = obj(m, 'RegistrationRequest');
  return (
    `{"protocol_version":${u(x.protocol_version, 'RegistrationRequest.protocol_version', U32)}` +
    `,"agent_id":${s(x.agent_id, 'RegistrationRequest.agent_id')}` +
    `,"capabilities":${capabilities(x.capabilities as AgentCapabilities, 'RegistrationRequest.capabilities')}` +
    `,"auth_token":${ns(x.auth_token, 'RegistrationRequest.auth_token')}` +
    `,"metadata":${anyValue(x.metadata)}}`
  );
}

export function registrationResponseJson(m: RegistrationResponse): string {
  const x = obj(m, 'RegistrationResponse');
  return (
    `{"success":${b(x.success, 'RegistrationResponse.success')}` +
    `,"error":${ns(x.error, 'RegistrationResponse.error')}` +
    `,"proxy_id":${s(x.proxy_id, 'RegistrationResponse.proxy_id')}` +
    `,"proxy_version":${s(x.proxy_version, 'RegistrationResponse.proxy_version')}` +
    `,"connection_id":${s(x.connection_id, 'RegistrationResponse.connection_id')}}`
  );
}

// ---------------------------------------------------------------- control messages

/** Cancel is built with `json!` in Rust: keys sorted. */
export function cancelJson(m: CancelMessage): string {
  const x = obj(m, 'Cancel');
  return (
    `{"correlation_id":${s(x.correlation_id, 'Cancel.correlation_id')}` +
    `,"reason":${u(x.reason, 'Cancel.reason', U32)}` +
    `,"timestamp_ms":${u(x.timestamp_ms, 'Cancel.timestamp_ms')}}`
  );
}

export function pingJson(m: PingMessage): string {
  const x = obj(m, 'Ping');
  return `{"sequence":${u(x.sequence, 'Ping.sequence')},"timestamp_ms":${u(x.timestamp_ms, 'Ping.timestamp_ms')}}`;
}

export function healthJson(m: HealthStatusMessage): string {
  const x = obj(m, 'HealthStatus');
  let out = `{"state":${int(x.state, 'HealthStatus.state')}`;
  if (x.message !== undefined && x.message !== null)
    out += `,"message":${s(x.message, 'HealthStatus.message')}`;
  return `${out}}`;
}

export function flowControlJson(m: FlowControlMessage): string {
  const x = obj(m, 'FlowControl');
  return `{"action":${int(x.action, 'FlowControl.action')}}`;
}

/** Histogram bucket bound: a number, or `"+Inf"` for infinity as Rust writes it. */
export function leValue(v: unknown, path: string): number | string {
  const n = num(v, path);
  if (n === Number.POSITIVE_INFINITY) return '+Inf';
  if (n === Number.NEGATIVE_INFINITY) return '-Inf';
  return n;
}

function metricHead(x: Record<string, unknown>, path: string): string {
  let out = `{"name":${s(x.name, `${path}.name`)}`;
  if (x.help !== undefined && x.help !== null) out += `,"help":${s(x.help, `${path}.help`)}`;
  return `${out},"labels":${strMap(x.labels, `${path}.labels`)}`;
}

export function metricsJson(m: MetricsReport): string {
  const x = obj(m, 'MetricsReport');
  const counters = optList(x.counters, 'MetricsReport.counters');
  const gauges = optList(x.gauges, 'MetricsReport.gauges');
  const histograms = optList(x.histograms, 'MetricsReport.histograms');
  let out =
    `{"agent_id":${s(x.agent_id, 'MetricsReport.agent_id')}` +
    `,"timestamp_ms":${u(x.timestamp_ms, 'MetricsReport.timestamp_ms')}` +
    `,"interval_ms":${u(x.interval_ms, 'MetricsReport.interval_ms')},"counters":[`;
  counters.forEach((c, i) => {
    const p = `MetricsReport.counters[${i}]`;
    const o = obj(c, p);
    out += `${i > 0 ? ',' : ''}${metricHead(o, p)},"value":${u(o.value, `${p}.value`)}}`;
  });
  out += '],"gauges":[';
  gauges.forEach((g, i) => {
    const p = `MetricsReport.gauges[${i}]`;
    const o = obj(g, p);
    out += `${i > 0 ? ',' : ''}${metricHead(o, p)},"value":${formatF64(num(o.value, `${p}.value`))}}`;
  });
  out += '],"histograms":[';
  histograms.forEach((h, i) => {
    const p = `MetricsReport.histograms[${i}]`;
    const o = obj(h, p);
    out +=
      `${i > 0 ? ',' : ''}${metricHead(o, p)},"sum":${formatF64(num(o.sum, `${p}.sum`))}` +
      `,"count":${u(o.count, `${p}.count`)},"buckets":[`;
    list(o.buckets, `${p}.buckets`).forEach((bk, j) => {
      const bp = `${p}.buckets[${j}]`;
      const bo = obj(bk, bp);
      const le = leValue(bo.le, `${bp}.le`);
      out += `${j > 0 ? ',' : ''}{"le":${typeof le === 'string' ? q(le) : formatF64(le)},"count":${u(bo.count, `${bp}.count`)}}`;
    });
    out += ']}';
  });
  return `${out}]}`;
}

function updateType(v: unknown, path: string): string {
  const t = obj(v, path);
  const type = str(t.type, `${path}.type`);
  switch (type) {
    case 'request_reload':
      return '{"type":"request_reload"}';
    case 'rule_update': {
      const rules = list(t.rules, `${path}.rules`);
      let out = `{"type":"rule_update","rule_set":${s(t.rule_set, `${path}.rule_set`)},"rules":[`;
      rules.forEach((r, i) => {
        const p = `${path}.rules[${i}]`;
        const o = obj(r, p);
        out +=
          `${i > 0 ? ',' : ''}{"id":${s(o.id, `${p}.id`)},"priority":${int(o.priority, `${p}.priority`)}` +
          `,"definition":${anyValue(o.definition)},"enabled":${b(o.enabled, `${p}.enabled`)}` +
          `,"description":${ns(o.description, `${p}.description`)},"tags":${strArray(o.tags, `${p}.tags`)}}`;
      });
      return `${out}],"remove_rules":${strArray(list(t.remove_rules, `${path}.remove_rules`), `${path}.remove_rules`)}}`;
    }
    case 'list_update':
      return (
        `{"type":"list_update","list_id":${s(t.list_id, `${path}.list_id`)}` +
        `,"add":${strArray(list(t.add, `${path}.add`), `${path}.add`)}` +
        `,"remove":${strArray(list(t.remove, `${path}.remove`), `${path}.remove`)}}`
      );
    case 'restart_required':
      return (
        `{"type":"restart_required","reason":${s(t.reason, `${path}.reason`)}` +
        `,"grace_period_ms":${u(t.grace_period_ms, `${path}.grace_period_ms`)}}`
      );
    case 'config_error':
      return `{"type":"config_error","error":${s(t.error, `${path}.error`)},"field":${ns(t.field, `${path}.field`)}}`;
    default:
      throw cannotEncode(`${path}.type`, `unknown update type "${type}"`);
  }
}

export function configUpdateJson(m: ConfigUpdateRequest): string {
  const x = obj(m, 'ConfigUpdateRequest');
  return (
    `{"update_type":${updateType(x.update_type, 'ConfigUpdateRequest.update_type')}` +
    `,"request_id":${s(x.request_id, 'ConfigUpdateRequest.request_id')}` +
    `,"timestamp_ms":${u(x.timestamp_ms, 'ConfigUpdateRequest.timestamp_ms')}}`
  );
}

const SEVERITIES: readonly string[] = ['low', 'medium', 'high', 'critical'];

/** GuardrailResponse JSON text as Rust writes it (f64 `confidence` keeps `.0`; None fields omitted). */
export function guardrailResponseJson(r: GuardrailResponse): string {
  const x = obj(r, 'GuardrailResponse');
  const dets = optList(x.detections, 'GuardrailResponse.detections');
  let out =
    `{"detected":${b(x.detected, 'GuardrailResponse.detected')}` +
    `,"confidence":${formatF64(x.confidence === undefined ? 0 : num(x.confidence, 'GuardrailResponse.confidence'))}` +
    ',"detections":[';
  dets.forEach((d, i) => {
    const p = `GuardrailResponse.detections[${i}]`;
    const o = obj(d, p);
    const sev = o.severity === undefined ? 'medium' : str(o.severity, `${p}.severity`);
    if (!SEVERITIES.includes(sev)) throw cannotEncode(`${p}.severity`, `unknown severity "${sev}"`);
    out += `${i > 0 ? ',' : ''}{"category":${s(o.category, `${p}.category`)},"description":${s(o.description, `${p}.description`)},"severity":"${sev}"`;
    if (o.confidence !== undefined && o.confidence !== null) {
      out += `,"confidence":${formatF64(num(o.confidence, `${p}.confidence`))}`;
    }
    if (o.span !== undefined && o.span !== null) {
      const sp = obj(o.span, `${p}.span`);
      out += `,"span":{"start":${u(sp.start, `${p}.span.start`)},"end":${u(sp.end, `${p}.span.end`)}}`;
    }
    out += '}';
  });
  out += ']';
  if (x.redacted_content !== undefined && x.redacted_content !== null) {
    out += `,"redacted_content":${s(x.redacted_content, 'GuardrailResponse.redacted_content')}`;
  }
  return `${out}}`;
}
