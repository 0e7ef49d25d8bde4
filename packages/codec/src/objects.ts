/**
 * Checked plain-object forms of messages for the binary encodings (msgpack
 * maps, CBOR maps). Each builder copies the known fields in declaration order
 * (`correlation_id` first for events, like Rust's flatten wrapper), writes
 * `null` where Rust writes `nil`, and leaves out what Rust skips — so each key
 * appears once and a Rust agent can read every msgpack event we send.
 */
import type {
  AgentResponse,
  ConfigUpdateRequest,
  EventMap,
  EventType,
  FlowControlMessage,
  HealthStatusMessage,
  MetricsReport,
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
  strList,
  strMap,
  U16,
  U32,
  uint,
} from './check.js';
import { cannotEncode } from './errors.js';
import { toBase64 } from './json.js';
import { inspectionType, leValue } from './json-messages.js';

type Obj = Record<string, unknown>;

/** Body bytes: raw (`bin` / CBOR byte string) or standard base64 text (what Rust's `String` field wants). */
function body(v: unknown, path: string, binary: boolean): Uint8Array | string {
  const b = bytes(v, path);
  return binary ? b : toBase64(b);
}

function headerMap(v: unknown, path: string): Record<string, string[]> {
  const o = obj(v, path);
  for (const k in o) {
    if (!Object.hasOwn(o, k)) continue;
    const values = o[k];
    if (!Array.isArray(values)) list(values, `${path}.${k}`);
    for (let j = 0; j < (values as unknown[]).length; j++) {
      const x = (values as unknown[])[j];
      if (typeof x !== 'string') str(x, `${path}.${k}[${j}]`);
    }
  }
  return o as Record<string, string[]>;
}

