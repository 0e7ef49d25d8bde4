/**
 * One-pass encoders/decoders for the two messages of every call — ProxyToAgent{request_headers}
 * from the proxy, AgentToProxy{response} from the agent — written and read directly, without
 * the protobufjs message objects and writer operations in between (they were most of the
 * per-call allocations).
 *
 * Each fast path handles plain, well-typed values only and returns `undefined` for anything
 * else (and on any unexpected exception), so the caller takes the general path (convert.ts +
 * protobufjs), which keeps every odd case and error exactly as it was. Output is identical to
 * that path's: the same bytes (golden vectors G1–G6) and deep-equal objects.
 * test/fast-paths.test.ts compares the two on random and malformed input.
 *
 * The fields of every message written or read here are listed exhaustively in
 * fast-path-fields.ts: a field added to the .proto (or to picket's types) breaks the build there
 * until it is listed, and so handled here or sent to the general path.
 */
import {
  type AgentResponse,
  type AuditMetadata,
  type BodyMutation,
  type Decision,
  emptyAudit,
  type HeaderOp,
  type Headers,
  headerMap,
  PROTOCOL_VERSION,
  type RequestHeadersEvent,
  type RequestMetadata,
  type WebSocketDecision,
} from '@picket/protocol';
import {
  addHeader,
  jsonText,
  metadataFromProto,
  parseJsonLoose,
  timestampToMs,
} from './convert.js';
import { f32 } from './proto.js';
import { BAIL } from './wire-bail.js';
import {
  beginRead,
  endRead,
  more,
  position,
  readFloat32,
  readNestedEnd,
  readRecurring,
  readStr,
  readU64,
  readVarint32,
  seek,
  skipVarint64,
} from './wire-reader.js';
import {
  beginMessage,
  byte,
  closeNested,
  endMessage,
  float32,
  isU32,
  isU64,
  openNested,
  str,
  strRoom,
  u32,
  u64,
} from './wire-writer.js';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** `ProxyToAgent{request_headers}` for `e` (see the module comment), or undefined. */
export function encodeRequestHeadersFast(
  e: RequestHeadersEvent,
  now = Date.now(),
): Buffer | undefined {
  try {
    return writeRequestHeaders(e, now);
  } catch {
    return undefined; // BAIL, or anything unexpected: the general path decides
  }
}

