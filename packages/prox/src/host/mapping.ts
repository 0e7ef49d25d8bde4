/**
 * picket events ↔ prox hook payloads, host side (see the README's mapping table).
 *
 * - request-headers event (+ the body when the host captures it) → `RequestInfo`;
 * - `AuthorizeResult` → AgentResponse: drop and fallback are blocks carrying a marker (a proxy
 *   that does not know them still refuses the request), `!ok` a block, `ok` an allow with
 *   request header ops; what picket has no decision for is put in `routing_metadata`;
 * - response-headers event → `ResponsePair`; `ResponseModResult` → response header ops (and
 *   the new status in `routing_metadata`);
 * - request-complete event → `DisconnectInfo`.
 */
import {
  type AgentResponse,
  agentResponse,
  allow,
  type HeaderOp,
  type Headers,
  type RequestCompleteEvent,
  type RequestHeadersEvent,
  type ResponseHeadersEvent,
  removeHeader,
  setHeader,
} from '@picket/protocol';
import type {
  AuthorizeResult,
  DisconnectInfoInput,
  RequestInfoInput,
  ResponseModResult,
  ResponsePairInput,
} from '../wire/types.js';

/** prox captures at most this much of a request body (`bd`). */
export const MAX_CAPTURED_BODY = 64 * 1024;

/** The `routing_metadata` keys and audit tags the host puts on an answer. */
export const PROX_METADATA = {
  /** `dr`: abort the client connection without a response (the answer is a block) */
  drop: 'prox.drop',
  /** `fb`: route the request to the fallback action (the answer is a block) */
  fallback: 'prox.fallback',
  /** `rp`: the path to send upstream instead */
  rewritePath: 'prox.rewrite_path',
  /** `cq`: strip the query string before proxying (`"true"`) */
  cleanQuery: 'prox.clean_query',
  /** `sp.dl`: download limit in Mbps */
  speedDownload: 'prox.speed_download_mbps',
  /** `sp.ul`: upload limit in Mbps */
  speedUpload: 'prox.speed_upload_mbps',
  /** `sp.gk`: connections with this key share one budget */
  speedGroup: 'prox.speed_group_key',
  /** `ResponseModResult.s`: the status the client should get instead */
  responseStatus: 'prox.response_status',
} as const;

/** 1 for the bytes of an RFC 7230 token (what Go canonicalizes), by char code below 128. */
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TOKEN[c.charCodeAt(0)] = 1;
}

/** Canonical forms of the names seen: a request repeats the same few dozen. */
const canonical = new Map<string, string>();
const MAX_CACHED_KEYS = 1024;

function canonicalize(name: string): string {
  if (name.length === 0) return name;
  let out = '';
  let upper = true;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || TOKEN[c] === 0) return name; // not a token: kept as is
    let d = c;
    if (upper && c >= 0x61 && c <= 0x7a) d = c - 0x20;
    else if (!upper && c >= 0x41 && c <= 0x5a) d = c + 0x20;
    out += String.fromCharCode(d);
    upper = c === 0x2d; // '-'
  }
  return out;
}

/** Go's `textproto.CanonicalMIMEHeaderKey`: `content-type` → `Content-Type`; a key with a byte outside a token is kept as is. */
export function canonicalHeaderKey(name: string): string {
  let key = canonical.get(name);
  if (key === undefined) {
    key = canonicalize(name);
    // names come from clients: the cache starts over rather than grow without bound
    if (canonical.size >= MAX_CACHED_KEYS) canonical.clear();
    canonical.set(name, key);
  }
  return key;
}