/** The event as a map: `correlation_id` (the call's id) once, then the event's own fields. */
export function eventObject<K extends EventType>(
  type: K,
  event: EventMap[K],
  cid: string,
  binary: boolean,
): Obj {
  const e = obj(event, type);
  switch (type) {
    case 'request_headers': {
      const m = obj(e.metadata, 'RequestHeaders.metadata');
      const P = 'RequestHeaders.metadata';
      const meta: Obj = {
        correlation_id: str(m.correlation_id, `${P}.correlation_id`),
        request_id: str(m.request_id, `${P}.request_id`),
        client_ip: str(m.client_ip, `${P}.client_ip`),
        client_port: uint(m.client_port, `${P}.client_port`, U16),
        server_name: optStr(m.server_name, `${P}.server_name`),
        protocol: str(m.protocol, `${P}.protocol`),
        tls_version: optStr(m.tls_version, `${P}.tls_version`),
        tls_cipher: optStr(m.tls_cipher, `${P}.tls_cipher`),
        route_id: optStr(m.route_id, `${P}.route_id`),
        upstream_id: optStr(m.upstream_id, `${P}.upstream_id`),
        timestamp: str(m.timestamp, `${P}.timestamp`),
      };
      const tp = optStr(m.traceparent, `${P}.traceparent`);
      if (tp !== null) meta.traceparent = tp;
      return {
        correlation_id: cid,
        metadata: meta,
        method: str(e.method, 'RequestHeaders.method'),
        uri: str(e.uri, 'RequestHeaders.uri'),
        headers: headerMap(e.headers, 'RequestHeaders.headers'),
      };
    }
    case 'request_body_chunk':
      return {
        correlation_id: cid,
        data: body(e.data, 'RequestBodyChunk.data', binary),
        is_last: bool(e.is_last, 'RequestBodyChunk.is_last'),
        total_size: optUint(e.total_size, 'RequestBodyChunk.total_size'),
        chunk_index: uint(e.chunk_index, 'RequestBodyChunk.chunk_index', U32),
        bytes_received: uint(e.bytes_received, 'RequestBodyChunk.bytes_received'),
      };
    case 'response_headers':
      return {
        correlation_id: cid,
        status: uint(e.status, 'ResponseHeaders.status', U16),
        headers: headerMap(e.headers, 'ResponseHeaders.headers'),
      };
    case 'response_body_chunk':
      return {
        correlation_id: cid,
        data: body(e.data, 'ResponseBodyChunk.data', binary),
        is_last: bool(e.is_last, 'ResponseBodyChunk.is_last'),
        total_size: optUint(e.total_size, 'ResponseBodyChunk.total_size'),
        chunk_index: uint(e.chunk_index, 'ResponseBodyChunk.chunk_index', U32),
        bytes_sent: uint(e.bytes_sent, 'ResponseBodyChunk.bytes_sent'),
      };
    case 'request_complete':
      return {
        correlation_id: cid,
        status: uint(e.status, 'RequestComplete.status', U16),
        duration_ms: uint(e.duration_ms, 'RequestComplete.duration_ms'),
        request_body_size: uint(e.request_body_size, 'RequestComplete.request_body_size'),
        response_body_size: uint(e.response_body_size, 'RequestComplete.response_body_size'),
        upstream_attempts: uint(e.upstream_attempts, 'RequestComplete.upstream_attempts', U32),
        error: optStr(e.error, 'RequestComplete.error'),
      };
    case 'web_socket_frame':
      return {
        correlation_id: cid,
        opcode: str(e.opcode, 'WebSocketFrame.opcode'),
        data: body(e.data, 'WebSocketFrame.data', binary),
        client_to_server: bool(e.client_to_server, 'WebSocketFrame.client_to_server'),
        frame_index: uint(e.frame_index, 'WebSocketFrame.frame_index'),
        fin: bool(e.fin, 'WebSocketFrame.fin'),
        route_id: optStr(e.route_id, 'WebSocketFrame.route_id'),
        client_ip: str(e.client_ip, 'WebSocketFrame.client_ip'),
      };
    case 'guardrail_inspect': {
      const out: Obj = {
        correlation_id: cid,
        inspection_type: inspectionType(e.inspection_type, 'GuardrailInspect.inspection_type'),
        content: str(e.content, 'GuardrailInspect.content'),
      };
      const model = optStr(e.model, 'GuardrailInspect.model');
      if (model !== null) out.model = model;
      out.categories = strList(e.categories, 'GuardrailInspect.categories');
      const route = optStr(e.route_id, 'GuardrailInspect.route_id');
      if (route !== null) out.route_id = route;
      out.metadata = strMap(e.metadata, 'GuardrailInspect.metadata');
      return out;
    }
    case 'configure':
      return {
        correlation_id: cid,
        config: e.config === undefined ? null : e.config,
        config_version: optStr(e.config_version, 'Configure.config_version'),
      };
    default:
      throw cannotEncode('event', `unknown event type "${String(type)}"`);
  }
}

// ---------------------------------------------------------------- AgentResponse parts

/** The decision as `[variant, fields]` so array (msgpack) and map (CBOR) writers share the checks. */
export type DecisionParts =
  | ['allow']
  | ['block', number, string | null, Record<string, string> | null]
  | ['redirect', string, number]
  | ['challenge', string, Record<string, string>];

export function decisionParts(v: unknown, path: string): DecisionParts {
  if (v === 'allow') return ['allow'];
  const d = obj(v, path);
  if (d.block !== undefined) {
    const x = obj(d.block, `${path}.block`);
    const h = x.headers;
    return [
      'block',
      uint(x.status, `${path}.block.status`, U16),
      optStr(x.body, `${path}.block.body`),
      h === undefined || h === null ? null : strMap(h, `${path}.block.headers`),
    ];
  }
  if (d.redirect !== undefined) {
    const x = obj(d.redirect, `${path}.redirect`);
    return [
      'redirect',
      str(x.url, `${path}.redirect.url`),
      uint(x.status, `${path}.redirect.status`, U16),
    ];
  }
  if (d.challenge !== undefined) {
    const x = obj(d.challenge, `${path}.challenge`);
    return [
      'challenge',
      str(x.challenge_type, `${path}.challenge.challenge_type`),
      strMap(x.params, `${path}.challenge.params`),
    ];
  }
  throw cannotEncode(path, 'expected "allow", {block}, {redirect} or {challenge}');
}

