/**
 * What a spoe-message means to a picket handler and what its answer means to
 * HAProxy: message arguments → RequestHeadersEvent (+ one body chunk), and
 * AgentResponse → set-var actions that the README's haproxy.cfg applies.
 */
import type {
  AgentResponse,
  HeaderOp,
  Headers,
  RequestBodyChunkEvent,
  RequestHeadersEvent,
} from '@picket/protocol';
import { AgentProtocolError, decisionKind, ErrorCode } from '@picket/protocol';
import { type SpopAction, SpopError, type SpopKv, SpopStatus, type SpopValue } from './codec.js';
import { parseBinaryHeaderBlock, parseTextHeaderBlock } from './headers.js';

/** The variable scopes an answer may be written to. */
export type SpoeVarScope = 'txn' | 'sess';

/** The argument names of the spoe-message the server reads (README: "Message arguments"). */
export const SPOE_ARGS = {
  method: 'method',
  path: 'path',
  query: 'query',
  headers: 'headers',
  ip: 'ip',
  port: 'port',
  body: 'body',
  id: 'id',
  version: 'ver',
} as const;

/** The event (and body chunk) one message becomes. */
export interface MappedRequest {
  headers: RequestHeadersEvent;
  /** present when the message carried a non-empty `body` */
  body?: RequestBodyChunkEvent;
}

function describe(v: SpopValue): string {
  return v.type;
}

function text(args: Map<string, SpopValue>, name: string, required: boolean): string | undefined {
  const v = args.get(name);
  if (v === undefined || v.type === 'null') {
    if (required) throw new SpopError(SpopStatus.Invalid, `argument "${name}" is missing`);
    return undefined;
  }
  if (v.type === 'string') return v.value;
  if (v.type === 'binary') return Buffer.from(v.value).toString('utf8');
  throw new SpopError(SpopStatus.Invalid, `argument "${name}" is ${describe(v)}, not a string`);
}

function integer(args: Map<string, SpopValue>, name: string): number | undefined {
  const v = args.get(name);
  if (v === undefined || v.type === 'null') return undefined;
  if (v.type === 'int32' || v.type === 'uint32') return v.value;
  if (v.type === 'int64' || v.type === 'uint64') return Number(v.value);
  throw new SpopError(SpopStatus.Invalid, `argument "${name}" is ${describe(v)}, not an integer`);
}

/** RFC 3339 with an explicit offset, as the protocol's events carry it. */
function timestamp(): string {
  return new Date().toISOString().replace('Z', '+00:00');
}

/**
 * Builds the request event from a message's named arguments (later duplicates win).
 * `method` and `path` are required; a missing one, or an argument of the wrong
 * type, throws a {@link SpopError} naming it (answered with the invalid-event block).
 */
export function requestFromArgs(args: readonly SpopKv[], correlationId: string): MappedRequest {
  const a = new Map<string, SpopValue>(args);
  const method = text(a, SPOE_ARGS.method, true) as string;
  const path = text(a, SPOE_ARGS.path, true) as string;
  const query = text(a, SPOE_ARGS.query, false);
  let headers: Headers = {};
  const h = a.get(SPOE_ARGS.headers);
  if (h?.type === 'binary') headers = parseBinaryHeaderBlock(h.value);
  else if (h?.type === 'string') headers = parseTextHeaderBlock(h.value);
  else if (h !== undefined && h.type !== 'null') {
    throw new SpopError(
      SpopStatus.Invalid,
      `argument "headers" is ${describe(h)}; pass req.hdrs_bin or req.hdrs`,
    );
  }
  const ipArg = a.get(SPOE_ARGS.ip);
  let ip = '';
  if (ipArg?.type === 'ipv4' || ipArg?.type === 'ipv6' || ipArg?.type === 'string') {
    ip = ipArg.value;
  } else if (ipArg !== undefined && ipArg.type !== 'null') {
    throw new SpopError(SpopStatus.Invalid, `argument "ip" is ${describe(ipArg)}, not an address`);
  }
  const id = text(a, SPOE_ARGS.id, false);
  const ver = text(a, SPOE_ARGS.version, false);
  const event: RequestHeadersEvent = {
    metadata: {
      correlation_id: correlationId,
      request_id: id !== undefined && id !== '' ? id : correlationId,
      client_ip: ip,
      client_port: integer(a, SPOE_ARGS.port) ?? 0,
      server_name: headers.host?.[0] ?? null,
      protocol: ver === undefined ? 'HTTP/1.1' : `HTTP/${ver}`,
      timestamp: timestamp(),
    },
    method,
    uri: query !== undefined && query !== '' ? `${path}?${query}` : path,
    headers,
  };
  const b = a.get(SPOE_ARGS.body);
  let data: Uint8Array | undefined;
  if (b?.type === 'binary') data = b.value;
  else if (b?.type === 'string') data = new TextEncoder().encode(b.value);
  else if (b !== undefined && b.type !== 'null') {
    throw new SpopError(SpopStatus.Invalid, `argument "body" is ${describe(b)}, not binary`);
  }
  if (data === undefined || data.length === 0) return { headers: event };
  return {
    headers: event,
    body: {
      correlation_id: correlationId,
      data,
      is_last: true,
      total_size: data.length,
      chunk_index: 0,
      bytes_received: data.length,
    },
  };
}

/** `X-Forwarded-For` → `x_forwarded_for`: the header part of a header-op variable name. */
export function headerVarName(header: string): string {
  return header.toLowerCase().replace(/[^a-z0-9]/g, '_');
}

