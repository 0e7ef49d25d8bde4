/**
 * The engine's configuration and its two sides: the client (a request that
 * arrived, a response to write) and the next hop (where an allowed request goes:
 * an upstream server, or the wrapped application).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import type { AgentPool } from '@picket/pool';
import { type Headers, type Logger, silentLogger } from '@picket/protocol';
import type { AbortNotice } from './abort-notice.js';
import { Exchange } from './exchange.js';
import type { ExchangeSummary } from './exchange-util.js';
import { DEFAULT_PATH_POLICY, normalizePath, type PathPolicy } from './path-policy.js';

/** The events an agent can take, in the order of an exchange. */
export const AGENT_EVENTS = [
  'request_headers',
  'request_body',
  'response_headers',
  'response_body',
  'request_complete',
] as const;
export type AgentEvent = (typeof AGENT_EVENTS)[number];

/** How body events are sent: the whole body at once, or chunk by chunk. */
export type BodyMode = 'buffer' | 'stream';

/** One agent of a chain and how the engine consults it. */
export interface AgentSpec {
  /** the agent's name in the pool */
  readonly name: string;
  readonly events: ReadonlySet<AgentEvent>;
  readonly bodyMode: BodyMode;
  /** buffer mode: the largest body collected for one body event */
  readonly maxBodyBytes: number;
  readonly timeoutMs: number;
  /** what an agent that fails (or a body over `maxBodyBytes`) means: let through, or refuse */
  readonly failureMode: 'open' | 'closed';
}

/** Defaults of {@link agentSpec}. */
export const AGENT_DEFAULTS = {
  bodyMode: 'buffer',
  maxBodyBytes: 1024 * 1024,
  timeoutMs: 1_000,
  failureMode: 'closed',
} as const;

/** An {@link AgentSpec} with defaults: request headers only, buffer mode, 1 MiB, 1 s, fail-closed. */
export function agentSpec(
  name: string,
  o: {
    events?: Iterable<AgentEvent>;
    bodyMode?: BodyMode;
    maxBodyBytes?: number;
    timeoutMs?: number;
    failureMode?: 'open' | 'closed';
  } = {},
): AgentSpec {
  if (name === '') throw new TypeError('agentSpec: the agent name is empty');
  const events = new Set<AgentEvent>(o.events ?? ['request_headers']);
  for (const e of events) {
    if (!AGENT_EVENTS.includes(e)) {
      throw new TypeError(`agentSpec(${JSON.stringify(name)}): unknown event ${JSON.stringify(e)}`);
    }
  }
  const spec: AgentSpec = {
    name,
    events,
    bodyMode: o.bodyMode ?? AGENT_DEFAULTS.bodyMode,
    maxBodyBytes: o.maxBodyBytes ?? AGENT_DEFAULTS.maxBodyBytes,
    timeoutMs: o.timeoutMs ?? AGENT_DEFAULTS.timeoutMs,
    failureMode: o.failureMode ?? AGENT_DEFAULTS.failureMode,
  };
  if (spec.bodyMode !== 'buffer' && spec.bodyMode !== 'stream') {
    throw new TypeError(`agentSpec(${JSON.stringify(name)}): bodyMode must be buffer or stream`);
  }
  if (spec.failureMode !== 'open' && spec.failureMode !== 'closed') {
    throw new TypeError(`agentSpec(${JSON.stringify(name)}): failureMode must be open or closed`);
  }
  if (!Number.isInteger(spec.maxBodyBytes) || spec.maxBodyBytes < 0) {
    throw new TypeError(`agentSpec(${JSON.stringify(name)}): maxBodyBytes must be an integer >= 0`);
  }
  if (!Number.isInteger(spec.timeoutMs) || spec.timeoutMs < 1) {
    throw new TypeError(`agentSpec(${JSON.stringify(name)}): timeoutMs must be an integer >= 1`);
  }
  return spec;
}

/** What a request is routed to: its agent chain and its next hop. */
export interface EngineRoute {
  /** `route_id` for the agents and the summary */
  readonly name: string | null;
  /** `upstream_id` for the agents and the summary */
  readonly upstreamId: string | null;
  /** consulted in this order */
  readonly chain: readonly AgentSpec[];
  /** where the request goes once allowed; {@link HttpEngine.handle}'s `nextHop` overrides it */
  readonly nextHop?: NextHop | undefined;
}

/** A route and the request path it sees, why the path is refused (400), or no route (404). */
export type Routing = { route: EngineRoute; uri: string } | { error: string } | undefined;

/**
 * Picks the route of a request whose Host and target were checked: `host` is
 * the Host (or an absolute-form target's authority; undefined for HTTP/1.0
 * without Host), `target` the origin-form `/path?query` as the client sent it.
 */
export type Router = (host: string | undefined, target: string) => Routing;

