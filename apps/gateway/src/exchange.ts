/**
 * One proxied request, start to finish: route, request headers through the
 * agent chain, request body, upstream, response headers, response body,
 * request-complete — with every decision applied to the HTTP exchange.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type AgentResponse,
  agentResponse,
  type CallOptions,
  decisionKind,
  type HeaderOp,
  type Headers,
  putOwn,
  type RequestMetadata,
} from '@picket/protocol';
import type { Dispatcher } from 'undici';
import { bodyPipeline, type ChunkInfo, collect, DecisionSignal, type StageHooks } from './body.js';
import type { AgentConfig, GatewayEvent, RouteConfig } from './config.js';
import { errorResponse, type GeneratedResponse, renderDecision } from './decisions.js';
import type { GatewayCore, Upstream } from './gateway.js';
import {
  applyHeaderOps,
  cloneHeaders,
  dropHopByHopFields,
  firstForwardedAddress,
  newTraceparent,
  normaliseIp,
  parseTraceparent,
  rfc3339,
  setContentLength,
  stripHopByHop,
  toHeaderMap,
  toOutgoing,
  validHeader,
} from './http-util.js';
import { routeRequest } from './routes.js';
import { readTarget } from './target.js';

/** One agent answer as recorded for the exchange summary. */
export interface AgentVerdict {
  agent: string;
  event: GatewayEvent;
  /** `allow`, `allow (fail-open)`, `needs_more`, `block 403`, `redirect 302`, `challenge captcha`, `skipped (…)` */
  decision: string;
}

/** What happened to one request; emitted as the gateway's `exchange` event. */
export interface ExchangeSummary {
  correlationId: string;
  requestId: string;
  method: string;
  uri: string;
  clientIp: string;
  route: string | null;
  upstream: string | null;
  /** status sent to the client (499 when the client went away first) */
  status: number;
  /** allow, block, redirect, challenge, bad_request, no_route, upstream_error, upstream_timeout, client_disconnect, error */
  outcome: string;
  /** the agent whose decision ended the exchange, if any */
  decidedBy: string | null;
  verdicts: AgentVerdict[];
  upstreamAttempts: number;
  requestBodySize: number;
  responseBodySize: number;
  durationMs: number;
  error: string | null;
}

/** An upstream that failed or timed out. */
class UpstreamFailure extends Error {
  constructor(
    readonly kind: 'error' | 'timeout',
    message: string,
  ) {
    super(message);
  }
}

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);
/** errors that prove the request never reached the upstream application */
const RETRYABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE']);

function errorCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur && typeof cur === 'object'; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

function describeVerdict(r: AgentResponse): string {
  const d = r.decision;
  const failOpen = r.audit.tags.includes('fail_open');
  if (d === 'allow') {
    if (failOpen) return `allow (fail-open: ${r.audit.reason_codes[0] ?? 'error'})`;
    return r.needs_more ? 'needs_more' : 'allow';
  }
  if ('block' in d) {
    return r.audit.tags.includes('fail_closed')
      ? `block ${d.block.status} (fail-closed: ${r.audit.reason_codes[0] ?? 'error'})`
      : `block ${d.block.status}`;
  }
  if ('redirect' in d) return `redirect ${d.redirect.status}`;
  return `challenge ${d.challenge.challenge_type}`;
}

function metricDecision(r: AgentResponse): string {
  if (r.audit.tags.includes('fail_open')) return 'fail_open';
  if (r.audit.tags.includes('fail_closed')) return 'fail_closed';
  return decisionKind(r.decision);
}

/** A request carries a body when it says so (RFC 9112 §6.3). */
function requestHasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}

function declaredLength(v: string | undefined): number | null {
  if (v === undefined || !/^\d+$/.test(v)) return null;
  return Number(v);
}

/** Counts the bytes flowing through. */
async function* counting(source: AsyncIterable<Buffer>, add: (n: number) => void) {
  for await (const chunk of source) {
    add(chunk.length);
    yield chunk;
  }
}