function writeRequestHeaders(e: RequestHeadersEvent, now: number): Buffer {
  if (!isObject(e)) throw BAIL;
  const m = e.metadata;
  if (!isObject(m)) throw BAIL;
  // check every value and add up the room needed
  let room = 64;
  if (m.correlation_id) room += strRoom(m.correlation_id);
  if (m.request_id) room += strRoom(m.request_id);
  if (m.client_ip) room += strRoom(m.client_ip);
  if (m.client_port && !isU32(m.client_port)) throw BAIL;
  if (m.server_name != null) room += strRoom(m.server_name);
  const protocol = m.protocol;
  if (protocol != null) room += strRoom(protocol);
  if (m.tls_version != null) room += strRoom(m.tls_version);
  if (m.route_id != null) room += strRoom(m.route_id);
  if (m.upstream_id != null) room += strRoom(m.upstream_id);
  const ts = timestampToMs(m.timestamp, now);
  if (ts && !isU64(ts)) throw BAIL;
  if (m.traceparent != null) room += strRoom(m.traceparent);
  if (m.tls_cipher != null) room += strRoom(m.tls_cipher);
  if (e.method) room += strRoom(e.method);
  if (e.uri) room += strRoom(e.uri);
  const httpVersion = protocol?.startsWith('HTTP/') ? protocol : 'HTTP/1.1';
  room += strRoom(httpVersion);
  const h = e.headers;
  let names: string[] | undefined;
  if (h) {
    if (typeof h !== 'object') throw BAIL;
    names = Object.keys(h);
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const values = h[name];
      if (!values) continue;
      if (!Array.isArray(values)) throw BAIL;
      for (let j = 0; j < values.length; j++) {
        const v = values[j];
        room += 3 * name.length + 16;
        if (v) room += strRoom(v);
      }
    }
  }

  const start = beginMessage(room);
  byte(18); // ProxyToAgent.request_headers
  const event = openNested();
  byte(10); // RequestHeadersEvent.metadata
  const md = openNested();
  if (m.correlation_id) {
    byte(10);
    str(m.correlation_id);
  }
  if (m.request_id) {
    byte(18);
    str(m.request_id);
  }
  if (m.client_ip) {
    byte(26);
    str(m.client_ip);
  }
  if (m.client_port) {
    byte(32);
    u32(m.client_port);
  }
  if (m.server_name != null) {
    byte(42);
    str(m.server_name);
  }
  if (protocol) {
    byte(50);
    str(protocol);
  }
  if (m.tls_version != null) {
    byte(58);
    str(m.tls_version);
  }
  if (m.route_id != null) {
    byte(66);
    str(m.route_id);
  }
  if (m.upstream_id != null) {
    byte(74);
    str(m.upstream_id);
  }
  if (ts) {
    byte(80);
    u64(ts);
  }
  if (m.traceparent != null) {
    byte(90);
    str(m.traceparent);
  }
  if (m.tls_cipher != null) {
    byte(0xc2); // field 1000, length-delimited
    byte(0x3e);
    str(m.tls_cipher);
  }
  closeNested(md);
  if (e.method) {
    byte(18);
    str(e.method);
  }
  if (e.uri) {
    byte(26);
    str(e.uri);
  }
  byte(34);
  str(httpVersion);
  if (h && names) {
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const values = h[name];
      if (!values) continue;
      for (let j = 0; j < values.length; j++) {
        const v = values[j];
        byte(42);
        const at = openNested();
        if (name) {
          byte(10);
          str(name);
        }
        if (v) {
          byte(18);
          str(v);
        }
        closeNested(at);
      }
    }
  }
  closeNested(event);
  return endMessage(start);
}

/** JSON texts of the audit `custom` values of the response being written (reused). */
const customTexts: string[] = [];

/** `AgentToProxy{response}` for `r` (see the module comment), or undefined. */
export function encodeAgentResponseFast(
  r: AgentResponse,
  correlationId: string,
  processingTimeMs: number,
): Buffer | undefined {
  try {
    return writeAgentResponse(r, correlationId, processingTimeMs);
  } catch {
    return undefined; // BAIL, or anything unexpected: the general path decides
  } finally {
    customTexts.length = 0;
  }
}

/** Room for header ops (checking them as agentResponseToProto + protobufjs would accept them). */
function headerOpsRoom(ops: unknown): number {
  if (!Array.isArray(ops)) throw BAIL;
  let room = 0;
  for (let i = 0; i < ops.length; i++) {
    const op: unknown = ops[i];
    if (!isObject(op)) throw BAIL;
    let hdr: unknown;
    if ('set' in op) hdr = op.set;
    else if ('add' in op) hdr = op.add;
    else if ('remove' in op) {
      const rm = op.remove;
      if (!isObject(rm)) throw BAIL;
      room += 16;
      if (rm.name != null) room += strRoom(rm.name);
      continue;
    } else throw BAIL;
    if (!isObject(hdr)) throw BAIL;
    room += 16;
    if (hdr.name) room += strRoom(hdr.name);
    if (hdr.value) room += strRoom(hdr.value);
  }
  return room;
}

function writeHeaderOps(ops: readonly HeaderOp[], tag: number): void {
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as HeaderOp;
    byte(tag);
    const at = openNested();
    if ('set' in op || 'add' in op) {
      const hdr = 'set' in op ? op.set : op.add;
      byte('set' in op ? 10 : 18);
      const h = openNested();
      if (hdr.name) {
        byte(10);
        str(hdr.name);
      }
      if (hdr.value) {
        byte(18);
        str(hdr.value);
      }
      closeNested(h);
    } else if (op.remove.name != null) {
      byte(26);
      str(op.remove.name);
    }
    closeNested(at);
  }
}