export type HeaderOpParts = ['set' | 'add', string, string] | ['remove', string];

export function headerOpParts(v: unknown, path: string): HeaderOpParts[] {
  const ops = optList(v, path);
  const out = new Array<HeaderOpParts>(ops.length);
  for (let i = 0; i < ops.length; i++) {
    // Well-formed ops are read without building error paths; anything else is left
    // to the checked version, which also words the error.
    out[i] = plainHeaderOp(ops[i]) ?? checkedHeaderOp(ops[i], `${path}[${i}]`);
  }
  return out;
}

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** The parts of a header op that needs no checks beyond its types, else undefined. */
function plainHeaderOp(op: unknown): HeaderOpParts | undefined {
  if (!isObj(op)) return undefined;
  const set = op.set;
  if (set !== undefined || op.add !== undefined) {
    const name = set !== undefined ? 'set' : 'add';
    const nv = set !== undefined ? set : op.add;
    if (isObj(nv) && typeof nv.name === 'string' && typeof nv.value === 'string') {
      return [name, nv.name, nv.value];
    }
    return undefined;
  }
  const remove = op.remove;
  if (isObj(remove) && typeof remove.name === 'string') return ['remove', remove.name];
  return undefined;
}

function checkedHeaderOp(v: unknown, p: string): HeaderOpParts {
  const op = obj(v, p);
  if (op.set !== undefined || op.add !== undefined) {
    const name = op.set !== undefined ? 'set' : 'add';
    const nv = obj(op[name], `${p}.${name}`);
    return [name, str(nv.name, `${p}.${name}.name`), str(nv.value, `${p}.${name}.value`)];
  }
  if (op.remove !== undefined) {
    return ['remove', str(obj(op.remove, `${p}.remove`).name, `${p}.remove.name`)];
  }
  throw cannotEncode(p, 'expected {set}, {add} or {remove}');
}

export interface AuditParts {
  tags: string[];
  rule_ids: string[];
  confidence: number | null;
  reason_codes: string[];
  custom: Obj;
}

/** The audit parts; `correlationId` (UDS routing) goes into a copy of `custom`, never the caller's object. */
export function auditParts(v: unknown, path: string, correlationId?: string): AuditParts {
  const a = optObj(v, path);
  const c = a.confidence;
  const custom = optObj(a.custom, `${path}.custom`);
  return {
    tags: auditList(a.tags, path, 'tags'),
    rule_ids: auditList(a.rule_ids, path, 'rule_ids'),
    confidence: c === undefined || c === null ? null : num(c, `${path}.confidence`),
    reason_codes: auditList(a.reason_codes, path, 'reason_codes'),
    custom: correlationId === undefined ? custom : { ...custom, correlation_id: correlationId },
  };
}

/** `strList`, with the error path only built when it is needed. */
function auditList(v: unknown, path: string, field: string): string[] {
  if (Array.isArray(v)) {
    let ok = true;
    for (let i = 0; i < v.length && ok; i++) ok = typeof v[i] === 'string';
    if (ok) return v as string[];
  }
  return strList(v, `${path}.${field}`);
}

export function bodyMutationParts(v: unknown, path: string): [string | null, number] | null {
  if (v === undefined || v === null) return null;
  const m = obj(v, path);
  return [optStr(m.data, `${path}.data`), uint(m.chunk_index ?? 0, `${path}.chunk_index`, U32)];
}

export type WsParts = ['allow'] | ['drop'] | ['close', number, string];

export function wsParts(v: unknown, path: string): WsParts | null {
  if (v === undefined || v === null) return null;
  if (v === 'allow' || v === 'drop') return [v];
  const d = obj(v, path);
  if (d.close !== undefined) {
    const c = obj(d.close, `${path}.close`);
    return [
      'close',
      uint(c.code, `${path}.close.code`, U16),
      str(c.reason, `${path}.close.reason`),
    ];
  }
  throw cannotEncode(path, 'expected "allow", "drop" or {close}');
}