/**
 * Longest variable name the server sets: HAProxy 2.x formats `<scope>.<prefix>.<name>`
 * into a 64-byte buffer, so a longer name would be cut and miss its variable.
 */
export const MAX_VAR_NAME_LENGTH = 40;

/** What {@link responseActions} made of an answer. */
export interface ResponseActions {
  actions: SpopAction[];
  /** header ops whose variable name was longer than {@link MAX_VAR_NAME_LENGTH} (not sent) */
  skipped: string[];
}

const str = (value: string): SpopValue => ({ type: 'string', value });

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
const LINE_BREAK_OR_NUL = /[\r\n\u0000]/;

/**
 * Refuses what would let an answer smuggle a header or a response line through
 * HAProxy's set-header / redirect: a name that is not an HTTP token, a value with
 * CR, LF or NUL. The server answers such a response with the handler-error block.
 */
function checkHeaderText(what: string, name: string | undefined, value: string | undefined): void {
  if (name !== undefined && !TOKEN.test(name)) {
    throw new AgentProtocolError(
      ErrorCode.InvalidMessage,
      `${what}: header name ${JSON.stringify(name)} is not an HTTP token`,
    );
  }
  if (value !== undefined && LINE_BREAK_OR_NUL.test(value)) {
    throw new AgentProtocolError(ErrorCode.InvalidMessage, `${what}: value contains CR, LF or NUL`);
  }
}
const int = (value: number): SpopValue => ({ type: 'int32', value });

function headerOps(
  prefix: 'req' | 'res',
  ops: readonly HeaderOp[],
  set: (name: string, value: SpopValue) => void,
  skipped: string[],
): void {
  // several adds of one header travel as one list value (HTTP's comma join)
  const adds = new Map<string, string[]>();
  const put = (op: string, header: string, value: SpopValue) => {
    const name = `${prefix}.${op}.${headerVarName(header)}`;
    if (name.length > MAX_VAR_NAME_LENGTH) skipped.push(header);
    else set(name, value);
  };
  for (const op of ops) {
    if ('set' in op) checkHeaderText(`${prefix} set`, op.set.name, op.set.value);
    else if ('add' in op) checkHeaderText(`${prefix} add`, op.add.name, op.add.value);
    else checkHeaderText(`${prefix} remove`, op.remove.name, undefined);
    if ('set' in op) put('set', op.set.name, str(op.set.value));
    else if ('remove' in op) put('del', op.remove.name, { type: 'bool', value: true });
    else {
      const key = headerVarName(op.add.name);
      const list = adds.get(key);
      if (list) list.push(op.add.value);
      else adds.set(key, [op.add.value]);
    }
  }
  for (const [key, values] of adds) put('add', key, str(values.join(', ')));
}

/**
 * The set-var actions carrying an answer (names without HAProxy's `<scope>.<prefix>.`):
 * `decision` (`allow` / `block` / `redirect` / `challenge`), `status` (block and
 * redirect), `location` (redirect), `body` (block, when it has one),
 * `challenge_type` (challenge), `reason` (the reason codes, comma-joined, when
 * any), and one variable per header op: `req.set.<h>`, `req.add.<h>`,
 * `req.del.<h>` (true) for request headers, `res.…` for response headers and a
 * block's own headers, `<h>` being the lowercased name with every character
 * outside `a-z0-9` as `_`. Throws INVALID_MESSAGE for a header name that is not
 * a token or a header value / location with CR, LF or NUL.
 */
export function responseActions(r: AgentResponse, scope: SpoeVarScope): ResponseActions {
  const actions: SpopAction[] = [];
  const set = (name: string, value: SpopValue) =>
    actions.push({ type: 'set-var', scope, name, value });
  const d = r.decision;
  set('decision', str(decisionKind(d)));
  const responseOps: HeaderOp[] = [...r.response_headers];
  if (typeof d === 'object') {
    if ('block' in d) {
      set('status', int(d.block.status));
      if (d.block.body !== undefined && d.block.body !== null) set('body', str(d.block.body));
      for (const [name, value] of Object.entries(d.block.headers ?? {})) {
        responseOps.push({ set: { name, value } });
      }
    } else if ('redirect' in d) {
      set('status', int(d.redirect.status));
      checkHeaderText('redirect location', undefined, d.redirect.url);
      set('location', str(d.redirect.url));
    } else if ('challenge' in d) {
      set('challenge_type', str(d.challenge.challenge_type));
    }
  }
  if (r.audit.reason_codes.length > 0) set('reason', str(r.audit.reason_codes.join(',')));
  const skipped: string[] = [];
  headerOps('req', r.request_headers, set, skipped);
  headerOps('res', responseOps, set, skipped);
  return { actions, skipped };
}

/**
 * One answer from the header answer and the body chunk's: a header answer that
 * does not allow stands; otherwise the body's decision, with the header ops of both.
 */
export function mergeAnswers(first: AgentResponse, body: AgentResponse): AgentResponse {
  return {
    ...body,
    request_headers: [...first.request_headers, ...body.request_headers],
    response_headers: [...first.response_headers, ...body.response_headers],
    audit: {
      ...body.audit,
      tags: [...first.audit.tags, ...body.audit.tags],
      rule_ids: [...first.audit.rule_ids, ...body.audit.rule_ids],
      reason_codes: [...first.audit.reason_codes, ...body.audit.reason_codes],
    },
  };
}