function stringListRoom(list: unknown): number {
  if (!Array.isArray(list)) throw BAIL;
  let room = 0;
  for (let i = 0; i < list.length; i++) room += strRoom(list[i]);
  return room;
}

function writeStringList(list: readonly string[], tag: number): void {
  for (let i = 0; i < list.length; i++) {
    byte(tag);
    str(list[i] as string);
  }
}

/** Room for a map<string, string> (values must be strings, as protobufjs requires). */
function stringMapRoom(m: Record<string, unknown>, keys: readonly string[]): number {
  let room = 0;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    room += strRoom(k) + strRoom(m[k]);
  }
  return room;
}

/** Map entries: key and value always written, as protobufjs writes map fields. */
function writeStringMap(
  m: Record<string, string>,
  keys: readonly string[],
  tag1: number,
  tag2: number,
): void {
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    byte(tag1);
    if (tag2) byte(tag2);
    const at = openNested();
    byte(10);
    str(k);
    byte(18);
    str(m[k] as string);
    closeNested(at);
  }
}

function writeAgentResponse(r: AgentResponse, cid: string, processingTimeMs: number): Buffer {
  if (!isObject(r) || typeof cid !== 'string') throw BAIL;
  let room = 96 + (cid ? strRoom(cid) : 0);
  // decision: allow, block or redirect (a challenge takes the general path)
  const d: unknown = r.decision;
  let block: Record<string, unknown> | undefined;
  let blockHeaders: string[] | undefined;
  let redirect: Record<string, unknown> | undefined;
  if (d !== 'allow') {
    if (!isObject(d)) throw BAIL;
    if ('block' in d) {
      if (!isObject(d.block)) throw BAIL;
      block = d.block;
      if (block.status && !isU32(block.status)) throw BAIL;
      if (block.body != null) room += strRoom(block.body);
      const bh = block.headers;
      if (bh) {
        if (!isObject(bh)) throw BAIL;
        blockHeaders = Object.keys(bh);
        for (let i = 0; i < blockHeaders.length; i++) {
          const k = blockHeaders[i] as string;
          const v = bh[k] ?? '';
          room += 16 + 3 * k.length;
          if (v) room += strRoom(v);
        }
      }
    } else if ('redirect' in d) {
      if (!isObject(d.redirect)) throw BAIL;
      redirect = d.redirect;
      if (redirect.url) room += strRoom(redirect.url);
      if (redirect.status && !isU32(redirect.status)) throw BAIL;
    } else throw BAIL;
  }
  const reqOps = r.request_headers;
  if (reqOps?.length) room += headerOpsRoom(reqOps);
  const resOps = r.response_headers;
  if (resOps?.length) room += headerOpsRoom(resOps);
  const a = r.audit ?? emptyAudit();
  if (!isObject(a)) throw BAIL;
  if (a.tags?.length) room += stringListRoom(a.tags);
  if (a.rule_ids?.length) room += stringListRoom(a.rule_ids);
  if (a.confidence != null && typeof a.confidence !== 'number') throw BAIL;
  if (a.reason_codes?.length) room += stringListRoom(a.reason_codes);
  const custom = a.custom;
  let customKeys: string[] | undefined;
  if (custom) {
    if (!isObject(custom)) throw BAIL;
    customKeys = Object.keys(custom);
    for (let i = 0; i < customKeys.length; i++) {
      const k = customKeys[i] as string;
      if (k === '__proto__') throw BAIL; // rare: left to the general path
      const text = jsonText(custom[k]);
      customTexts.push(text);
      room += strRoom(k) + strRoom(text);
    }
  }
  const ms = Math.max(0, Math.round(processingTimeMs));
  if (!isU64(ms)) throw BAIL;
  const rm = r.routing_metadata;
  let rmKeys: string[] | undefined;
  if (rm) {
    if (!isObject(rm)) throw BAIL;
    rmKeys = Object.keys(rm);
    room += stringMapRoom(rm, rmKeys);
  }
  const reqMut = r.request_body_mutation;
  if (reqMut) room += mutationRoom(reqMut);
  const resMut = r.response_body_mutation;
  if (resMut) room += mutationRoom(resMut);
  const ws: unknown = r.websocket_decision;
  if (ws && ws !== 'allow' && ws !== 'drop') {
    if (!isObject(ws) || !isObject(ws.close)) throw BAIL;
    const c = ws.close;
    if (c.code && !isU32(c.code)) throw BAIL;
    if (c.reason) room += strRoom(c.reason);
  }

  const start = beginMessage(room);
  byte(18); // AgentToProxy.response
  const resp = openNested();
  if (cid) {
    byte(10);
    str(cid);
  }
  if (block) {
    byte(26);
    const at = openNested();
    if (block.status) {
      byte(8);
      u32(block.status as number);
    }
    if (block.body != null) {
      byte(18);
      str(block.body as string);
    }
    if (blockHeaders) {
      const bh = block.headers as Record<string, string | null | undefined>;
      for (let i = 0; i < blockHeaders.length; i++) {
        const k = blockHeaders[i] as string;
        const v = bh[k] ?? '';
        byte(26);
        const h = openNested();
        if (k) {
          byte(10);
          str(k);
        }
        if (v) {
          byte(18);
          str(v);
        }
        closeNested(h);
      }
    }
    closeNested(at);
  } else if (redirect) {
    byte(34);
    const at = openNested();
    if (redirect.url) {
      byte(10);
      str(redirect.url as string);
    }
    if (redirect.status) {
      byte(16);
      u32(redirect.status as number);
    }
    closeNested(at);
  } else {
    byte(18); // allow {}
    byte(0);
  }
  if (reqOps?.length) writeHeaderOps(reqOps, 82);
  if (resOps?.length) writeHeaderOps(resOps, 90);
  byte(98); // audit, always present
  const audit = openNested();
  if (a.tags?.length) writeStringList(a.tags, 10);
  if (a.rule_ids?.length) writeStringList(a.rule_ids, 18);
  if (a.confidence != null) {
    byte(29);
    float32(a.confidence);
  }
  if (a.reason_codes?.length) writeStringList(a.reason_codes, 34);
  if (customKeys) {
    for (let i = 0; i < customKeys.length; i++) {
      byte(42);
      const at = openNested();
      byte(10);
      str(customKeys[i] as string);
      byte(18);
      str(customTexts[i] as string);
      closeNested(at);
    }
  }
  closeNested(audit);
  byte(104);
  u64(ms);
  if (r.needs_more) {
    byte(112);
    byte(1);
  }
  if (rm && rmKeys) writeStringMap(rm, rmKeys, 0xc2, 0x3e); // field 1000
  if (reqMut) writeMutation(reqMut, 0xca); // field 1001
  if (resMut) writeMutation(resMut, 0xd2); // field 1002
  if (ws) {
    byte(0xda); // field 1003
    byte(0x3e);
    const at = openNested();
    if (ws === 'allow' || ws === 'drop') {
      byte(ws === 'allow' ? 10 : 18);
      byte(0);
    } else {
      const c = (ws as { close: { code: number; reason: string } }).close;
      byte(26);
      const cl = openNested();
      if (c.code) {
        byte(8);
        u32(c.code);
      }
      if (c.reason) {
        byte(18);
        str(c.reason);
      }
      closeNested(cl);
    }
    closeNested(at);
  }
  closeNested(resp);
  return endMessage(start);
}

