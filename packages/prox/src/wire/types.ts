/**
 * The payloads of prox's hook socket, with descriptive names; each field's doc names its
 * msgpack key. Decoders always fill every field (an absent key is its zero value, as in Go);
 * encoders take the same shapes with every field optional and omit what Go omits.
 */

/** Hook bytes of the request envelope's `t`. */
export const HookType = {
  /** `on_request`: RequestInfo → AuthorizeResult */
  Request: 1,
  /** `on_response`: ResponsePair → ResponseModResult */
  Response: 2,
  /** `on_connect`: ConnInfo → ConnResult */
  Connect: 3,
  /** `on_disconnect`: DisconnectInfo, fire-and-forget (never answered) */
  Disconnect: 4,
} as const;
/** One of the hook bytes 1..4. */
export type HookType = (typeof HookType)[keyof typeof HookType];

/** Hook names as `ready.hooks` lists them. */
export type HookName = 'on_request' | 'on_response' | 'on_connect' | 'on_disconnect';

/** The name of each hook byte. */
export const HOOK_NAMES: Readonly<Record<HookType, HookName>> = {
  1: 'on_request',
  2: 'on_response',
  3: 'on_connect',
  4: 'on_disconnect',
};

/** The hook byte of each name. */
export const HOOK_TYPES: Readonly<Record<HookName, HookType>> = {
  on_request: 1,
  on_response: 2,
  on_connect: 3,
  on_disconnect: 4,
};

/** A decoded request envelope `{t, d}`: `hook` is any byte (unknown ones included), `data` the inner msgpack. */
export interface Envelope {
  /** `t`: the hook byte (Go's uint8: a wider integer is truncated to its low 8 bits) */
  hook: number;
  /** `d`: the inner payload, still encoded */
  data: Uint8Array;
}

/** The HTTP request an `on_request` (and `on_response`) hook sees. */
export interface RequestInfo {
  /** `r`: route id, `service:index` */
  routeId: string;
  /** `m` */
  method: string;
  /** `p`: path without the query */
  path: string;
  /** `q`: raw query string, without `?` */
  query: string;
  /** `d`: the matched domain */
  domain: string;
  /** `ho`: the Host header */
  host: string;
  /** `pr`: e.g. `HTTP/1.1` */
  proto: string;
  /** `a`: client `ip:port` */
  remoteAddr: string;
  /** `cl`: Content-Length; -1 when unknown (chunked), 0 when absent */
  contentLength: number;
  /** `h`: headers, first value of each */
  headers: Record<string, string>;
  /** `bd`: up to 64 KiB of the body when `cl > 0`; undefined when absent or nil */
  body: Uint8Array | undefined;
  /** `md`: matched domain pattern capture */
  matchDomain: string;
  /** `mg`: matched glob capture */
  matchGlob: string;
  /** `mp`: matched path capture */
  matchPath: string;
  /** `v`: route variables */
  vars: Record<string, string>;
  /** `tg`: the chosen target (newer prox) */
  target: string;
}

/** Bandwidth caps in Mbps (`sp`); 0 means unlimited in that direction. */
export interface SpeedLimit {
  /** `dl` (float64) */
  downloadMbps: number;
  /** `ul` (float64) */
  uploadMbps: number;
  /** `gk`: connections with the same key share one budget */
  groupKey: string;
}

/** The verdict of `on_request`. */
export interface AuthorizeResult {
  /** `ok`: allow; absent reads as deny */
  allow: boolean;
  /** `dr`: abort the connection without a response */
  drop: boolean;
  /** `fb`: route to the fallback action */
  fallback: boolean;
  /** `s`: deny status (prox defaults to 403 when 0) */
  status: number;
  /** `b`: deny body */
  body: string;
  /** `h`: headers injected into the upstream request (allow) or the deny response */
  headers: Record<string, string>;
  /** `sp`: speed limit; undefined when absent */
  speedLimit: SpeedLimit | undefined;
  /** `cq`: strip the query string */
  cleanQuery: boolean;
  /** `rp`: new upstream path */
  rewritePath: string;
}

/** The upstream response an `on_response` hook sees (`resp`). */
export interface UpstreamResponseInfo {
  /** `s` */
  status: number;
  /** `h`: first value of each header */
  headers: Record<string, string>;
}

/** The `on_response` payload. */
export interface ResponsePair {
  /** `req` */
  req: RequestInfo;
  /** `resp` */
  resp: UpstreamResponseInfo;
}

/** What `on_response` changes; all zero means no change. */
export interface ResponseModResult {
  /** `s`: new status, 0 keeps it */
  status: number;
  /** `h`: headers set on the response */
  headers: Record<string, string>;
  /** `rm`: header names removed */
  remove: string[];
}

/** The L4 connection an `on_connect` hook sees. */
export interface ConnInfo {
  /** `r` */
  routeId: string;
  /** `d`: SNI / matched domain */
  domain: string;
  /** `a`: client `ip:port` */
  remoteAddr: string;
  /** `md` */
  matchDomain: string;
  /** `mg` */
  matchGlob: string;
}

/** The verdict of `on_connect`. */
export interface ConnResult {
  /** `ok`; absent reads as deny */
  allow: boolean;
}

/** Statistics of a finished L4 connection (`on_disconnect`, newer prox). */
export interface DisconnectInfo {
  /** `r` */
  routeId: string;
  /** `tg`: the upstream target */
  target: string;
  /** `a` */
  remoteAddr: string;
  /** `rx`: bytes received (int64) */
  bytesRx: number;
  /** `tx`: bytes sent (int64) */
  bytesTx: number;
  /** `ms`: duration in milliseconds (int64) */
  durationMs: number;
}

/** Encoder input for RequestInfo: any subset of the fields, the rest are zero values. */
export type RequestInfoInput = Partial<RequestInfo>;
/** Encoder input for AuthorizeResult (and what a native `onRequest` hook returns). */
export type AuthorizeResultInput = Partial<Omit<AuthorizeResult, 'speedLimit'>> & {
  speedLimit?: Partial<SpeedLimit> | undefined;
};
/** Encoder input for ResponsePair. */
export interface ResponsePairInput {
  req?: RequestInfoInput;
  resp?: Partial<UpstreamResponseInfo>;
}
/** Encoder input for ResponseModResult (and what a native `onResponse` hook returns). */
export type ResponseModResultInput = Partial<ResponseModResult>;
/** Encoder input for ConnInfo. */
export type ConnInfoInput = Partial<ConnInfo>;
/** Encoder input for ConnResult (and what a native `onConnect` hook returns). */
export type ConnResultInput = Partial<ConnResult>;
/** Encoder input for DisconnectInfo. */
export type DisconnectInfoInput = Partial<DisconnectInfo>;
