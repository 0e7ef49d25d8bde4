/**
 * Runtime validation of decoded, untrusted payloads. Each `parse*` takes what a
 * codec decoded and returns a complete typed message (defaults filled in the way
 * serde fills them) or throws `AgentProtocolError('INVALID_MESSAGE')` naming the
 * field. Like serde, structs may arrive as maps or as positional arrays (rmp-serde
 * writes arrays), unknown keys are ignored and variant names are case-sensitive.
 */
import { invalidMessage } from './errors.js';
import type {
  AgentCapabilities,
  AgentEvent,
  AgentFeatures,
  AgentLimits,
  AgentResponse,
  AuditMetadata,
  BodyMutation,
  CancelMessage,
  ConfigUpdateRequest,
  ConfigUpdateType,
  ConfigureEvent,
  CounterMetric,
  Decision,
  Encoding,
  EventMap,
  EventType,
  FlowControlMessage,
  GaugeMetric,
  GuardrailDetection,
  GuardrailInspectEvent,
  GuardrailResponse,
  HandshakeRequest,
  HandshakeResponse,
  HeaderOp,
  Headers,
  HealthStatusMessage,
  HistogramMetric,
  MetricsReport,
  PicketExtension,
  PingMessage,
  RegistrationRequest,
  RegistrationResponse,
  RequestBodyChunkEvent,
  RequestCompleteEvent,
  RequestHeadersEvent,
  RequestMetadata,
  ResponseBodyChunkEvent,
  ResponseHeadersEvent,
  RuleDefinition,
  WebSocketDecision,
  WebSocketFrameEvent,
} from './types.js';

type Obj = Record<string, unknown>;
const MISSING = Symbol('missing');

/** Reads a struct given as a map or as a positional array with `fields` order. */
class Struct {
  private readonly obj: Obj | undefined;
  private readonly arr: unknown[] | undefined;
  constructor(
    value: unknown,
    readonly path: string,
    private readonly fields: readonly string[],
  ) {
    if (Array.isArray(value)) {
      if (value.length > fields.length) {
        throw invalidMessage(
          path,
          `array has ${value.length} elements, at most ${fields.length} expected`,
        );
      }
      this.arr = value;
    } else if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
      this.obj = value as Obj;
    } else {
      throw invalidMessage(path, `expected an object, got ${describe(value)}`);
    }
  }

  raw(key: string): unknown {
    if (this.arr) {
      const i = this.fields.indexOf(key);
      return i < this.arr.length ? this.arr[i] : MISSING;
    }
    const obj = this.obj as Obj;
    return Object.hasOwn(obj, key) ? obj[key] : MISSING;
  }
  at(key: string): string {
    return `${this.path}.${key}`;
  }
  req(key: string): unknown {
    const v = this.raw(key);
    if (v === MISSING) throw invalidMessage(this.at(key), 'missing required field');
    return v;
  }
  str(key: string): string {
    return asString(this.req(key), this.at(key));
  }
  strDefault(key: string, fallback: string): string {
    const v = this.raw(key);
    return v === MISSING || v === null ? fallback : asString(v, this.at(key));
  }
  optStr(key: string): string | null {
    const v = this.raw(key);
    return v === MISSING || v === null ? null : asString(v, this.at(key));
  }
  bool(key: string): boolean {
    return asBool(this.req(key), this.at(key));
  }
  boolDefault(key: string, fallback: boolean): boolean {
    const v = this.raw(key);
    return v === MISSING || v === null ? fallback : asBool(v, this.at(key));
  }
  uint(key: string, max = Number.MAX_SAFE_INTEGER): number {
    return asUint(this.req(key), this.at(key), max);
  }
  uintDefault(key: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.raw(key);
    return v === MISSING || v === null ? fallback : asUint(v, this.at(key), max);
  }
  optUint(key: string, max = Number.MAX_SAFE_INTEGER): number | null {
    const v = this.raw(key);
    return v === MISSING || v === null ? null : asUint(v, this.at(key), max);
  }
  num(key: string): number {
    return asNumber(this.req(key), this.at(key));
  }
  numDefault(key: string, fallback: number): number {
    const v = this.raw(key);
    return v === MISSING || v === null ? fallback : asNumber(v, this.at(key));
  }
  strList(key: string, required = false): string[] {
    const v = required ? this.req(key) : this.raw(key);
    if (v === MISSING || (v === null && !required)) return [];
    return asList(v, this.at(key), asString);
  }
  strMap(key: string, required = false): Record<string, string> {
    const v = required ? this.req(key) : this.raw(key);
    if (v === MISSING || (v === null && !required)) return {};
    return asStringMap(v, this.at(key));
  }
  bytes(key: string): Uint8Array {
    return asBytes(this.req(key), this.at(key));
  }
  any(key: string): unknown {
    const v = this.raw(key);
    return v === MISSING ? null : v;
  }
}