function mutationRoom(m: unknown): number {
  if (!isObject(m)) throw BAIL;
  if (m.chunk_index && !isU32(m.chunk_index)) throw BAIL;
  return 24 + (m.data != null ? strRoom(m.data) : 0);
}

function writeMutation(m: BodyMutation, tag1: number): void {
  byte(tag1);
  byte(0x3e);
  const at = openNested();
  if (m.data != null) {
    byte(10);
    str(m.data);
  }
  if (m.chunk_index) {
    byte(16);
    u32(m.chunk_index);
  }
  closeNested(at);
}

// -------- reading AgentToProxy{response}

/** A plain `AgentToProxy{response}` read in one pass: the response already converted. */
export class FastAgentResponse {
  /** as the ProxyToAgent/AgentToProxy `message` oneof getter names it */
  readonly message = 'response' as const;
  constructor(
    readonly correlationId: string,
    readonly response: AgentResponse,
  ) {}
}

/** Reads AgentToProxy{response} (and nothing else) from `b`, or undefined. */
export function decodeAgentResponseFast(b: Buffer): FastAgentResponse | undefined {
  beginRead(b);
  try {
    const end = b.length;
    if (end < 2 || b[0] !== 18) return undefined; // not a lone `response`
    seek(1);
    const e = readNestedEnd(end);
    if (e !== end) return undefined;
    return readAgentResponse(e);
  } catch {
    return undefined; // BAIL, or anything unexpected: the general path decides
  } finally {
    endRead();
  }
}