/** Re-yields an iterator whose first result was already taken. */
async function* resume(
  first: IteratorResult<Buffer>,
  it: AsyncIterator<Buffer>,
): AsyncGenerator<Buffer> {
  if (first.done) return;
  yield first.value;
  for (;;) {
    const next = await it.next();
    if (next.done) return;
    yield next.value;
  }
}

/** Runs one request; create with `new Exchange(core, req, res).run()`. */
export class Exchange {
  private readonly started = performance.now();
  readonly correlationId = randomUUID();
  readonly requestId: string;
  private readonly traceparent: string;
  private readonly clientAbort = new AbortController();
  private readonly upstreamAbort = new AbortController();
  private route: RouteConfig | undefined;
  private upstream: Upstream | undefined;
  private chain: AgentConfig[] = [];
  private readonly verdicts: AgentVerdict[] = [];
  /** response header ops collected before the response headers exist */
  private readonly pendingResponseOps: HeaderOp[] = [];
  /** the request headers forwarded upstream (null once they are sent) */
  private forwardHeaders: Headers | null = null;
  /** the response headers for the client (null once written) */
  private clientHeaders: Headers | null = null;
  private requestBodySize = 0;
  private responseBodySize = 0;
  private upstreamAttempts = 0;
  private status = 0;
  private outcome = 'allow';
  private decidedBy: string | null = null;
  private error: string | null = null;
  private clientGone = false;
  /** the gateway itself ended the client connection (a response it could not finish) */
  private cutByGateway = false;
  /** a body stage raised a decision (its stream teardown is not a client disconnect) */
  private decisionRaised = false;
  private completed = false;
  /** cancels and request-completes sent as the exchange ends (they need the request's affinity) */
  private readonly agentCallsAtEnd: Promise<unknown>[] = [];
  /** a decision reached while the request body was already streaming upstream */
  private bodyDecision: DecisionSignal | undefined;
  private readonly clientIp: string;
  /** the raw request target until routing puts it into the route's path form */
  private uri: string;
  /** the checked Host (or an absolute-form target's authority) */
  private host: string | undefined;

  constructor(
    private readonly core: GatewayCore,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    const rid = req.headers['x-request-id'];
    this.requestId =
      typeof rid === 'string' &&
      rid.length > 0 &&
      rid.length <= 200 &&
      validHeader('x-request-id', rid)
        ? rid
        : randomUUID();
    const incoming = req.headers.traceparent;
    this.traceparent =
      parseTraceparent(typeof incoming === 'string' ? incoming : undefined) ?? newTraceparent();
    const trusted = core.config.clientIpHeader;
    this.clientIp =
      (trusted && firstForwardedAddress(req.headers[trusted])) ||
      normaliseIp(req.socket.remoteAddress);
    this.uri = req.url ?? '/';
    core.metrics.inFlight++;
    res.once('close', () => {
      if (!res.writableFinished && !this.cutByGateway && !this.decisionRaised) {
        this.clientDisconnected();
      }
      this.complete();
    });
  }

  /** Handles the request; never rejects. */
  async run(): Promise<void> {
    try {
      await this.proxy();
    } catch (e) {
      if (e instanceof DecisionSignal) this.decide(e.agent, e.response);
      else if (e instanceof UpstreamFailure) this.upstreamFailed(e);
      else if (!this.clientGone) {
        this.error = e instanceof Error ? e.message : String(e);
        this.outcome = 'error';
        this.core.log.error(`request ${this.correlationId} failed: ${this.error}`);
        if (!this.res.headersSent) this.sendGenerated(errorResponse(500, 'Internal Server Error'));
        else this.cut();
      }
    }
  }

  // ---------------------------------------------------------------- phases