/** Every AgentResponse field checked, defaults filled in. */
export interface ResponseParts {
  version: number;
  decision: DecisionParts;
  request_headers: HeaderOpParts[];
  response_headers: HeaderOpParts[];
  routing_metadata: Record<string, string>;
  audit: AuditParts;
  needs_more: boolean;
  request_body_mutation: [string | null, number] | null;
  response_body_mutation: [string | null, number] | null;
  websocket_decision: WsParts | null;
}

export function responseParts(r: AgentResponse, correlationId?: string): ResponseParts {
  const x = obj(r, 'AgentResponse');
  return {
    version: uint(x.version, 'AgentResponse.version', U32),
    decision: decisionParts(x.decision, 'AgentResponse.decision'),
    request_headers: headerOpParts(x.request_headers, 'AgentResponse.request_headers'),
    response_headers: headerOpParts(x.response_headers, 'AgentResponse.response_headers'),
    routing_metadata: strMap(x.routing_metadata, 'AgentResponse.routing_metadata'),
    audit: auditParts(x.audit, 'AgentResponse.audit', correlationId),
    needs_more:
      x.needs_more === undefined || x.needs_more === null
        ? false
        : bool(x.needs_more, 'AgentResponse.needs_more'),
    request_body_mutation: bodyMutationParts(
      x.request_body_mutation,
      'AgentResponse.request_body_mutation',
    ),
    response_body_mutation: bodyMutationParts(
      x.response_body_mutation,
      'AgentResponse.response_body_mutation',
    ),
    websocket_decision: wsParts(x.websocket_decision, 'AgentResponse.websocket_decision'),
  };
}

function opObject(op: HeaderOpParts): Obj {
  return op[0] === 'remove'
    ? { remove: { name: op[1] } }
    : { [op[0]]: { name: op[1], value: op[2] } };
}

/** AgentResponse as a map with field names (CBOR), declaration order. */
export function responseObject(r: AgentResponse, correlationId?: string): Obj {
  const p = responseParts(r, correlationId);
  const d = p.decision;
  let decision: unknown;
  if (d[0] === 'allow') decision = 'allow';
  else if (d[0] === 'block') decision = { block: { status: d[1], body: d[2], headers: d[3] } };
  else if (d[0] === 'redirect') decision = { redirect: { url: d[1], status: d[2] } };
  else decision = { challenge: { challenge_type: d[1], params: d[2] } };
  const mut = (m: [string | null, number] | null) =>
    m === null ? null : { data: m[0], chunk_index: m[1] };
  const ws = p.websocket_decision;
  return {
    version: p.version,
    decision,
    request_headers: p.request_headers.map(opObject),
    response_headers: p.response_headers.map(opObject),
    routing_metadata: p.routing_metadata,
    audit: p.audit,
    needs_more: p.needs_more,
    request_body_mutation: mut(p.request_body_mutation),
    response_body_mutation: mut(p.response_body_mutation),
    websocket_decision:
      ws === null ? null : ws[0] === 'close' ? { close: { code: ws[1], reason: ws[2] } } : ws[0],
  };
}

// ---------------------------------------------------------------- control messages

export function healthObject(m: HealthStatusMessage): Obj {
  const x = obj(m, 'HealthStatus');
  const out: Obj = { state: int(x.state, 'HealthStatus.state') };
  const text = optStr(x.message, 'HealthStatus.message');
  if (text !== null) out.message = text;
  return out;
}

export function flowControlObject(m: FlowControlMessage): Obj {
  return { action: int(obj(m, 'FlowControl').action, 'FlowControl.action') };
}

function metricBase(o: Obj, path: string): Obj {
  const out: Obj = { name: str(o.name, `${path}.name`) };
  const help = optStr(o.help, `${path}.help`);
  if (help !== null) out.help = help;
  out.labels = strMap(o.labels, `${path}.labels`);
  return out;
}

