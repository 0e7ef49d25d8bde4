/**
 * AgentResponse written straight from a handler's answer as rmp-serde's 10-element
 * array: the same bytes as `responseParts` + `writeResponseArray`, without building
 * the checked copy first (per reply that copy cost more than the writing itself).
 * It declines (returns false, having written an unknown amount) anything but the
 * plain shapes handlers return; the caller then resets the writer and takes the
 * checked path, which also words the error.
 */
import { U16, U32 } from './check.js';
import { encodedStr, type MsgpackWriter } from './msgpack-writer.js';

type Obj = Record<string, unknown>;

/** The strings every reply repeats, encoded once. */
const ALLOW = encodedStr('allow');
const BLOCK = encodedStr('block');
const SET = encodedStr('set');
const ADD = encodedStr('add');
const REMOVE = encodedStr('remove');
const CORRELATION_ID = encodedStr('correlation_id');

function isObj(v: unknown): v is Obj {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return (proto === Object.prototype || proto === null) && !Array.isArray(v);
}

function isUint(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

function isStrList(v: unknown): v is string[] {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string') return false;
  return true;
}

/** A list field: absent, null or an array of strings. */
function writeOptStrList(w: MsgpackWriter, v: unknown): boolean {
  if (v === undefined || v === null) {
    w.array(0);
    return true;
  }
  if (!isStrList(v)) return false;
  w.strArray(v);
  return true;
}

/** A `Record<string, string>` field: absent, null or a plain object of strings. */
function writeOptStrMap(w: MsgpackWriter, v: unknown): boolean {
  if (v === undefined || v === null) {
    w.map(0);
    return true;
  }
  if (!isObj(v)) return false;
  const keys = Object.keys(v);
  for (const k of keys) if (typeof v[k] !== 'string') return false;
  w.map(keys.length);
  for (const k of keys) {
    w.str(k);
    w.str(v[k] as string);
  }
  return true;
}

function writeDecision(w: MsgpackWriter, d: unknown): boolean {
  if (d === 'allow') {
    w.raw(ALLOW);
    return true;
  }
  if (!isObj(d)) return false;
  const b = d.block;
  if (b === undefined || d.redirect !== undefined || d.challenge !== undefined) return false;
  if (!isObj(b) || !isUint(b.status, U16)) return false;
  const body = b.body;
  if (body !== undefined && body !== null && typeof body !== 'string') return false;
  w.map(1);
  w.raw(BLOCK);
  w.array(3);
  w.int(b.status);
  if (body === undefined || body === null) w.nil();
  else w.str(body);
  if (b.headers === undefined || b.headers === null) w.nil();
  else if (!writeOptStrMap(w, b.headers)) return false;
  return true;
}

function writeHeaderOps(w: MsgpackWriter, v: unknown): boolean {
  if (v === undefined || v === null) {
    w.array(0);
    return true;
  }
  if (!Array.isArray(v)) return false;
  w.array(v.length);
  for (const op of v) {
    if (!isObj(op)) return false;
    const set = op.set;
    if (set !== undefined || op.add !== undefined) {
      const nv = set !== undefined ? set : op.add;
      if (!isObj(nv) || typeof nv.name !== 'string' || typeof nv.value !== 'string') return false;
      w.map(1);
      w.raw(set !== undefined ? SET : ADD);
      w.array(2);
      w.str(nv.name);
      w.str(nv.value);
    } else {
      const rm = op.remove;
      if (!isObj(rm) || typeof rm.name !== 'string') return false;
      w.map(1);
      w.raw(REMOVE);
      w.array(1);
      w.str(rm.name);
    }
  }
  return true;
}

/** `audit.custom` with `correlation_id` (when given) last, as `{...custom, correlation_id}` writes it. */
function writeCustom(w: MsgpackWriter, v: unknown, correlationId: string | undefined): boolean {
  const custom = v === undefined || v === null ? undefined : v;
  if (custom !== undefined && (!isObj(custom) || typeof custom.toJSON === 'function')) return false;
  // a handler's own correlation_id keeps its place in the checked path: leave that to it
  if (
    custom !== undefined &&
    correlationId !== undefined &&
    Object.hasOwn(custom, 'correlation_id')
  )
    return false;
  const keys = custom === undefined ? [] : Object.keys(custom);
  let count = correlationId === undefined ? 0 : 1;
  for (const k of keys) if ((custom as Obj)[k] !== undefined) count++;
  w.map(count);
  for (const k of keys) {
    const item = (custom as Obj)[k];
    if (item === undefined) continue;
    w.str(k);
    w.value(item, 1);
  }
  if (correlationId !== undefined) {
    w.raw(CORRELATION_ID);
    w.str(correlationId);
  }
  return true;
}

function writeAudit(w: MsgpackWriter, v: unknown, correlationId: string | undefined): boolean {
  const a = v === undefined || v === null ? {} : v;
  if (!isObj(a)) return false;
  w.array(5);
  if (!writeOptStrList(w, a.tags) || !writeOptStrList(w, a.rule_ids)) return false;
  const c = a.confidence;
  if (c === undefined || c === null) w.nil();
  else if (typeof c === 'number') w.f32(c);
  else return false;
  if (!writeOptStrList(w, a.reason_codes)) return false;
  return writeCustom(w, a.custom, correlationId);
}

/** Writes `r` as rmp-serde's array; false when it is not a plain, well-formed answer. */
export function writeResponseFast(
  w: MsgpackWriter,
  r: unknown,
  correlationId: string | undefined,
): boolean {
  if (!isObj(r) || !isUint(r.version, U32)) return false;
  w.array(10);
  w.int(r.version);
  if (!writeDecision(w, r.decision)) return false;
  if (!writeHeaderOps(w, r.request_headers) || !writeHeaderOps(w, r.response_headers)) return false;
  if (!writeOptStrMap(w, r.routing_metadata)) return false;
  if (!writeAudit(w, r.audit, correlationId)) return false;
  const more = r.needs_more;
  if (more === undefined || more === null) w.bool(false);
  else if (typeof more === 'boolean') w.bool(more);
  else return false;
  // body mutations and WebSocket decisions are rare: the checked path writes them
  if (r.request_body_mutation != null || r.response_body_mutation != null) return false;
  w.nil();
  w.nil();
  const ws = r.websocket_decision;
  if (ws === undefined || ws === null) w.nil();
  else if (ws === 'allow' || ws === 'drop') w.str(ws);
  else return false;
  return true;
}