function readHeader(end: number): { name: string; value: string } {
  const e = readNestedEnd(end);
  let name = '';
  let value = '';
  while (more(e)) {
    const tag = readVarint32(e);
    if (tag === 10) name = readStr(e);
    else if (tag === 18) value = readStr(e);
    else throw BAIL;
  }
  return { name, value };
}

/** One HeaderOp as agentResponseFromProto converts it (undefined: an op with no operation). */
function readHeaderOp(end: number): HeaderOp | undefined {
  const e = readNestedEnd(end);
  let set: { name: string; value: string } | undefined;
  let add: { name: string; value: string } | undefined;
  let remove: string | undefined;
  while (more(e)) {
    const tag = readVarint32(e);
    if (tag === 10) set = readHeader(e);
    else if (tag === 18) add = readHeader(e);
    else if (tag === 26) remove = readStr(e);
    else throw BAIL;
  }
  if (set) return { set };
  if (add) return { add };
  if (remove !== undefined) return { remove: { name: remove } };
  return undefined;
}

/** A map<string, string> entry: [key, value], both defaulting to ''. */
function readMapEntry(end: number): [string, string] {
  const e = readNestedEnd(end);
  let key = '';
  let value = '';
  while (more(e)) {
    const tag = readVarint32(e);
    if (tag === 10) key = readStr(e);
    else if (tag === 18) value = readStr(e);
    else throw BAIL;
  }
  if (key === '__proto__') throw BAIL;
  return [key, value];
}

function readAudit(end: number): AuditMetadata {
  const e = readNestedEnd(end);
  const audit: AuditMetadata = {
    tags: [],
    rule_ids: [],
    confidence: null,
    reason_codes: [],
    custom: {},
  };
  while (more(e)) {
    const tag = readVarint32(e);
    switch (tag) {
      case 10:
        audit.tags.push(readStr(e));
        break;
      case 18:
        audit.rule_ids.push(readStr(e));
        break;
      case 29:
        audit.confidence = f32(readFloat32(e));
        break;
      case 34:
        audit.reason_codes.push(readStr(e));
        break;
      case 42: {
        const [k, v] = readMapEntry(e);
        audit.custom[k] = parseJsonLoose(v);
        break;
      }
      default:
        throw BAIL;
    }
  }
  return audit;
}

function readBlock(end: number): Decision {
  const e = readNestedEnd(end);
  let status = 0;
  let body: string | null = null;
  let headers: Record<string, string> | null = null;
  while (more(e)) {
    const tag = readVarint32(e);
    if (tag === 8) status = readVarint32(e);
    else if (tag === 18) body = readStr(e);
    else if (tag === 26) {
      const h = readHeader(e);
      if (h.name === '__proto__') throw BAIL;
      if (headers === null) headers = {};
      headers[h.name] = h.value;
    } else throw BAIL;
  }
  return { block: { status, body, headers } };
}