const U16 = 0xffff;
const U32 = 0xffffffff;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'binary data';
  if (typeof v === 'string') return 'a string';
  // Objects can override toString (even with a non-function): never call it.
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v).slice(0, 32)}`;
}
function asString(v: unknown, path: string): string {
  if (typeof v === 'string') return v;
  // rmp-serde accepts `bin` for a String field when it is valid UTF-8.
  if (v instanceof Uint8Array) {
    try {
      return UTF8.decode(v);
    } catch {
      throw invalidMessage(path, 'binary data is not valid UTF-8');
    }
  }
  throw invalidMessage(path, `expected a string, got ${describe(v)}`);
}
const UTF8 = new TextDecoder('utf-8', { fatal: true });
function asBool(v: unknown, path: string): boolean {
  if (typeof v === 'boolean') return v;
  throw invalidMessage(path, `expected a boolean, got ${describe(v)}`);
}
function asNumber(v: unknown, path: string): number {
  if (typeof v === 'number' && !Number.isNaN(v)) return v;
  throw invalidMessage(path, `expected a number, got ${describe(v)}`);
}
function asUint(v: unknown, path: string, max: number): number {
  if (typeof v === 'bigint' && v >= 0n && v <= BigInt(max)) return Number(v);
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max) return v;
  throw invalidMessage(path, `expected an integer from 0 to ${max}, got ${describe(v)}`);
}
function asInt(v: unknown, path: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw invalidMessage(path, `expected an integer, got ${describe(v)}`);
}
function asList<T>(v: unknown, path: string, item: (x: unknown, p: string) => T): T[] {
  if (!Array.isArray(v)) throw invalidMessage(path, `expected an array, got ${describe(v)}`);
  const out = new Array<T>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = item(v[i], `${path}[${i}]`);
  return out;
}
function asObject(v: unknown, path: string): Obj {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)) {
    return v as Obj;
  }
  throw invalidMessage(path, `expected an object, got ${describe(v)}`);
}
/**
 * Sets `key` as an own data property: a plain assignment of `"__proto__"` (legal
 * in a JSON header map) would replace the object's prototype and lose the entry.
 * For every decoder that builds a map from keys it does not control.
 */
export function putOwn<T>(out: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') {
    Object.defineProperty(out, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    out[key] = value;
  }
}
function asStringMap(v: unknown, path: string): Record<string, string> {
  const obj = asObject(v, path);
  const out: Record<string, string> = {};
  for (const k of Object.keys(obj)) putOwn(out, k, asString(obj[k], `${path}.${k}`));
  return out;
}
function asHeaders(v: unknown, path: string): Headers {
  const obj = asObject(v, path);
  const out: Headers = {};
  for (const k of Object.keys(obj)) putOwn(out, k, asList(obj[k], `${path}.${k}`, asString));
  return out;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** Body bytes: `bin` as is, or standard padded base64 text (JSON, and msgpack from Rust). */
export function asBytes(v: unknown, path: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') {
    if (v.length % 4 !== 0 || !BASE64.test(v)) {
      throw invalidMessage(path, 'expected standard padded base64');
    }
    const buf = Buffer.from(v, 'base64');
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  throw invalidMessage(path, `expected base64 text or binary data, got ${describe(v)}`);
}

/** Reads an externally tagged enum value: `"unit"` or `{variant: payload}`. */
function variant(v: unknown, path: string): [string, unknown] {
  if (typeof v === 'string') return [v, null];
  const obj = asObject(v, path);
  const keys = Object.keys(obj);
  if (keys.length !== 1) {
    throw invalidMessage(path, `expected a string or a single-key object, got ${keys.length} keys`);
  }
  const key = keys[0] as string;
  return [key, obj[key]];
}

// ---------------------------------------------------------------- AgentResponse

export function parseDecision(v: unknown, path = 'decision'): Decision {
  const [name, payload] = variant(v, path);
  switch (name) {
    case 'allow':
      if (payload !== null && payload !== undefined) {
        throw invalidMessage(path, '"allow" carries no fields');
      }
      return 'allow';
    case 'block': {
      const s = new Struct(payload, `${path}.block`, ['status', 'body', 'headers']);
      const headersRaw = s.raw('headers');
      return {
        block: {
          status: s.uint('status', U16),
          body: s.optStr('body'),
          headers:
            headersRaw === MISSING || headersRaw === null
              ? null
              : asStringMap(headersRaw, s.at('headers')),
        },
      };
    }
    case 'redirect': {
      const s = new Struct(payload, `${path}.redirect`, ['url', 'status']);
      return { redirect: { url: s.str('url'), status: s.uint('status', U16) } };
    }
    case 'challenge': {
      const s = new Struct(payload, `${path}.challenge`, ['challenge_type', 'params']);
      return {
        challenge: { challenge_type: s.str('challenge_type'), params: s.strMap('params', true) },
      };
    }
    default:
      throw invalidMessage(path, `unknown decision "${name}" (allow, block, redirect, challenge)`);
  }
}

export function parseHeaderOp(v: unknown, path = 'header_op'): HeaderOp {
  const [name, payload] = variant(v, path);
  switch (name) {
    case 'set':
    case 'add': {
      const s = new Struct(payload, `${path}.${name}`, ['name', 'value']);
      const nv = { name: s.str('name'), value: s.str('value') };
      return name === 'set' ? { set: nv } : { add: nv };
    }
    case 'remove': {
      const s = new Struct(payload, `${path}.remove`, ['name']);
      return { remove: { name: s.str('name') } };
    }
    default:
      throw invalidMessage(path, `unknown header operation "${name}" (set, add, remove)`);
  }
}

const AUDIT_FIELDS = ['tags', 'rule_ids', 'confidence', 'reason_codes', 'custom'];
export function parseAudit(v: unknown, path = 'audit'): AuditMetadata {
  if (v === null || v === undefined)
    return { tags: [], rule_ids: [], confidence: null, reason_codes: [], custom: {} };
  const s = new Struct(v, path, AUDIT_FIELDS);
  const confidence = s.raw('confidence');
  const custom = s.raw('custom');
  return {
    tags: s.strList('tags'),
    rule_ids: s.strList('rule_ids'),
    confidence:
      confidence === MISSING || confidence === null
        ? null
        : asNumber(confidence, s.at('confidence')),
    reason_codes: s.strList('reason_codes'),
    custom: custom === MISSING || custom === null ? {} : { ...asObject(custom, s.at('custom')) },
  };
}

function parseBodyMutation(v: unknown, path: string): BodyMutation | null {
  if (v === null || v === MISSING) return null;
  const s = new Struct(v, path, ['data', 'chunk_index']);
  return { data: s.optStr('data'), chunk_index: s.uintDefault('chunk_index', 0, U32) };
}

export function parseWebSocketDecision(v: unknown, path = 'websocket_decision'): WebSocketDecision {
  const [name, payload] = variant(v, path);
  if (name === 'allow' || name === 'drop') return name;
  if (name === 'close') {
    const s = new Struct(payload, `${path}.close`, ['code', 'reason']);
    return { close: { code: s.uint('code', U16), reason: s.str('reason') } };
  }
  throw invalidMessage(path, `unknown websocket decision "${name}" (allow, drop, close)`);
}

const RESPONSE_FIELDS = [
  'version',
  'decision',
  'request_headers',
  'response_headers',
  'routing_metadata',
  'audit',
  'needs_more',
  'request_body_mutation',
  'response_body_mutation',
  'websocket_decision',
];

/** An AgentResponse (frame 0x20): `version` and `decision` required, everything else defaults. */
export function parseAgentResponse(v: unknown, path = 'AgentResponse'): AgentResponse {
  const s = new Struct(v, path, RESPONSE_FIELDS);
  const ops = (key: string): HeaderOp[] => {
    const raw = s.raw(key);
    return raw === MISSING || raw === null ? [] : asList(raw, s.at(key), parseHeaderOp);
  };
  const audit = s.raw('audit');
  const ws = s.raw('websocket_decision');
  return {
    version: s.uint('version', U32),
    decision: parseDecision(s.req('decision'), s.at('decision')),
    request_headers: ops('request_headers'),
    response_headers: ops('response_headers'),
    routing_metadata: s.strMap('routing_metadata'),
    audit: parseAudit(audit === MISSING ? null : audit, s.at('audit')),
    needs_more: s.boolDefault('needs_more', false),
    request_body_mutation: parseBodyMutation(
      s.raw('request_body_mutation'),
      s.at('request_body_mutation'),
    ),
    response_body_mutation: parseBodyMutation(
      s.raw('response_body_mutation'),
      s.at('response_body_mutation'),
    ),
    websocket_decision:
      ws === MISSING || ws === null ? null : parseWebSocketDecision(ws, s.at('websocket_decision')),
  };
}

/** The routing key of a reply: `audit.custom.correlation_id` when it is a string. */
export function responseCorrelationId(r: AgentResponse): string | undefined {
  const id = r.audit.custom.correlation_id;
  return typeof id === 'string' ? id : undefined;
}

// ---------------------------------------------------------------- events

const METADATA_FIELDS = [
  'correlation_id',
  'request_id',
  'client_ip',
  'client_port',
  'server_name',
  'protocol',
  'tls_version',
  'tls_cipher',
  'route_id',
  'upstream_id',
  'timestamp',
  'traceparent',
];

export function parseRequestMetadata(v: unknown, path = 'metadata'): RequestMetadata {
  const s = new Struct(v, path, METADATA_FIELDS);
  const m: RequestMetadata = {
    correlation_id: s.str('correlation_id'),
    request_id: s.str('request_id'),
    client_ip: s.str('client_ip'),
    client_port: s.uint('client_port', U16),
    server_name: s.optStr('server_name'),
    protocol: s.str('protocol'),
    tls_version: s.optStr('tls_version'),
    tls_cipher: s.optStr('tls_cipher'),
    route_id: s.optStr('route_id'),
    upstream_id: s.optStr('upstream_id'),
    timestamp: s.str('timestamp'),
  };
  const tp = s.optStr('traceparent');
  if (tp !== null) m.traceparent = tp;
  return m;
}

export function parseRequestHeadersEvent(v: unknown, path = 'RequestHeaders'): RequestHeadersEvent {
  // msgpack events from a Rust proxy carry an extra top-level correlation_id: ignored.
  const s = new Struct(v, path, ['metadata', 'method', 'uri', 'headers']);
  return {
    metadata: parseRequestMetadata(s.req('metadata'), s.at('metadata')),
    method: s.str('method'),
    uri: s.str('uri'),
    headers: asHeaders(s.req('headers'), s.at('headers')),
  };
}

const REQUEST_CHUNK_FIELDS = [
  'correlation_id',
  'data',
  'is_last',
  'total_size',
  'chunk_index',
  'bytes_received',
];
export function parseRequestBodyChunkEvent(
  v: unknown,
  path = 'RequestBodyChunk',
): RequestBodyChunkEvent {
  const s = new Struct(v, path, REQUEST_CHUNK_FIELDS);
  return {
    correlation_id: s.str('correlation_id'),
    data: s.bytes('data'),
    is_last: s.bool('is_last'),
    total_size: s.optUint('total_size'),
    chunk_index: s.uintDefault('chunk_index', 0, U32),
    bytes_received: s.uintDefault('bytes_received', 0),
  };
}

export function parseResponseHeadersEvent(
  v: unknown,
  path = 'ResponseHeaders',
): ResponseHeadersEvent {
  const s = new Struct(v, path, ['correlation_id', 'status', 'headers']);
  return {
    correlation_id: s.str('correlation_id'),
    status: s.uint('status', U16),
    headers: asHeaders(s.req('headers'), s.at('headers')),
  };
}

const RESPONSE_CHUNK_FIELDS = [
  'correlation_id',
  'data',
  'is_last',
  'total_size',
  'chunk_index',
  'bytes_sent',
];
export function parseResponseBodyChunkEvent(
  v: unknown,
  path = 'ResponseBodyChunk',
): ResponseBodyChunkEvent {
  const s = new Struct(v, path, RESPONSE_CHUNK_FIELDS);
  return {
    correlation_id: s.str('correlation_id'),
    data: s.bytes('data'),
    is_last: s.bool('is_last'),
    total_size: s.optUint('total_size'),
    chunk_index: s.uintDefault('chunk_index', 0, U32),
    bytes_sent: s.uintDefault('bytes_sent', 0),
  };
}

const COMPLETE_FIELDS = [
  'correlation_id',
  'status',
  'duration_ms',
  'request_body_size',
  'response_body_size',
  'upstream_attempts',
  'error',
];
export function parseRequestCompleteEvent(
  v: unknown,
  path = 'RequestComplete',
): RequestCompleteEvent {
  const s = new Struct(v, path, COMPLETE_FIELDS);
  return {
    correlation_id: s.str('correlation_id'),
    status: s.uint('status', U16),
    duration_ms: s.uint('duration_ms'),
    request_body_size: s.uint('request_body_size'),
    response_body_size: s.uint('response_body_size'),
    upstream_attempts: s.uint('upstream_attempts', U32),
    error: s.optStr('error'),
  };
}

const WS_FIELDS = [
  'correlation_id',
  'opcode',
  'data',
  'client_to_server',
  'frame_index',
  'fin',
  'route_id',
  'client_ip',
];
export function parseWebSocketFrameEvent(v: unknown, path = 'WebSocketFrame'): WebSocketFrameEvent {
  const s = new Struct(v, path, WS_FIELDS);
  return {
    correlation_id: s.str('correlation_id'),
    opcode: s.str('opcode'),
    data: s.bytes('data'),
    client_to_server: s.bool('client_to_server'),
    frame_index: s.uint('frame_index'),
    fin: s.bool('fin'),
    route_id: s.optStr('route_id'),
    client_ip: s.str('client_ip'),
  };
}

const GUARDRAIL_FIELDS = [
  'correlation_id',
  'inspection_type',
  'content',
  'model',
  'categories',
  'route_id',
  'metadata',
];
export function parseGuardrailInspectEvent(
  v: unknown,
  path = 'GuardrailInspect',
): GuardrailInspectEvent {
  const s = new Struct(v, path, GUARDRAIL_FIELDS);
  const type = s.str('inspection_type');
  if (type !== 'prompt_injection' && type !== 'pii_detection') {
    throw invalidMessage(
      s.at('inspection_type'),
      `unknown value "${type}" (prompt_injection, pii_detection)`,
    );
  }
  const e: GuardrailInspectEvent = {
    correlation_id: s.str('correlation_id'),
    inspection_type: type,
    content: s.str('content'),
    categories: s.strList('categories'),
    metadata: s.strMap('metadata'),
  };
  const model = s.optStr('model');
  if (model !== null) e.model = model;
  const route = s.optStr('route_id');
  if (route !== null) e.route_id = route;
  return e;
}

export function parseConfigureEvent(v: unknown, path = 'Configure'): ConfigureEvent {
  const s = new Struct(v, path, ['correlation_id', 'config', 'config_version']);
  return {
    correlation_id: s.strDefault('correlation_id', ''),
    config: s.any('config'),
    config_version: s.optStr('config_version'),
  };
}

const EVENT_PARSERS: { [K in EventType]: (v: unknown) => EventMap[K] } = {
  configure: parseConfigureEvent,
  request_headers: parseRequestHeadersEvent,
  request_body_chunk: parseRequestBodyChunkEvent,
  response_headers: parseResponseHeadersEvent,
  response_body_chunk: parseResponseBodyChunkEvent,
  request_complete: parseRequestCompleteEvent,
  web_socket_frame: parseWebSocketFrameEvent,
  guardrail_inspect: parseGuardrailInspectEvent,
};

/** Parses the event of the given type. */
export function parseEvent<K extends EventType>(type: K, v: unknown): EventMap[K] {
  return EVENT_PARSERS[type](v) as EventMap[K];
}

/** The correlation id of any event (RequestHeaders keeps it in its metadata). */
export function eventCorrelationId(e: AgentEvent): string {
  return 'metadata' in e &&
    typeof e.metadata === 'object' &&
    e.metadata !== null &&
    'correlation_id' in e.metadata
    ? (e as RequestHeadersEvent).metadata.correlation_id
    : (e as { correlation_id: string }).correlation_id;
}

/**
 * Best-effort correlation id of a payload that failed validation, so the
 * failure can still be answered: top-level `correlation_id`, else
 * `metadata.correlation_id` (what a Rust agent does too).
 */
export function salvageCorrelationId(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Obj;
  if (typeof o.correlation_id === 'string') return o.correlation_id;
  const m = o.metadata;
  if (
    m !== null &&
    typeof m === 'object' &&
    !Array.isArray(m) &&
    typeof (m as Obj).correlation_id === 'string'
  ) {
    return (m as Obj).correlation_id as string;
  }
  if (Array.isArray(m) && typeof m[0] === 'string') return m[0];
  return undefined;
}

// ---------------------------------------------------------------- handshake and registration

const ENCODINGS: readonly Encoding[] = ['json', 'msgpack', 'cbor'];
function asEncoding(v: unknown, path: string): Encoding {
  const s = asString(v, path);
  if ((ENCODINGS as readonly string[]).includes(s)) return s as Encoding;
  throw invalidMessage(path, `unknown encoding "${s}" (json, msgpack, cbor)`);
}

const FEATURE_FIELDS = [
  'streaming_body',
  'websocket',
  'guardrails',
  'config_push',
  'metrics_export',
  'concurrent_requests',
  'cancellation',
  'flow_control',
  'health_reporting',
];
const LIMIT_FIELDS = [
  'max_body_size',
  'max_concurrency',
  'preferred_chunk_size',
  'max_memory',
  'max_processing_time_ms',
];
const CAPABILITY_FIELDS = ['agent_id', 'name', 'version', 'supported_events', 'features', 'limits'];

/** UdsCapabilities: every field required, as the Rust proxy requires. */
export function parseCapabilities(v: unknown, path = 'capabilities'): AgentCapabilities {
  const s = new Struct(v, path, CAPABILITY_FIELDS);
  const f = new Struct(s.req('features'), s.at('features'), FEATURE_FIELDS);
  const features: AgentFeatures = {
    streaming_body: f.bool('streaming_body'),
    websocket: f.bool('websocket'),
    guardrails: f.bool('guardrails'),
    config_push: f.bool('config_push'),
    metrics_export: f.bool('metrics_export'),
    concurrent_requests: f.uint('concurrent_requests', U32),
    cancellation: f.bool('cancellation'),
    flow_control: f.bool('flow_control'),
    health_reporting: f.bool('health_reporting'),
  };
  const l = new Struct(s.req('limits'), s.at('limits'), LIMIT_FIELDS);
  const limits: AgentLimits = {
    max_body_size: l.uint('max_body_size'),
    max_concurrency: l.uint('max_concurrency', U32),
    preferred_chunk_size: l.uint('preferred_chunk_size'),
  };
  const mem = l.optUint('max_memory');
  if (mem !== null) limits.max_memory = mem;
  const mpt = l.optUint('max_processing_time_ms');
  if (mpt !== null) limits.max_processing_time_ms = mpt;
  return {
    agent_id: s.str('agent_id'),
    name: s.str('name'),
    version: s.str('version'),
    supported_events: asList(s.req('supported_events'), s.at('supported_events'), asInt),
    features,
    limits,
  };
}

export function parseHandshakeRequest(v: unknown, path = 'HandshakeRequest'): HandshakeRequest {
  const s = new Struct(v, path, [
    'supported_versions',
    'proxy_id',
    'proxy_version',
    'config',
    'supported_encodings',
  ]);
  const enc = s.raw('supported_encodings');
  return {
    supported_versions: asList(s.req('supported_versions'), s.at('supported_versions'), (x, p) =>
      asUint(x, p, U32),
    ),
    proxy_id: s.str('proxy_id'),
    proxy_version: s.str('proxy_version'),
    config: s.any('config'),
    // Unknown names are kept out rather than failing, so a picket agent never
    // drops a proxy that offers an encoding it does not know.
    supported_encodings:
      enc === MISSING || enc === null
        ? []
        : asList(enc, s.at('supported_encodings'), asString).filter((e): e is Encoding =>
            (ENCODINGS as readonly string[]).includes(e),
          ),
  };
}

export function parseHandshakeResponse(v: unknown, path = 'HandshakeResponse'): HandshakeResponse {
  const s = new Struct(v, path, [
    'protocol_version',
    'capabilities',
    'success',
    'error',
    'encoding',
  ]);
  const enc = s.raw('encoding');
  const r: HandshakeResponse = {
    protocol_version: s.uint('protocol_version', U32),
    capabilities: parseCapabilities(s.req('capabilities'), s.at('capabilities')),
    success: s.bool('success'),
    error: s.optStr('error'),
    encoding: enc === MISSING || enc === null ? 'json' : asEncoding(enc, s.at('encoding')),
  };
  const ext = s.raw('picket');
  if (ext !== MISSING && ext !== null) r.picket = parsePicketExtension(ext, s.at('picket'));
  return r;
}

function parsePicketExtension(v: unknown, path: string): PicketExtension {
  const s = new Struct(v, path, ['version', 'binary_bodies']);
  return {
    version: s.uintDefault('version', 1, U32),
    binary_bodies: s.boolDefault('binary_bodies', false),
  };
}

export function parseRegistrationRequest(
  v: unknown,
  path = 'RegistrationRequest',
): RegistrationRequest {
  const s = new Struct(v, path, [
    'protocol_version',
    'agent_id',
    'capabilities',
    'auth_token',
    'metadata',
  ]);
  return {
    protocol_version: s.uint('protocol_version', U32),
    agent_id: s.str('agent_id'),
    capabilities: parseCapabilities(s.req('capabilities'), s.at('capabilities')),
    auth_token: s.optStr('auth_token'),
    metadata: s.any('metadata'),
  };
}

export function parseRegistrationResponse(
  v: unknown,
  path = 'RegistrationResponse',
): RegistrationResponse {
  const s = new Struct(v, path, ['success', 'error', 'proxy_id', 'proxy_version', 'connection_id']);
  return {
    success: s.bool('success'),
    error: s.optStr('error'),
    proxy_id: s.str('proxy_id'),
    proxy_version: s.str('proxy_version'),
    connection_id: s.str('connection_id'),
  };
}

// ---------------------------------------------------------------- control messages

export function parseCancel(v: unknown, path = 'Cancel'): CancelMessage {
  const s = new Struct(v, path, ['correlation_id', 'reason', 'timestamp_ms']);
  return {
    correlation_id: s.str('correlation_id'),
    reason: s.uint('reason', U32),
    timestamp_ms: s.uintDefault('timestamp_ms', 0),
  };
}

export function parsePing(v: unknown, path = 'Ping'): PingMessage {
  const s = new Struct(v, path, ['sequence', 'timestamp_ms']);
  return { sequence: s.uint('sequence'), timestamp_ms: s.uint('timestamp_ms') };
}

export function parseHealthStatus(v: unknown, path = 'HealthStatus'): HealthStatusMessage {
  const s = new Struct(v, path, ['state', 'message']);
  const state = s.raw('state');
  const msg: HealthStatusMessage = {
    state: state === MISSING || state === null ? 0 : asInt(state, s.at('state')),
  };
  const text = s.optStr('message');
  if (text !== null) msg.message = text;
  return msg;
}

export function parseFlowControl(v: unknown, path = 'FlowControl'): FlowControlMessage {
  const s = new Struct(v, path, ['action']);
  const a = s.raw('action');
  return { action: a === MISSING || a === null ? 0 : asInt(a, s.at('action')) };
}

function parseLe(v: unknown, path: string): number {
  if (typeof v === 'number') return v;
  if (v === '+Inf' || v === 'Inf' || v === 'inf' || v === '+inf') return Number.POSITIVE_INFINITY;
  if (v === '-Inf' || v === '-inf') return Number.NEGATIVE_INFINITY;
  if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
  throw invalidMessage(path, `expected a number or "+Inf", got ${describe(v)}`);
}

function parseMetricBase(s: Struct): {
  name: string;
  help?: string;
  labels: Record<string, string>;
} {
  const base: { name: string; help?: string; labels: Record<string, string> } = {
    name: s.str('name'),
    labels: s.strMap('labels'),
  };
  const help = s.optStr('help');
  if (help !== null) base.help = help;
  return base;
}

export function parseMetricsReport(v: unknown, path = 'MetricsReport'): MetricsReport {
  const s = new Struct(v, path, [
    'agent_id',
    'timestamp_ms',
    'interval_ms',
    'counters',
    'gauges',
    'histograms',
  ]);
  const list = <T>(key: string, item: (x: unknown, p: string) => T): T[] => {
    const raw = s.raw(key);
    return raw === MISSING || raw === null ? [] : asList(raw, s.at(key), item);
  };
  return {
    agent_id: s.str('agent_id'),
    timestamp_ms: s.uint('timestamp_ms'),
    interval_ms: s.uint('interval_ms'),
    counters: list('counters', (x, p): CounterMetric => {
      const c = new Struct(x, p, ['name', 'help', 'labels', 'value']);
      return { ...parseMetricBase(c), value: c.uint('value') };
    }),
    gauges: list('gauges', (x, p): GaugeMetric => {
      const g = new Struct(x, p, ['name', 'help', 'labels', 'value']);
      return { ...parseMetricBase(g), value: g.num('value') };
    }),
    histograms: list('histograms', (x, p): HistogramMetric => {
      const h = new Struct(x, p, ['name', 'help', 'labels', 'sum', 'count', 'buckets']);
      return {
        ...parseMetricBase(h),
        sum: h.num('sum'),
        count: h.uint('count'),
        buckets: asList(h.req('buckets'), h.at('buckets'), (b, bp) => {
          const bs = new Struct(b, bp, ['le', 'count']);
          return { le: parseLe(bs.req('le'), bs.at('le')), count: bs.uint('count') };
        }),
      };
    }),
  };
}

function parseRule(v: unknown, path: string): RuleDefinition {
  const s = new Struct(v, path, ['id', 'priority', 'definition', 'enabled', 'description', 'tags']);
  return {
    id: s.str('id'),
    priority: asInt(s.req('priority'), s.at('priority')),
    definition: s.any('definition'),
    enabled: s.bool('enabled'),
    description: s.optStr('description'),
    tags: s.strList('tags'),
  };
}

function parseConfigUpdateType(v: unknown, path: string): ConfigUpdateType {
  const obj = asObject(v, path);
  const type = asString(obj.type, `${path}.type`);
  const s = new Struct(obj, path, []);
  switch (type) {
    case 'request_reload':
      return { type };
    case 'rule_update':
      return {
        type,
        rule_set: s.str('rule_set'),
        rules: asList(s.req('rules'), s.at('rules'), parseRule),
        remove_rules: s.strList('remove_rules', true),
      };
    case 'list_update':
      return {
        type,
        list_id: s.str('list_id'),
        add: s.strList('add', true),
        remove: s.strList('remove', true),
      };
    case 'restart_required':
      return { type, reason: s.str('reason'), grace_period_ms: s.uint('grace_period_ms') };
    case 'config_error':
      return { type, error: s.str('error'), field: s.optStr('field') };
    default:
      throw invalidMessage(
        `${path}.type`,
        `unknown update type "${type}" (request_reload, rule_update, list_update, restart_required, config_error)`,
      );
  }
}

export function parseConfigUpdateRequest(
  v: unknown,
  path = 'ConfigUpdateRequest',
): ConfigUpdateRequest {
  const s = new Struct(v, path, ['update_type', 'request_id', 'timestamp_ms']);
  return {
    update_type: parseConfigUpdateType(s.req('update_type'), s.at('update_type')),
    request_id: s.str('request_id'),
    timestamp_ms: s.uint('timestamp_ms'),
  };
}

const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export function parseGuardrailResponse(v: unknown, path = 'GuardrailResponse'): GuardrailResponse {
  const s = new Struct(v, path, ['detected', 'confidence', 'detections', 'redacted_content']);
  const raw = s.raw('detections');
  const r: GuardrailResponse = {
    detected: s.bool('detected'),
    confidence: s.numDefault('confidence', 0),
    detections:
      raw === MISSING || raw === null
        ? []
        : asList(raw, s.at('detections'), (x, p): GuardrailDetection => {
            const d = new Struct(x, p, [
              'category',
              'description',
              'severity',
              'confidence',
              'span',
            ]);
            const sev = d.strDefault('severity', 'medium');
            if (!(SEVERITIES as readonly string[]).includes(sev)) {
              throw invalidMessage(
                d.at('severity'),
                `unknown severity "${sev}" (low, medium, high, critical)`,
              );
            }
            const det: GuardrailDetection = {
              category: d.str('category'),
              description: d.str('description'),
              severity: sev as GuardrailDetection['severity'],
            };
            const c = d.raw('confidence');
            if (c !== MISSING && c !== null) det.confidence = asNumber(c, d.at('confidence'));
            const span = d.raw('span');
            if (span !== MISSING && span !== null) {
              const sp = new Struct(span, d.at('span'), ['start', 'end']);
              det.span = { start: sp.uint('start'), end: sp.uint('end') };
            }
            return det;
          }),
  };
  const red = s.optStr('redacted_content');
  if (red !== null) r.redacted_content = red;
  return r;
}
