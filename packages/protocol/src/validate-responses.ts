/** Validators (see validate.ts): AgentResponse and its parts (decision, header ops, audit). */
import { invalidMessage } from './errors.js';
import type {
  AgentResponse,
  AuditMetadata,
  BodyMutation,
  Decision,
  HeaderOp,
  WebSocketDecision,
} from './types.js';
import {
  asList,
  asNumber,
  asObject,
  asStringMap,
  MISSING,
  Struct,
  U16,
  U32,
  variant,
} from './validate-primitives.js';

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