function readRedirect(end: number): Decision {
  const e = readNestedEnd(end);
  let url = '';
  let status = 0;
  while (more(e)) {
    const tag = readVarint32(e);
    if (tag === 10) url = readStr(e);
    else if (tag === 16) status = readVarint32(e);
    else throw BAIL;
  }
  return { redirect: { url, status } };
}

function readMutation(end: number): BodyMutation {
  const e = readNestedEnd(end);
  let data: string | null = null;
  let chunkIndex = 0;
  while (more(e)) {
    const tag = readVarint32(e);
    if (tag === 10) data = readStr(e);
    else if (tag === 16) chunkIndex = readVarint32(e);
    else throw BAIL;
  }
  return { data, chunk_index: chunkIndex };
}

function readWsDecision(end: number): WebSocketDecision | null {
  const e = readNestedEnd(end);
  let allowed = false;
  let dropped = false;
  let close: { code: number; reason: string } | undefined;
  while (more(e)) {
    const tag = readVarint32(e);
    if (tag === 10 || tag === 18) {
      if (readNestedEnd(e) !== position()) throw BAIL; // an AllowDecision with content
      if (tag === 10) allowed = true;
      else dropped = true;
    } else if (tag === 26) {
      const ce = readNestedEnd(e);
      close = { code: 0, reason: '' };
      while (more(ce)) {
        const t = readVarint32(ce);
        if (t === 8) close.code = readVarint32(ce);
        else if (t === 18) close.reason = readStr(ce);
        else throw BAIL;
      }
    } else throw BAIL;
  }
  if (close) return { close };
  if (dropped) return 'drop';
  return allowed ? 'allow' : null;
}

function readAgentResponse(end: number): FastAgentResponse {
  let cid = '';
  let decision: Decision | undefined;
  const requestHeaders: HeaderOp[] = [];
  const responseHeaders: HeaderOp[] = [];
  let audit: AuditMetadata | undefined;
  let needsMore = false;
  let routing: Record<string, string> | undefined;
  let reqMut: BodyMutation | null | undefined;
  let resMut: BodyMutation | null | undefined;
  let ws: WebSocketDecision | null | undefined;
  while (more(end)) {
    const tag = readVarint32(end);
    switch (tag) {
      case 10:
        cid = readStr(end);
        break;
      case 18:
        if (decision !== undefined || readNestedEnd(end) !== position()) throw BAIL;
        decision = 'allow';
        break;
      case 26:
        if (decision !== undefined) throw BAIL;
        decision = readBlock(end);
        break;
      case 34:
        if (decision !== undefined) throw BAIL;
        decision = readRedirect(end);
        break;
      case 82:
      case 90: {
        const op = readHeaderOp(end);
        if (op) (tag === 82 ? requestHeaders : responseHeaders).push(op);
        break;
      }
      case 98:
        if (audit !== undefined) throw BAIL; // a repeated message field replaces: general path
        audit = readAudit(end);
        break;
      case 104:
        skipVarint64(end);
        break;
      case 112:
        needsMore = readVarint32(end) !== 0;
        break;
      case 8002: {
        const [k, v] = readMapEntry(end);
        if (routing === undefined) routing = {};
        routing[k] = v;
        break;
      }
      case 8010:
        if (reqMut !== undefined) throw BAIL;
        reqMut = readMutation(end);
        break;
      case 8018:
        if (resMut !== undefined) throw BAIL;
        resMut = readMutation(end);
        break;
      case 8026:
        if (ws !== undefined) throw BAIL;
        ws = readWsDecision(end);
        break;
      default:
        throw BAIL; // challenge, unknown fields, unexpected wire types
    }
  }
  return new FastAgentResponse(cid, {
    version: PROTOCOL_VERSION,
    decision: decision ?? 'allow',
    request_headers: requestHeaders,
    response_headers: responseHeaders,
    routing_metadata: routing ?? {},
    audit: audit ?? { tags: [], rule_ids: [], confidence: null, reason_codes: [], custom: {} },
    needs_more: needsMore,
    request_body_mutation: reqMut ?? null,
    response_body_mutation: resMut ?? null,
    websocket_decision: ws ?? null,
  });
}

