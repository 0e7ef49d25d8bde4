/**
 * Any picket AgentHandler as prox-native hooks (plugin side; the README has the table).
 *
 * - `on_request`: RequestInfo → request-headers event, then a request-body-chunk event when
 *   `bd` is present and the headers were allowed; allow + header ops → `ok` + `h`; block,
 *   redirect, challenge → `ok:false`, `s`, `b`, `h` (Location, WWW-Authenticate);
 * - `on_response`: ResponsePair → response-headers event; the answer's response header ops →
 *   `h` / `rm`, a non-allow → its status in `s` with its headers;
 * - `on_connect`: ConnInfo → a request-headers event for `CONNECT <domain>` (picket has no L4
 *   event); allow → `ok`, anything else → deny;
 * - `on_disconnect`: DisconnectInfo → request-complete event (its answer is dropped);
 * - `configure`: → a configure event with `{ route_id, match }` (its answer is dropped).
 * A hook that throws or answers something that is not an AgentResponse gets the protocol's
 * handler-error answer (block 500), never an allow.
 */
import {
  type AgentHandler,
  type AgentResponse,
  type AgentTracingOptions,
  type ConfigureEvent,
  EVENT_TYPE_NUMBERS,
  type EventMap,
  type EventType,
  type HeaderOp,
  type Headers,
  handlerErrorResponse,
  parseAgentResponse,
  putOwn,
  type RequestCompleteEvent,
  type RequestHeadersEvent,
} from '@picket/protocol';
import {
  type AgentTracing,
  agentTracing,
  LazyAbort,
  requestContext,
  runHook,
} from '@picket/protocol/internal';
import type { ConfigureParams } from '../wire/control.js';
import type {
  AuthorizeResultInput,
  ConnInfo,
  ConnResultInput,
  DisconnectInfo,
  HookName,
  RequestInfo,
  ResponseModResultInput,
  UpstreamResponseInfo,
} from '../wire/types.js';
import type { ProxHookContext, ProxHooks } from './hooks.js';

/**
 * `routing_metadata` keys a picket answer can use for what only prox has (the host side reads
 * the same keys from a prox plugin's answer).
 */
const META = {
  drop: 'prox.drop',
  fallback: 'prox.fallback',
  rewritePath: 'prox.rewrite_path',
  cleanQuery: 'prox.clean_query',
  speedDownload: 'prox.speed_download_mbps',
  speedUpload: 'prox.speed_upload_mbps',
  speedGroup: 'prox.speed_group_key',
  responseStatus: 'prox.response_status',
} as const;

/** Options of {@link agentHooks}; `tracer`: a span per event. */
export interface AgentHooksOptions extends AgentTracingOptions {
  /**
   * The prox hooks to serve. Default: `on_request`; `on_response` when the handler declares
   * response_headers in its capabilities and has `onResponseHeaders`; `on_connect` likewise for
   * request_headers; `on_disconnect` for request_complete (`onRequestComplete`).
   */
  hooks?: readonly HookName[];
  /** Prefix of the correlation ids made for each prox call; default `prox-<pid>`. */
  correlationPrefix?: string;
}

let sequence = 0;

/**
 * The hooks a handler serves by default: the events its capabilities declare
 * (`supported_events`) that it has a hook for — a wrapper with every hook (an event logger)
 * still serves only what the agent declared.
 */
function defaultHooks(handler: AgentHandler): HookName[] {
  let declared: ReadonlySet<number>;
  try {
    declared = new Set(handler.capabilities().supported_events);
  } catch {
    declared = new Set();
  }
  const has = (type: EventType, hook: keyof AgentHandler): boolean =>
    declared.has(EVENT_TYPE_NUMBERS[type]) && typeof handler[hook] === 'function';
  const hooks: HookName[] = ['on_request'];
  if (has('response_headers', 'onResponseHeaders')) hooks.push('on_response');
  if (has('request_headers', 'onRequestHeaders')) hooks.push('on_connect');
  if (has('request_complete', 'onRequestComplete')) hooks.push('on_disconnect');
  return hooks;
}