  private async proxy(): Promise<void> {
    const { req, core } = this;
    // one Host and one path for routing, agents and upstream, or 400
    const target = readTarget(req.url ?? '/', req.headersDistinct.host, req.httpVersion);
    if (!target.ok) return this.badRequest(target.reason);
    this.host = target.host;
    this.uri = target.pathAndQuery;
    const routing = routeRequest(core.config.routes, target.host, target.pathAndQuery);
    if (routing && 'error' in routing) return this.badRequest(routing.error);
    if (!routing) {
      this.outcome = 'no_route';
      this.sendGenerated(errorResponse(404, `No route for ${this.uri}`));
      return;
    }
    const route = routing.route;
    this.uri = routing.uri;
    this.route = route;
    this.upstream = core.upstreams.get(route.upstream);
    this.chain = route.agents.map((n) => core.config.agents.get(n) as AgentConfig);

    // --- request headers
    // the client's hop-by-hop headers go first: its Connection header can only name its own
    const fwd = stripHopByHop(toHeaderMap(req.headersDistinct));
    if (target.fromTarget && target.host) fwd.host = [target.host];
    fwd.traceparent = [this.traceparent];
    fwd['x-request-id'] = [this.requestId];
    const peer = normaliseIp(req.socket.remoteAddress);
    fwd['x-forwarded-for'] = [...(fwd['x-forwarded-for'] ?? []), peer].filter((v) => v !== '');
    fwd['x-forwarded-proto'] ??= ['http'];
    if (this.host) fwd['x-forwarded-host'] ??= [this.host];
    this.forwardHeaders = fwd;
    const metadata = this.metadata();
    for (const agent of this.agentsFor('request_headers')) {
      const r = await this.call(agent, 'request_headers', (o) =>
        core.pool.sendRequestHeaders(
          agent.name,
          { metadata, method: req.method ?? 'GET', uri: this.uri, headers: cloneHeaders(fwd) },
          o,
        ),
      );
      if (decisionKind(r.decision) !== 'allow') throw new DecisionSignal(agent.name, r);
      this.requestOps(r.request_headers);
      this.pendingResponseOps.push(...r.response_headers);
    }
    if (this.clientGone) return;

    // --- request body
    let body: Buffer | Readable | undefined;
    let replayable = true;
    // the upstream framing: what the client declared, unless the body changes
    let length = req.headers['transfer-encoding'] ? undefined : req.headers['content-length'];
    if (requestHasBody(req)) {
      const source = counting(req, (n) => {
        this.requestBodySize += n;
      });
      const bodyAgents = this.agentsFor('request_body');
      if (bodyAgents.length === 0) {
        body = Readable.from(source);
        replayable = false; // content-length stays as the client sent it
      } else {
        const out = bodyPipeline(
          source,
          bodyAgents,
          this.hooks('request'),
          // the client's own framing, whatever header ops did to the forwarded copy
          req.headers['transfer-encoding'] ? null : declaredLength(req.headers['content-length']),
        );
        if (bodyAgents.every((a) => a.bodyMode === 'buffer')) {
          body = await collect(out);
          length = String(body.length);
        } else {
          // the first cleared chunk decides when the upstream request starts; header ops
          // that arrive with later chunks are too late and are dropped
          const it = out[Symbol.asyncIterator]();
          const first = await it.next();
          length = undefined;
          body = Readable.from(this.guard(resume(first, it)));
          replayable = false;
        }
      }
    } else {
      req.resume();
    }
    if (this.clientGone) return;

    // --- upstream
    // agents' ops are applied by now: drop connection-level fields they may have set, but
    // read no Connection tokens (they would name what the gateway and agents added)
    const upstreamHeaders = dropHopByHopFields(fwd);
    setContentLength(upstreamHeaders, length);
    delete upstreamHeaders.expect;
    this.forwardHeaders = null;
    const up = await this.sendUpstream(upstreamHeaders, body, replayable);

    // --- response headers
    const status = up.statusCode;
    // the upstream's Connection header names only its own headers, not the agents' or ours
    const respHeaders = stripHopByHop(toHeaderMap(up.headers));
    // (repeated identical Content-Length lines arrive as a list)
    const cl = up.headers['content-length'];
    const upstreamLength = up.headers['transfer-encoding'] ? undefined : [cl].flat()[0];
    this.clientHeaders = respHeaders;
    applyHeaderOps(respHeaders, this.pendingResponseOps.splice(0), (op) => this.badOp(op));
    for (const agent of this.agentsFor('response_headers')) {
      const r = await this.call(agent, 'response_headers', (o) =>
        core.pool.sendResponseHeaders(
          agent.name,
          { correlation_id: this.correlationId, status, headers: cloneHeaders(respHeaders) },
          o,
        ),
      );
      if (decisionKind(r.decision) !== 'allow') {
        up.body.destroy();
        throw new DecisionSignal(agent.name, r);
      }
      applyHeaderOps(respHeaders, r.response_headers, (op) => this.badOp(op));
    }
    if (this.bodyDecision) {
      up.body.destroy();
      throw this.bodyDecision;
    }
    if (this.clientGone) {
      up.body.destroy();
      return;
    }

    // --- response body
    const method = req.method ?? 'GET';
    const noBody =
      method === 'HEAD' ||
      status === 204 ||
      status === 304 ||
      status < 200 ||
      respHeaders['content-length']?.[0] === '0';
    const bodyAgents = noBody ? [] : this.agentsFor('response_body');
    const count = (n: number): void => {
      this.responseBodySize += n;
    };
    if (bodyAgents.length === 0) {
      setContentLength(respHeaders, upstreamLength);
      this.writeHead(status);
      await this.pipeToClient(counting(up.body, count));
      return;
    }
    const out = bodyPipeline(
      up.body as AsyncIterable<Buffer>,
      bodyAgents,
      this.hooks('response'),
      declaredLength(up.headers['content-length'] as string | undefined),
    );
    if (bodyAgents.every((a) => a.bodyMode === 'buffer')) {
      const buf = await collect(out).catch((e) => this.upstreamBodyFailed(e));
      respHeaders['content-length'] = [String(buf.length)];
      this.writeHead(status);
      count(buf.length);
      this.res.end(buf);
      return;
    }
    const it = out[Symbol.asyncIterator]();
    const first = await it.next().catch((e) => this.upstreamBodyFailed(e));
    delete respHeaders['content-length']; // the length may change: chunked
    this.writeHead(status);
    await this.pipeToClient(counting(resume(first, it), count));
  }