/**
 * MetricsReport as a map. `f64` wraps the f64 fields: the msgpack writer marks
 * them so they go out as `cb` floats like Rust writes them (even when
 * integral); CBOR passes plain numbers.
 */
export function metricsObject(m: MetricsReport, f64: (n: number) => unknown): Obj {
  const x = obj(m, 'MetricsReport');
  return {
    agent_id: str(x.agent_id, 'MetricsReport.agent_id'),
    timestamp_ms: uint(x.timestamp_ms, 'MetricsReport.timestamp_ms'),
    interval_ms: uint(x.interval_ms, 'MetricsReport.interval_ms'),
    counters: optList(x.counters, 'MetricsReport.counters').map((c, i) => {
      const p = `MetricsReport.counters[${i}]`;
      const o = obj(c, p);
      return { ...metricBase(o, p), value: uint(o.value, `${p}.value`) };
    }),
    gauges: optList(x.gauges, 'MetricsReport.gauges').map((g, i) => {
      const p = `MetricsReport.gauges[${i}]`;
      const o = obj(g, p);
      return { ...metricBase(o, p), value: f64(num(o.value, `${p}.value`)) };
    }),
    histograms: optList(x.histograms, 'MetricsReport.histograms').map((h, i) => {
      const p = `MetricsReport.histograms[${i}]`;
      const o = obj(h, p);
      return {
        ...metricBase(o, p),
        sum: f64(num(o.sum, `${p}.sum`)),
        count: uint(o.count, `${p}.count`),
        buckets: list(o.buckets, `${p}.buckets`).map((b, j) => {
          const bp = `${p}.buckets[${j}]`;
          const bo = obj(b, bp);
          const le = leValue(bo.le, `${bp}.le`);
          return {
            le: typeof le === 'string' ? le : f64(le),
            count: uint(bo.count, `${bp}.count`),
          };
        }),
      };
    }),
  };
}

export function configUpdateObject(m: ConfigUpdateRequest): Obj {
  const x = obj(m, 'ConfigUpdateRequest');
  const path = 'ConfigUpdateRequest.update_type';
  const t = obj(x.update_type, path);
  const type = str(t.type, `${path}.type`);
  let update: Obj;
  switch (type) {
    case 'request_reload':
      update = { type };
      break;
    case 'rule_update':
      update = {
        type,
        rule_set: str(t.rule_set, `${path}.rule_set`),
        rules: list(t.rules, `${path}.rules`).map((r, i) => {
          const p = `${path}.rules[${i}]`;
          const o = obj(r, p);
          return {
            id: str(o.id, `${p}.id`),
            priority: int(o.priority, `${p}.priority`),
            definition: o.definition === undefined ? null : o.definition,
            enabled: bool(o.enabled, `${p}.enabled`),
            description: optStr(o.description, `${p}.description`),
            tags: strList(o.tags, `${p}.tags`),
          };
        }),
        remove_rules: strList(list(t.remove_rules, `${path}.remove_rules`), `${path}.remove_rules`),
      };
      break;
    case 'list_update':
      update = {
        type,
        list_id: str(t.list_id, `${path}.list_id`),
        add: strList(list(t.add, `${path}.add`), `${path}.add`),
        remove: strList(list(t.remove, `${path}.remove`), `${path}.remove`),
      };
      break;
    case 'restart_required':
      update = {
        type,
        reason: str(t.reason, `${path}.reason`),
        grace_period_ms: uint(t.grace_period_ms, `${path}.grace_period_ms`),
      };
      break;
    case 'config_error':
      update = {
        type,
        error: str(t.error, `${path}.error`),
        field: optStr(t.field, `${path}.field`),
      };
      break;
    default:
      throw cannotEncode(`${path}.type`, `unknown update type "${type}"`);
  }
  return {
    update_type: update,
    request_id: str(x.request_id, 'ConfigUpdateRequest.request_id'),
    timestamp_ms: uint(x.timestamp_ms, 'ConfigUpdateRequest.timestamp_ms'),
  };
}