/** `ip:port` (IPv6 in brackets) → client ip and port; a missing or bad port reads as 0. */
export function splitAddr(addr: string): { ip: string; port: number } {
  const m = /^\[([^\]]*)\]:(\d+)$/.exec(addr) ?? /^([^:]*):(\d+)$/.exec(addr);
  if (m === null) return { ip: addr.replace(/^\[(.*)\]$/, '$1'), port: 0 };
  const port = Number(m[2]);
  return { ip: m[1] as string, port: port <= 65535 ? port : 0 };
}

/** prox's first-value map as picket headers: lowercase names, one value each (merged on a clash). */
function toHeaders(h: Record<string, string>): Headers {
  const out: Headers = {};
  for (const [name, value] of Object.entries(h)) {
    const key = name.toLowerCase();
    const prev = Object.hasOwn(out, key) ? out[key] : undefined;
    putOwn(out, key, prev === undefined ? [value] : [...prev, value]);
  }
  return out;
}

function put(out: Record<string, string>, k: string, v: string): void {
  putOwn(out, k, v);
}

/**
 * Header ops as prox can apply them: `set` and `add` become `h[name] = value` (prox sets
 * one value; a later op wins), `remove` goes to `removed` (on_response: `rm`; on_request
 * prox cannot remove, so the header is set empty).
 */
function applyOps(ops: HeaderOp[], h: Record<string, string>, removed: string[] | undefined): void {
  for (const op of ops) {
    if ('set' in op) put(h, op.set.name, op.set.value);
    else if ('add' in op) put(h, op.add.name, op.add.value);
    else if (removed !== undefined) {
      removed.push(op.remove.name);
      delete h[op.remove.name];
    } else put(h, op.remove.name, '');
  }
}

/** HTTP auth schemes a challenge can name (a Map: a type like `constructor` is no scheme). */
const AUTH_SCHEMES = new Map([
  ['basic', 'Basic'],
  ['bearer', 'Bearer'],
  ['digest', 'Digest'],
  ['negotiate', 'Negotiate'],
]);

const inRange = (s: number, lo: number, hi: number): boolean =>
  Number.isInteger(s) && s >= lo && s <= hi;

/**
 * A non-allow decision as prox's deny (`s`, `b`, `h`), rendered as picket's gateway does:
 * block → its status (403 unless 4xx/5xx), body and headers; redirect → its status (302
 * unless 3xx) with `Location`; challenge → 401 with `WWW-Authenticate` for an HTTP auth
 * scheme, else 403, a `params.status` 4xx overriding it, and a JSON body naming the challenge.
 */
export function denyOf(r: AgentResponse): {
  status: number;
  body: string;
  headers: Record<string, string>;
} {
  const d = r.decision;
  const headers: Record<string, string> = {};
  if (d === 'allow') return { status: 403, body: '', headers };
  if ('block' in d) {
    for (const [k, v] of Object.entries(d.block.headers ?? {})) put(headers, k, v);
    return {
      status: inRange(d.block.status, 400, 599) ? d.block.status : 403,
      body: d.block.body ?? '',
      headers,
    };
  }
  if ('redirect' in d) {
    headers.Location = d.redirect.url;
    return {
      status: inRange(d.redirect.status, 300, 399) ? d.redirect.status : 302,
      body: '',
      headers,
    };
  }
  const c = d.challenge;
  const { status: statusParam, ...params } = c.params;
  const scheme = AUTH_SCHEMES.get(c.challenge_type.toLowerCase());
  let status = scheme !== undefined ? 401 : 403;
  if (statusParam !== undefined && inRange(Number(statusParam), 400, 499))
    status = Number(statusParam);
  if (scheme !== undefined) {
    const pairs = Object.entries(params)
      .filter(([k]) => /^[A-Za-z0-9_-]+$/.test(k))
      .map(([k, v]) => `${k}="${v.replace(/[\\"]/g, (x) => `\\${x}`)}"`);
    headers['WWW-Authenticate'] = pairs.length > 0 ? `${scheme} ${pairs.join(', ')}` : scheme;
  }
  headers['Content-Type'] = 'application/json';
  headers['Cache-Control'] = 'no-store';
  return { status, body: JSON.stringify({ challenge_type: c.challenge_type, params }), headers };
}