  /** An error while reading the upstream body before the client's response started. */
  private upstreamBodyFailed(e: unknown): never {
    if (e instanceof DecisionSignal || this.clientGone) throw e;
    const code = errorCode(e);
    const kind = code !== undefined && TIMEOUT_CODES.has(code) ? 'timeout' : 'error';
    const name = this.upstream?.config.name ?? '';
    this.core.metrics.upstreamError(name, kind);
    throw new UpstreamFailure(kind, `upstream "${name}" response body: ${(e as Error).message}`);
  }

  /** Sends the request upstream, retrying connection failures of replayable requests. */
  private async sendUpstream(
    headers: Headers,
    body: Buffer | Readable | undefined,
    replayable: boolean,
  ): Promise<Dispatcher.ResponseData> {
    const up = this.upstream as Upstream;
    const base = up.config.url.pathname.replace(/\/$/, '');
    const path = base + this.uri;
    for (let attempt = 0; ; attempt++) {
      this.upstreamAttempts++;
      const t0 = performance.now();
      try {
        const res = await up.dispatcher.request({
          path,
          method: (this.req.method ?? 'GET') as Dispatcher.HttpMethod,
          headers: toOutgoing(headers),
          body: body ?? null,
          signal: this.upstreamAbort.signal,
          headersTimeout: up.config.timeoutMs,
          bodyTimeout: up.config.timeoutMs,
        });
        this.core.metrics.upstreamResponse(up.config.name, (performance.now() - t0) / 1000);
        return res;
      } catch (e) {
        if (this.bodyDecision) throw this.bodyDecision;
        if (e instanceof DecisionSignal) throw e;
        if (this.clientGone) throw e;
        const code = errorCode(e);
        const kind = code !== undefined && TIMEOUT_CODES.has(code) ? 'timeout' : 'error';
        this.core.metrics.upstreamError(up.config.name, kind);
        if (
          kind === 'error' &&
          replayable &&
          attempt < up.config.retries &&
          code !== undefined &&
          RETRYABLE_CODES.has(code)
        ) {
          continue;
        }
        const msg = `upstream "${up.config.name}" ${kind === 'timeout' ? 'timed out' : 'failed'}: ${
          (e as Error).message
        }${code ? ` (${code})` : ''}`;
        throw new UpstreamFailure(kind, msg);
      }
    }
  }