/** One route for every request: the path put into `pathPolicy`'s form (default {@link DEFAULT_PATH_POLICY}). */
export function singleRoute(o: {
  chain: readonly AgentSpec[];
  pathPolicy?: PathPolicy;
  name?: string | null;
  upstreamId?: string | null;
  nextHop?: NextHop;
}): Router {
  const route: EngineRoute = {
    name: o.name ?? null,
    upstreamId: o.upstreamId ?? null,
    chain: [...o.chain],
    nextHop: o.nextHop,
  };
  const policy = o.pathPolicy ?? DEFAULT_PATH_POLICY;
  return (_host, target) => {
    const n = normalizePath(target, policy);
    return n.ok ? { route, uri: n.path } : { error: n.reason };
  };
}

/**
 * The request as it arrived. A node:http `IncomingMessage` is one as it is;
 * other sources supply these fields and the body as an async iterable.
 */
export interface ClientRequest extends AsyncIterable<Buffer> {
  readonly method?: string | undefined;
  /** the raw request target */
  readonly url?: string | undefined;
  /** `1.1`, `1.0` */
  readonly httpVersion: string;
  readonly headers: IncomingHttpHeaders;
  /** every header line by name (the Host lines are checked from here) */
  readonly headersDistinct: NodeJS.Dict<string[]>;
  readonly socket: {
    readonly remoteAddress?: string | undefined;
    readonly remotePort?: number | undefined;
    /** a TLS connection (node:https): `x-forwarded-proto: https`, TLS version and cipher for agents */
    readonly encrypted?: boolean | undefined;
    getProtocol?(): string | null;
    getCipher?(): { name: string };
  };
  /** discards a body nobody reads */
  resume(): unknown;
}

/**
 * Where the client's response goes. A node:http `ServerResponse` is one as it
 * is. Its `close` event before `writableFinished` means the client went away.
 */
export type ClientResponse = Writable & {
  readonly headersSent: boolean;
  writeHead(status: number, headers: Record<string, string | string[]>): unknown;
};

/** The request as the agents left it, for the next hop. */
export interface NextHopRequest {
  readonly method: string;
  /** the route's path and query ({@link Routing}'s `uri`) */
  readonly uri: string;
  /**
   * after the agents' header ops; hop-by-hop fields dropped, `content-length`
   * set to the body's real framing, `traceparent`, `x-request-id` and `x-forwarded-*` added
   */
  readonly headers: Headers;
  /** a Buffer after buffer-mode agents (maybe replaced), a stream otherwise; undefined: no body */
  readonly body: Buffer | Readable | undefined;
  /** the body can be sent again (none, or a Buffer) */
  readonly replayable: boolean;
  /**
   * fires when an agent decides or the client goes away; pass it as undici's `signal` as it
   * is (it costs far less per request than an AbortSignal)
   */
  readonly abort: AbortNotice;
  /**
   * an `AbortSignal` that aborts with `abort`, made when first read (a getter: a copy made
   * with `{ ...request }` does not carry it)
   */
  readonly signal: AbortSignal;
}

/** The next hop's response. undici's `Dispatcher.ResponseData` is one. */
export interface NextHopResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<Buffer> & { destroy(error?: Error): unknown };
}

/**
 * Sends the request on and resolves with the response. Reject with an
 * {@link UpstreamFailure} for a 502/503/504; anything else becomes a 500.
 */
export type NextHop = (request: NextHopRequest, exchange: Exchange) => Promise<NextHopResponse>;

/** Optional observers: the gateway's metrics plug in here. */
export interface EngineHooks {
  /** a request begins */
  exchangeStarted?(): void;
  /** one agent answer (or failure-mode stand-in): allow, block, redirect, challenge, fail_open, fail_closed */
  agentDecision?(agent: string, event: AgentEvent, decision: string): void;
  /** reading the next hop's response body failed */
  nextHopError?(upstreamId: string, kind: 'error' | 'timeout'): void;
  /** once per request, when the client's response is over */
  exchangeFinished?(summary: ExchangeSummary): void;
}

export interface HttpEngineOptions {
  /** the agent pool, every agent of the chains added */
  pool: AgentPool;
  router: Router;
  /** a header a trusted front end sets to the client address (`x-forwarded-for`); its first entry is the client IP */
  clientIpHeader?: string | undefined;
  log?: Logger | undefined;
  hooks?: EngineHooks | undefined;
}

/** The per-request engine: `engine.handle(req, res, nextHop?)` for each request. */
export class HttpEngine {
  readonly pool: AgentPool;
  readonly router: Router;
  readonly clientIpHeader: string | undefined;
  readonly log: Logger;
  readonly hooks: EngineHooks;

  constructor(options: HttpEngineOptions) {
    this.pool = options.pool;
    this.router = options.router;
    this.clientIpHeader = options.clientIpHeader?.toLowerCase();
    this.log = options.log ?? silentLogger;
    this.hooks = options.hooks ?? {};
  }

  /**
   * Runs one exchange: agents, next hop (`nextHop`, else the route's), every
   * decision applied to `res`. Never rejects; resolves when the engine is done
   * with the request (the client's response may still be closing).
   */
  handle(req: ClientRequest, res: ClientResponse, nextHop?: NextHop): Promise<void> {
    return new Exchange(this, req, res, nextHop).run();
  }
}