/** Runs one handler hook and checks its answer; a failure is the handler-error answer (block 500). */
async function call<K extends EventType>(
  handler: AgentHandler,
  type: K,
  event: EventMap[K],
  correlationId: string,
  ctx: ProxHookContext,
  tracing: AgentTracing | undefined,
): Promise<AgentResponse> {
  const abort = new LazyAbort();
  const onAbort = (): void => abort.abort(ctx.signal.reason);
  if (ctx.signal.aborted) onAbort();
  else ctx.signal.addEventListener('abort', onAbort, { once: true });
  const rctx = requestContext(abort, correlationId, 'prox', ctx.connectionId, undefined);
  try {
    let answer: unknown;
    try {
      answer = await runHook(handler, type, event, rctx, tracing);
    } catch (err) {
      ctx.logger.warn('agent handler failed; answering its handler-error response', {
        event: type,
        correlationId,
        error: err instanceof Error ? err.message : String(err),
      });
      return handlerErrorResponse(type, 'HANDLER_ERROR');
    }
    try {
      return parseAgentResponse(answer);
    } catch (err) {
      ctx.logger.warn(
        'agent handler answered no valid AgentResponse; answering its handler-error response',
        {
          event: type,
          correlationId,
          error: err instanceof Error ? err.message : String(err),
        },
      );
      return handlerErrorResponse(type, 'INVALID_RESPONSE');
    }
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
}

function meta(r: AgentResponse, key: string): string | undefined {
  return Object.hasOwn(r.routing_metadata, key) ? r.routing_metadata[key] : undefined;
}

function positive(v: string | undefined): number {
  const n = v === undefined ? Number.NaN : Number(v);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** The answer to `on_request`, from the last event's answer and the header ops of all. */
function authorizeOf(last: AgentResponse, ops: HeaderOp[]): AuthorizeResultInput {
  if (last.decision !== 'allow') {
    const deny = denyOf(last);
    return {
      allow: false,
      drop: meta(last, META.drop) === 'true',
      fallback: meta(last, META.fallback) === 'true',
      ...deny,
    };
  }
  const headers: Record<string, string> = {};
  applyOps(ops, headers, undefined);
  const out: AuthorizeResultInput = { allow: true, headers };
  const rp = meta(last, META.rewritePath);
  if (rp !== undefined && rp !== '') out.rewritePath = rp;
  if (meta(last, META.cleanQuery) === 'true') out.cleanQuery = true;
  const dl = positive(meta(last, META.speedDownload));
  const ul = positive(meta(last, META.speedUpload));
  if (dl > 0 || ul > 0) {
    out.speedLimit = {
      downloadMbps: dl,
      uploadMbps: ul,
      groupKey: meta(last, META.speedGroup) ?? '',
    };
  }
  return out;
}

/**
 * prox-native hooks that run `handler`: the mapping of this module's header. Each prox call
 * gets a fresh correlation id (`<prefix>-<n>`); prox's on_response does not say which
 * on_request it follows, so the response-headers event has its own id.
 */
export function agentHooks(handler: AgentHandler, options: AgentHooksOptions = {}): ProxHooks {
  const prefix = options.correlationPrefix ?? `prox-${process.pid}`;
  const nextId = (): string => `${prefix}-${(++sequence).toString(36)}`;
  const wanted = new Set<HookName>(options.hooks ?? defaultHooks(handler));
  const tracing = agentTracing(options.tracer, 'agentHooks');

  const requestEvent = (
    id: string,
    req: Pick<RequestInfo, 'routeId' | 'remoteAddr' | 'domain' | 'proto' | 'target'>,
    method: string,
    uri: string,
    headers: Headers,
  ): RequestHeadersEvent => {
    const { ip, port } = splitAddr(req.remoteAddr);
    return {
      metadata: {
        correlation_id: id,
        request_id: id,
        client_ip: ip,
        client_port: port,
        server_name: req.domain === '' ? null : req.domain,
        protocol: req.proto === '' ? 'HTTP/1.1' : req.proto,
        route_id: req.routeId === '' ? null : req.routeId,
        upstream_id: req.target === '' ? null : req.target,
        timestamp: new Date().toISOString(),
      },
      method,
      uri,
      headers,
    };
  };

  const hooks: ProxHooks = {};

  if (wanted.has('on_request')) {
    hooks.onRequest = async (req: RequestInfo, ctx: ProxHookContext) => {
      const id = nextId();
      const headers = toHeaders(req.headers);
      if (req.host !== '' && !Object.hasOwn(headers, 'host')) headers.host = [req.host];
      const uri = req.query === '' ? req.path : `${req.path}?${req.query}`;
      const event = requestEvent(id, req, req.method, uri, headers);
      const first = await call(handler, 'request_headers', event, id, ctx, tracing);
      if (first.decision !== 'allow' || req.body === undefined || !handler.onRequestBodyChunk) {
        return authorizeOf(first, first.request_headers);
      }
      const second = await call(
        handler,
        'request_body_chunk',
        {
          correlation_id: id,
          data: req.body,
          is_last: true,
          total_size: req.contentLength >= 0 ? req.contentLength : null,
          chunk_index: 0,
          bytes_received: req.body.length,
        },
        id,
        ctx,
        tracing,
      );
      if (second.decision !== 'allow') return authorizeOf(second, []);
      // Both allowed: header ops of both, routing metadata merged (the body's answer wins).
      const merged = {
        ...second,
        routing_metadata: { ...first.routing_metadata, ...second.routing_metadata },
      };
      return authorizeOf(merged, [...first.request_headers, ...second.request_headers]);
    };
  }

  if (wanted.has('on_response')) {
    hooks.onResponse = async (
      _req: RequestInfo,
      resp: UpstreamResponseInfo,
      ctx: ProxHookContext,
    ): Promise<ResponseModResultInput> => {
      const id = nextId();
      const answer = await call(
        handler,
        'response_headers',
        { correlation_id: id, status: resp.status, headers: toHeaders(resp.headers) },
        id,
        ctx,
        tracing,
      );
      const headers: Record<string, string> = {};
      const remove: string[] = [];
      if (answer.decision !== 'allow') {
        const deny = denyOf(answer);
        applyOps(answer.response_headers, headers, remove);
        for (const [k, v] of Object.entries(deny.headers)) put(headers, k, v);
        return { status: deny.status, headers, remove };
      }
      applyOps(answer.response_headers, headers, remove);
      const status = positive(meta(answer, META.responseStatus));
      return { status: inRange(status, 100, 999) ? status : 0, headers, remove };
    };
  }

  if (wanted.has('on_connect')) {
    hooks.onConnect = async (conn: ConnInfo, ctx: ProxHookContext): Promise<ConnResultInput> => {
      const id = nextId();
      const headers: Headers = conn.domain === '' ? {} : { host: [conn.domain] };
      const event = requestEvent(
        id,
        { ...conn, proto: 'TCP', target: '' },
        'CONNECT',
        conn.domain,
        headers,
      );
      const answer = await call(handler, 'request_headers', event, id, ctx, tracing);
      return { allow: answer.decision === 'allow' };
    };
  }

  if (wanted.has('on_disconnect')) {
    hooks.onDisconnect = async (info: DisconnectInfo, ctx: ProxHookContext): Promise<void> => {
      const id = nextId();
      const event: RequestCompleteEvent = {
        correlation_id: id,
        status: 0,
        duration_ms: info.durationMs,
        request_body_size: info.bytesRx,
        response_body_size: info.bytesTx,
        upstream_attempts: 1,
        error: null,
      };
      await call(handler, 'request_complete', event, id, ctx, tracing);
    };
  }

  if (handler.onConfigure) {
    hooks.onConfigure = async (params: ConfigureParams, ctx: ProxHookContext): Promise<void> => {
      const id = nextId();
      const event: ConfigureEvent = {
        correlation_id: id,
        config: { route_id: params.routeId, match: params.match ?? null },
        config_version: null,
      };
      const answer = await call(handler, 'configure', event, id, ctx, tracing);
      if (answer.decision !== 'allow') {
        ctx.logger.warn('agent refused the prox configure; prox has no way to hear it', {
          routeId: params.routeId,
        });
      }
    };
  }

  return hooks;
}