  // ---------------------------------------------------------------- agents

  private agentsFor(event: GatewayEvent): AgentConfig[] {
    return this.chain.filter((a) => a.events.has(event));
  }

  private metadata(): RequestMetadata {
    const host = this.host;
    return {
      correlation_id: this.correlationId,
      request_id: this.requestId,
      client_ip: this.clientIp,
      client_port: this.req.socket.remotePort ?? 0,
      server_name: host ? host.replace(/:\d+$/, '') : null,
      protocol: `HTTP/${this.req.httpVersion === '1.0' ? '1.0' : '1.1'}`,
      tls_version: null,
      tls_cipher: null,
      route_id: this.route?.name ?? null,
      upstream_id: this.route?.upstream ?? null,
      timestamp: rfc3339(),
      traceparent: this.traceparent,
    };
  }

  /**
   * One pool call with the agent's timeout and the client-disconnect signal.
   * A call that throws (pool closed, caller error) gets the agent's failure
   * mode, never a silent allow.
   */
  private async call(
    agent: AgentConfig,
    event: GatewayEvent,
    send: (o: CallOptions) => Promise<AgentResponse>,
  ): Promise<AgentResponse> {
    let r: AgentResponse;
    try {
      r = await send({ timeoutMs: agent.timeoutMs, signal: this.clientAbort.signal });
    } catch (e) {
      const custom = { agent_id: agent.name, error: (e as Error).message };
      r =
        agent.failureMode === 'open'
          ? agentResponse('allow', { tags: ['fail_open'], reasonCodes: ['AGENT_ERROR'], custom })
          : agentResponse(
              { block: { status: 503, body: null, headers: null } },
              { tags: ['fail_closed'], reasonCodes: ['AGENT_ERROR'], custom },
            );
    }
    this.verdicts.push({ agent: agent.name, event, decision: describeVerdict(r) });
    this.core.metrics.agentDecision(agent.name, event, metricDecision(r));
    return r;
  }

  /** Request header ops: applied while the request headers have not left yet. */
  private requestOps(ops: readonly HeaderOp[]): void {
    if (ops.length === 0) return;
    if (this.forwardHeaders) applyHeaderOps(this.forwardHeaders, ops, (op) => this.badOp(op));
    else this.core.log.debug(`request ${this.correlationId}: request header ops arrived too late`);
  }

  /** Response header ops: applied while the client's response headers have not left yet. */
  private responseOps(ops: readonly HeaderOp[]): void {
    if (ops.length === 0) return;
    if (this.clientHeaders) applyHeaderOps(this.clientHeaders, ops, (op) => this.badOp(op));
    else if (!this.res.headersSent) this.pendingResponseOps.push(...ops);
    else this.core.log.debug(`request ${this.correlationId}: response header ops arrived too late`);
  }

  private badOp(op: HeaderOp): void {
    this.core.log.warn(
      `request ${this.correlationId}: ignored invalid header op ${JSON.stringify(op)}`,
    );
  }