/** First value of each header, keys in Go's canonical form (what prox's `h` carries); Host is left out as Go does. */
export function firstValues(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(headers)) {
    const v = (headers[name] as string[])[0];
    if (v === undefined) continue;
    const key = canonicalHeaderKey(name);
    if (key === 'Host' || Object.hasOwn(out, key)) continue;
    if (key === '__proto__') {
      // a plain assignment would set the prototype instead of a member
      Object.defineProperty(out, key, {
        value: v,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else {
      out[key] = v;
    }
  }
  return out;
}

interface Framing {
  host?: string | undefined;
  cl?: string | undefined;
  te?: string | undefined;
}

/**
 * The first value of the first Host, Content-Length and Transfer-Encoding header (names in any
 * case), in one pass over the names.
 */
function framingHeaders(headers: Headers): Framing {
  const out: Framing = {};
  for (const k of Object.keys(headers)) {
    // only names of these lengths can lower-case to one of the three: the others are skipped
    const n = k.length;
    if (n !== 4 && n !== 14 && n !== 17) continue;
    const lower = k.toLowerCase();
    const field =
      lower === 'host'
        ? 'host'
        : lower === 'content-length'
          ? 'cl'
          : lower === 'transfer-encoding'
            ? 'te'
            : undefined;
    if (field !== undefined && !Object.hasOwn(out, field)) out[field] = (headers[k] as string[])[0];
  }
  return out;
}

/**
 * prox's `cl`: the Content-Length when it is a valid number; -1 ("unknown", Go's chunked
 * request) when there is none but a Transfer-Encoding header; else 0.
 */
export function contentLength(headers: Headers): number {
  const h = framingHeaders(headers);
  return lengthOf(h.cl, h.te);
}

function lengthOf(cl: string | undefined, te: string | undefined): number {
  if (cl !== undefined && /^\d{1,15}$/.test(cl.trim())) return Number(cl.trim());
  return te !== undefined ? -1 : 0;
}

/** Go's `RemoteAddr`: `ip:port`, IPv6 in brackets. */
function remoteAddr(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * The `RequestInfo` of a request-headers event: `r` the event's route id (or `routeId`),
 * `p` / `q` split from the uri at the first `?`, `d` the server name (the Host without its
 * port when there is none), `ho` the Host header, `a` the client `ip:port`, `cl` see
 * {@link contentLength}, `h` {@link firstValues}, `bd` the captured body when given.
 */
export function requestInfo(
  e: RequestHeadersEvent,
  routeId: string,
  body?: Uint8Array,
): RequestInfoInput & { routeId: string } {
  const q = e.uri.indexOf('?');
  const framing = framingHeaders(e.headers);
  const host = framing.host ?? '';
  const domain = e.metadata.server_name ?? host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const info: RequestInfoInput & { routeId: string } = {
    routeId: e.metadata.route_id ?? routeId,
    method: e.method,
    path: q < 0 ? e.uri : e.uri.slice(0, q),
    query: q < 0 ? '' : e.uri.slice(q + 1),
    domain,
    host,
    proto: e.metadata.protocol,
    remoteAddr: remoteAddr(e.metadata.client_ip, e.metadata.client_port),
    contentLength: lengthOf(framing.cl, framing.te),
    headers: firstValues(e.headers),
  };
  if (body !== undefined && body.length > 0) info.body = body.subarray(0, MAX_CAPTURED_BODY);
  return info;
}

function headerOps(h: Record<string, string>): HeaderOp[] {
  return Object.entries(h).map(([k, v]) => setHeader(k, v));
}

/**
 * An `AuthorizeResult` as picket's answer, in prox's order of precedence:
 * - `dr` → block (`s`, default 403) with `routing_metadata["prox.drop"] = "true"` and tag
 *   `prox:drop`: prox aborts the connection without a response; a proxy that cannot do that
 *   sends the block;
 * - `fb` → block likewise marked `prox.fallback` / `prox:fallback` (prox routes to the fallback
 *   action);
 * - `!ok` → block with `s` (default 403), `b` as the body, `h` as the block's headers;
 * - `ok` → allow; `h` become request header `set` ops; `rp`, `cq` and `sp` go to
 *   `routing_metadata` ({@link PROX_METADATA}) with the tags `prox:rewrite_path`,
 *   `prox:clean_query`, `prox:speed_limit`.
 */
export function authorizeResponse(r: AuthorizeResult): AgentResponse {
  const status = r.status > 0 ? r.status : 403;
  const blockOf = (marker?: 'drop' | 'fallback'): AgentResponse =>
    agentResponse(
      {
        block: {
          status,
          body: r.body === '' ? null : r.body,
          headers: Object.keys(r.headers).length > 0 ? { ...r.headers } : null,
        },
      },
      marker === undefined
        ? {}
        : { routingMetadata: { [PROX_METADATA[marker]]: 'true' }, tags: [`prox:${marker}`] },
    );
  if (r.drop) return blockOf('drop');
  if (r.fallback) return blockOf('fallback');
  if (!r.allow) return blockOf();
  const meta: Record<string, string> = {};
  const tags: string[] = [];
  if (r.rewritePath !== '') {
    meta[PROX_METADATA.rewritePath] = r.rewritePath;
    tags.push('prox:rewrite_path');
  }
  if (r.cleanQuery) {
    meta[PROX_METADATA.cleanQuery] = 'true';
    tags.push('prox:clean_query');
  }
  const sp = r.speedLimit;
  if (sp !== undefined && (sp.downloadMbps > 0 || sp.uploadMbps > 0)) {
    if (sp.downloadMbps > 0) meta[PROX_METADATA.speedDownload] = String(sp.downloadMbps);
    if (sp.uploadMbps > 0) meta[PROX_METADATA.speedUpload] = String(sp.uploadMbps);
    if (sp.groupKey !== '') meta[PROX_METADATA.speedGroup] = sp.groupKey;
    tags.push('prox:speed_limit');
  }
  return allow({ requestHeaders: headerOps(r.headers), routingMetadata: meta, tags });
}

/** The `ResponsePair` of a response-headers event, with the request it answers (when known). */
export function responsePair(
  e: ResponseHeadersEvent,
  req: RequestInfoInput | undefined,
  routeId: string,
): ResponsePairInput {
  return {
    req: req ?? { routeId },
    resp: { status: e.status, headers: firstValues(e.headers) },
  };
}

/**
 * A `ResponseModResult` as picket's answer: allow with response header ops — `h` as `set`,
 * then `rm` as `remove` (so a name in both ends up removed) — and a non-zero `s` as
 * `routing_metadata["prox.response_status"]` (tag `prox:response_status`): picket's allow
 * cannot change a status.
 */
export function responseModResponse(m: ResponseModResult): AgentResponse {
  const ops = [...headerOps(m.headers), ...m.remove.map((n) => removeHeader(n))];
  if (m.status > 0) {
    return allow({
      responseHeaders: ops,
      routingMetadata: { [PROX_METADATA.responseStatus]: String(m.status) },
      tags: ['prox:response_status'],
    });
  }
  return allow({ responseHeaders: ops });
}

/**
 * The `DisconnectInfo` of a request-complete event: `rx` the request body bytes, `tx` the
 * response body bytes, `ms` the duration; `r` and `a` from the request when it is known.
 */
export function disconnectInfo(
  e: RequestCompleteEvent,
  req: RequestInfoInput | undefined,
  routeId: string,
): DisconnectInfoInput {
  return {
    routeId: req?.routeId ?? routeId,
    remoteAddr: req?.remoteAddr ?? '',
    bytesRx: e.request_body_size,
    bytesTx: e.response_body_size,
    durationMs: Math.round(e.duration_ms),
  };
}