// -------- reading ProxyToAgent{request_headers}

/** A plain `ProxyToAgent{request_headers}` read in one pass: the event already converted. */
export class FastRequestHeaders {
  /** as the ProxyToAgent `message` oneof getter names it */
  readonly message = 'request_headers' as const;
  constructor(readonly event: RequestHeadersEvent) {}
}

/** Reads ProxyToAgent{request_headers} (and nothing else) from `b`, or undefined. */
export function decodeRequestHeadersFast(b: Buffer): FastRequestHeaders | undefined {
  beginRead(b);
  try {
    const end = b.length;
    if (end < 2 || b[0] !== 18) return undefined; // not a lone `request_headers`
    seek(1);
    const e = readNestedEnd(end);
    if (e !== end) return undefined;
    return new FastRequestHeaders(readRequestHeaders(e));
  } catch {
    return undefined; // BAIL, or anything unexpected: the general path decides
  } finally {
    endRead();
  }
}

function readMetadata(end: number): RequestMetadata {
  const e = readNestedEnd(end);
  let cid = '';
  let requestId = '';
  let clientIp = '';
  let clientPort = 0;
  let serverName: string | null = null;
  let protocol = '';
  let tlsVersion: string | null = null;
  let tlsCipher: string | null = null;
  let routeId: string | null = null;
  let upstreamId: string | null = null;
  let timestampMs = 0;
  let traceparent: string | undefined;
  while (more(e)) {
    const tag = readVarint32(e);
    switch (tag) {
      case 10:
        cid = readStr(e);
        break;
      case 18:
        requestId = readStr(e);
        break;
      case 26:
        clientIp = readStr(e);
        break;
      case 32:
        clientPort = readVarint32(e);
        break;
      case 42:
        serverName = readRecurring(e);
        break;
      case 50:
        protocol = readRecurring(e);
        break;
      case 58:
        tlsVersion = readRecurring(e);
        break;
      case 66:
        routeId = readRecurring(e);
        break;
      case 74:
        upstreamId = readRecurring(e);
        break;
      case 80:
        timestampMs = readU64(e);
        break;
      case 90:
        traceparent = readStr(e);
        break;
      case 8002:
        tlsCipher = readRecurring(e);
        break;
      default:
        throw BAIL;
    }
  }
  const md: RequestMetadata = {
    correlation_id: cid,
    request_id: requestId,
    client_ip: clientIp,
    client_port: clientPort,
    server_name: serverName,
    protocol,
    tls_version: tlsVersion,
    tls_cipher: tlsCipher,
    route_id: routeId,
    upstream_id: upstreamId,
    timestamp: String(timestampMs),
  };
  if (traceparent !== undefined) md.traceparent = traceparent;
  return md;
}

function readRequestHeaders(end: number): RequestHeadersEvent {
  let metadata: RequestMetadata | undefined;
  let method = '';
  let uri = '';
  const headers: Headers = headerMap();
  while (more(end)) {
    const tag = readVarint32(end);
    switch (tag) {
      case 10:
        if (metadata !== undefined) throw BAIL; // a repeated message field replaces: general path
        metadata = readMetadata(end);
        break;
      case 18:
        method = readRecurring(end);
        break;
      case 26:
        uri = readStr(end);
        break;
      case 34:
        seek(readNestedEnd(end)); // http_version: not part of the picket event
        break;
      case 42: {
        const e = readNestedEnd(end);
        let name = '';
        let value = '';
        while (more(e)) {
          const t = readVarint32(e);
          if (t === 10) name = readRecurring(e);
          else if (t === 18) value = readStr(e);
          else throw BAIL;
        }
        addHeader(headers, name, value);
        break;
      }
      default:
        throw BAIL;
    }
  }
  return {
    metadata: metadata ?? metadataFromProto(undefined),
    method,
    uri,
    headers,
  };
}