  private hooks(direction: 'request' | 'response'): StageHooks {
    const event: GatewayEvent = direction === 'request' ? 'request_body' : 'response_body';
    return {
      send: async (agent: AgentConfig, c: ChunkInfo) => {
        const r = await this.call(agent, event, (o) =>
          direction === 'request'
            ? this.core.pool.sendRequestBodyChunk(
                agent.name,
                {
                  correlation_id: this.correlationId,
                  data: c.data,
                  is_last: c.isLast,
                  total_size: c.totalSize,
                  chunk_index: c.chunkIndex,
                  bytes_received: c.cumulative,
                },
                o,
              )
            : this.core.pool.sendResponseBodyChunk(
                agent.name,
                {
                  correlation_id: this.correlationId,
                  data: c.data,
                  is_last: c.isLast,
                  total_size: c.totalSize,
                  chunk_index: c.chunkIndex,
                  bytes_sent: c.cumulative,
                },
                o,
              ),
        );
        if (decisionKind(r.decision) !== 'allow') {
          this.decisionRaised = true;
          // Recorded now, not where the signal is caught: on Node 24 a response that
          // pipeline() destroys emits 'close' (which completes the exchange) first.
          this.outcome = decisionKind(r.decision);
          this.decidedBy = agent.name;
          throw new DecisionSignal(agent.name, r);
        }
        this.requestOps(r.request_headers);
        this.responseOps(r.response_headers);
        return r;
      },
      mutation: (r) =>
        direction === 'request' ? r.request_body_mutation : r.response_body_mutation,
      overLimit: (agent, size) => {
        const what = `${direction} body over ${agent.maxBodyBytes} bytes`;
        this.verdicts.push({ agent: agent.name, event, decision: `skipped (${what})` });
        if (agent.failureMode === 'open') return undefined;
        this.decisionRaised = true;
        const status = direction === 'request' ? 413 : 502;
        return agentResponse(
          {
            block: {
              status,
              body: `${what}: too large for agent "${agent.name}"\n`,
              headers: null,
            },
          },
          { tags: ['fail_closed'], reasonCodes: ['BODY_TOO_LARGE'], custom: { size } },
        );
      },
    };
  }

  /** Remembers a decision raised inside the streaming request body (undici only sees an error). */
  private async *guard(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    try {
      yield* source;
    } catch (e) {
      if (e instanceof DecisionSignal) this.bodyDecision = e;
      throw e;
    }
  }

  // ---------------------------------------------------------------- responses

  /** Ends a response whose headers already left: the client sees a truncated message. */
  private cut(): void {
    this.cutByGateway = true;
    this.res.destroy();
  }

  private writeHead(status: number): void {
    const h = dropHopByHopFields(this.clientHeaders ?? {});
    h['x-request-id'] ??= [this.requestId];
    this.clientHeaders = null;
    this.status = status;
    this.res.writeHead(status, toOutgoing(h));
  }

  private async pipeToClient(source: AsyncIterable<Buffer>): Promise<void> {
    try {
      await pipeline(Readable.from(source), this.res);
    } catch (e) {
      if (e instanceof DecisionSignal) {
        // headers are gone: the only way to refuse the rest is to cut the connection
        this.outcome = decisionKind(e.response.decision);
        this.decidedBy = e.agent;
        this.error = `response cut: ${e.message}`;
        this.cut();
        return;
      }
      if (this.clientGone) return;
      const code = errorCode(e);
      this.error = `response body: ${(e as Error).message}`;
      if (code !== undefined && TIMEOUT_CODES.has(code)) {
        this.outcome = 'upstream_timeout';
        this.core.metrics.upstreamError(this.upstream?.config.name ?? '', 'timeout');
      } else {
        this.outcome = 'upstream_error';
        this.core.metrics.upstreamError(this.upstream?.config.name ?? '', 'error');
      }
      this.cut();
    }
  }

  /** Applies a non-allow decision: the agent's block / redirect / challenge replaces the exchange. */
  private decide(agent: string, r: AgentResponse): void {
    this.upstreamAbort.abort();
    this.decidedBy = agent;
    this.outcome = decisionKind(r.decision);
    if (this.clientGone) return;
    if (this.res.headersSent) {
      this.cut();
      return;
    }
    const g = renderDecision(r) ?? errorResponse(500, 'Internal Server Error');
    this.pendingResponseOps.push(...r.response_headers);
    this.sendGenerated(g);
  }

  /** The request's Host or path is ambiguous: 400 with the reason, before any agent sees it. */
  private badRequest(reason: string): void {
    this.outcome = 'bad_request';
    this.error = reason;
    this.req.resume();
    this.sendGenerated(errorResponse(400, `Bad Request: ${reason}`));
  }

  private upstreamFailed(e: UpstreamFailure): void {
    this.outcome = e.kind === 'timeout' ? 'upstream_timeout' : 'upstream_error';
    this.error = e.message;
    this.core.log.warn(`request ${this.correlationId}: ${e.message}`);
    if (this.clientGone) return;
    if (this.res.headersSent) this.cut();
    else {
      this.sendGenerated(
        e.kind === 'timeout'
          ? errorResponse(504, 'Gateway Timeout')
          : errorResponse(502, 'Bad Gateway'),
      );
    }
  }

  /** Sends a response the gateway made itself, after the agents' response header ops. */
  private sendGenerated(g: GeneratedResponse): void {
    const h: Headers = {};
    applyHeaderOps(h, this.pendingResponseOps.splice(0), (op) => this.badOp(op));
    for (const [k, v] of Object.entries(g.headers)) putOwn(h, k, v);
    h['content-length'] = [String(g.body.length)];
    h['x-request-id'] ??= [this.requestId];
    this.clientHeaders = null;
    this.status = g.status;
    this.res.writeHead(g.status, toOutgoing(dropHopByHopFields(h)));
    const head = this.req.method === 'HEAD';
    if (!head) this.responseBodySize += g.body.length;
    this.res.end(head ? undefined : g.body);
  }

  // ---------------------------------------------------------------- the end

  private clientDisconnected(): void {
    if (this.clientGone) return;
    this.clientGone = true;
    this.outcome = 'client_disconnect';
    this.error ??= 'client disconnected';
    // aborting with a cancel-reason name makes the transports send Cancel(client_disconnect)
    // for calls in flight; agents that already answered are told through the pool.
    this.clientAbort.abort('client_disconnect');
    this.upstreamAbort.abort();
    for (const agent of this.chain) {
      this.agentCallsAtEnd.push(
        this.core.pool.cancel(agent.name, this.correlationId, 'client_disconnect').catch(() => {}),
      );
    }
  }

  /** Once per request, when the client's response is over: metrics, summary, request_complete. */
  private complete(): void {
    if (this.completed) return;
    this.completed = true;
    this.core.metrics.inFlight--;
    const durationMs = performance.now() - this.started;
    const status = this.clientGone ? 499 : this.status;
    const summary: ExchangeSummary = {
      correlationId: this.correlationId,
      requestId: this.requestId,
      method: this.req.method ?? 'GET',
      uri: this.uri,
      clientIp: this.clientIp,
      route: this.route?.name ?? null,
      upstream: this.route?.upstream ?? null,
      status,
      outcome: this.outcome,
      decidedBy: this.decidedBy,
      verdicts: this.verdicts,
      upstreamAttempts: this.upstreamAttempts,
      requestBodySize: this.requestBodySize,
      responseBodySize: this.responseBodySize,
      durationMs,
      error: this.error,
    };
    this.core.metrics.request(this.route?.name ?? '', status, this.outcome, durationMs / 1000);
    for (const agent of this.agentsFor('request_complete')) {
      const sent = this.core.pool
        .sendRequestComplete(
          agent.name,
          {
            correlation_id: this.correlationId,
            status,
            duration_ms: Math.round(durationMs),
            request_body_size: this.requestBodySize,
            response_body_size: this.responseBodySize,
            upstream_attempts: this.upstreamAttempts,
            error: this.error,
          },
          { timeoutMs: agent.timeoutMs },
        )
        .then((r) =>
          this.core.metrics.agentDecision(agent.name, 'request_complete', metricDecision(r)),
        )
        .catch(() => {});
      this.agentCallsAtEnd.push(sent);
    }
    // The pool pins each request to the connection that saw its headers and forgets it only
    // on request-complete; agents that do not take it would keep the entry for the TTL.
    // Cleared once the cancels and request-completes above have gone out on that connection.
    const cid = this.correlationId;
    void Promise.allSettled(this.agentCallsAtEnd).then(() => this.core.pool.clearAffinity(cid));
    this.core.finished(summary);
  }
}
