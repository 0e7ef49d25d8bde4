/**
 * One request, start to finish: Host and target checks, route, request headers
 * through the agent chain, request body, next hop, response headers, response
 * body, request-complete — with every decision applied to the HTTP exchange.
 * The exchange's state and its answers to the client are in exchange-state.ts.
 */
import { Readable } from 'node:stream';
import {
  AgentProtocolError,
  type AgentResponse,
  type CallOptions,
  decisionKind,
  ErrorCode,
  type HeaderOp,
  type Headers,
  type RequestMetadata,
} from '@picket/protocol';
import type { AbortNotice } from './abort-notice.js';
import { bodyPipeline, type ChunkInfo, collect, DecisionSignal, type StageHooks } from './body.js';
import { errorResponse } from './decisions.js';
import type { AgentEvent, AgentSpec, NextHopRequest, NextHopResponse } from './engine.js';
import { ExchangeState } from './exchange-state.js';
import {
  counting,
  declaredLength,
  describeVerdict,
  failureResponse,
  metricDecision,
  overLimitResponse,
  requestHasBody,
  resume,
  sendBodyChunk,
} from './exchange-util.js';
import { errorCode, TIMEOUT_CODES, UpstreamFailure } from './failure.js';
import {
  applyHeaderOps,
  cloneHeaders,
  dropHopByHopFields,
  normaliseIp,
  rfc3339,
  setContentLength,
  stripHopByHop,
} from './http-util.js';
import { readTarget } from './target.js';

/**
 * What a next hop gets. A class, not an object literal: a literal with a getter (the lazy
 * `signal`) costs about a microsecond to create, an instance of this a few nanoseconds.
 */
class HopRequest implements NextHopRequest {
  constructor(
    readonly method: string,
    readonly uri: string,
    readonly headers: Headers,
    readonly body: Buffer | Readable | undefined,
    readonly replayable: boolean,
    readonly abort: AbortNotice,
  ) {}

  get signal(): AbortSignal {
    return this.abort.signal;
  }
}

/** One request; {@link HttpEngine.handle} runs it. A next hop gets it as its second argument. */
export class Exchange extends ExchangeState {
  /** an agent's header op changed the forwarded request headers */
  private forwardHeadersChanged = false;

  /** Handles the request; never rejects. */
  async run(): Promise<void> {
    try {
      await this.proxy();
    } catch (thrown) {
      // a decision reached while the body streamed on ends the exchange, whatever failed after it
      const e = this.bodyDecision ?? thrown;
      if (e instanceof DecisionSignal) this.decide(e.agent, e.response);
      else if (this.clientGone) return;
      else if (e instanceof UpstreamFailure) this.upstreamFailed(e);
      else {
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
    const routing = core.router(target.host, target.pathAndQuery);
    if (routing && 'error' in routing) return this.badRequest(routing.error);
    if (!routing) {
      this.outcome = 'no_route';
      this.sendGenerated(errorResponse(404, `No route for ${this.uri}`));
      return;
    }
    const route = routing.route;
    this.uri = routing.uri;
    this.route = route;
    this.chain = route.chain;

    // --- request headers
    // the client's hop-by-hop headers go first: its Connection header can only name its own
    const fwd = stripHopByHop(req.headersDistinct);
    if (target.fromTarget && target.host) fwd.host = [target.host];
    fwd.traceparent = [this.traceparent];
    fwd['x-request-id'] = [this.requestId];
    const peer = normaliseIp(req.socket.remoteAddress);
    const xff = fwd['x-forwarded-for'];
    fwd['x-forwarded-for'] =
      xff === undefined && peer !== '' ? [peer] : [...(xff ?? []), peer].filter((v) => v !== '');
    fwd['x-forwarded-proto'] ??= [req.socket.encrypted === true ? 'https' : 'http'];
    if (this.host) fwd['x-forwarded-host'] ??= [this.host];
    this.forwardHeaders = fwd;
    // built only when an agent takes the request headers (a timestamp and a regexp each)
    let metadata: RequestMetadata | undefined;
    for (const agent of this.agentsFor('request_headers')) {
      metadata ??= this.metadata();
      const md = metadata;
      const r = await this.call(agent, 'request_headers', (o) =>
        core.pool.sendRequestHeaders(
          agent.name,
          { metadata: md, method: req.method ?? 'GET', uri: this.uri, headers: cloneHeaders(fwd) },
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

    // --- next hop
    // agents' ops are applied by now: drop connection-level fields they may have set, but
    // read no Connection tokens (they would name what the engine and agents added)
    const upstreamHeaders = fwd;
    if (this.forwardHeadersChanged) dropHopByHopFields(upstreamHeaders);
    setContentLength(upstreamHeaders, length);
    delete upstreamHeaders.expect;
    this.forwardHeaders = null;
    const up = await this.sendOn(upstreamHeaders, body, replayable);

    // --- response headers
    const status = up.statusCode;
    // the next hop's Connection header names only its own headers, not the agents' or ours
    const respHeaders = stripHopByHop(up.headers);
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
    if (bodyAgents.length === 0) {
      setContentLength(respHeaders, upstreamLength);
      this.writeHead(status);
      // a Node stream (undici's body) is wired to the client directly; other next hops'
      // bodies (any async iterable) go through the generic pipeline
      if (up.body instanceof Readable) await this.streamToClient(up.body);
      else await this.pipeToClient(counting(up.body, (n) => this.countResponseBody(n)));
      return;
    }
    const count = (n: number): void => this.countResponseBody(n);
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

  private countResponseBody(n: number): void {
    this.responseBodySize += n;
  }

  /** An error while reading the upstream body before the client's response started. */
  private upstreamBodyFailed(e: unknown): never {
    if (e instanceof DecisionSignal || this.clientGone) throw e;
    const code = errorCode(e);
    const kind = code !== undefined && TIMEOUT_CODES.has(code) ? 'timeout' : 'error';
    const name = this.route?.upstreamId ?? '';
    this.core.hooks.nextHopError?.(name, kind);
    throw new UpstreamFailure(kind, `upstream "${name}" response body: ${(e as Error).message}`);
  }

  /** Sends the request to the next hop (the one given to `handle`, else the route's). */
  private sendOn(
    headers: Headers,
    body: Buffer | Readable | undefined,
    replayable: boolean,
  ): Promise<NextHopResponse> {
    const nextHop = this.nextHop ?? this.route?.nextHop;
    if (!nextHop) throw new Error(`no next hop for route ${JSON.stringify(this.route?.name)}`);
    const request = new HopRequest(
      this.req.method ?? 'GET',
      this.uri,
      headers,
      body,
      replayable,
      this.upstreamAbort,
    );
    // its failures reach run(), which tells a decision or a gone client from a next-hop failure
    return nextHop(request, this);
  }

  /** A next hop counts each attempt (a retry too) for the summary and request-complete. */
  countAttempt(): void {
    this.upstreamAttempts++;
  }

  /**
   * For a next hop whose attempt failed: throws when the exchange itself ended
   * meanwhile (an agent decided, the client went away), which is no next-hop
   * failure and must not be retried.
   */
  rethrowIfEnded(e: unknown): void {
    if (this.bodyDecision) throw this.bodyDecision;
    if (e instanceof DecisionSignal) throw e;
    if (this.clientGone) throw e;
  }

  // ---------------------------------------------------------------- agents

  private metadata(): RequestMetadata {
    const host = this.host;
    // a node:https connection: agents learn its TLS version and cipher
    const tls = this.req.socket.encrypted === true ? this.req.socket : undefined;
    return {
      correlation_id: this.correlationId,
      request_id: this.requestId,
      client_ip: this.clientIp,
      client_port: this.req.socket.remotePort ?? 0,
      server_name: host ? host.replace(/:\d+$/, '') : null,
      protocol: `HTTP/${this.req.httpVersion === '1.0' ? '1.0' : '1.1'}`,
      tls_version: tls?.getProtocol?.() ?? null,
      tls_cipher: tls?.getCipher?.().name ?? null,
      route_id: this.route?.name ?? null,
      upstream_id: this.route?.upstreamId ?? null,
      timestamp: rfc3339(),
      traceparent: this.traceparent,
    };
  }

  /**
   * One pool call with the agent's timeout (a client that goes away cancels it through the
   * pool). A call that throws (pool closed, caller error) gets the agent's failure mode,
   * never a silent allow; none is made once the client is gone.
   */
  private async call(
    agent: AgentSpec,
    event: AgentEvent,
    send: (o: CallOptions) => Promise<AgentResponse>,
  ): Promise<AgentResponse> {
    let r: AgentResponse;
    try {
      if (this.clientGone) {
        throw new AgentProtocolError(
          ErrorCode.Cancelled,
          `request ${this.correlationId}: the client went away; ${event} not sent to agent "${agent.name}"`,
        );
      }
      r = await send({ timeoutMs: agent.timeoutMs });
    } catch (e) {
      r = failureResponse(agent, e);
    }
    this.verdicts.push({ agent: agent.name, event, decision: describeVerdict(r) });
    this.core.hooks.agentDecision?.(agent.name, event, metricDecision(r));
    return r;
  }

  /** Request header ops: applied while the request headers have not left yet. */
  private requestOps(ops: readonly HeaderOp[]): void {
    if (ops.length === 0) return;
    if (this.forwardHeaders) {
      applyHeaderOps(this.forwardHeaders, ops, (op) => this.badOp(op));
      this.forwardHeadersChanged = true;
    } else
      this.core.log.debug(`request ${this.correlationId}: request header ops arrived too late`);
  }

  /** Response header ops: applied while the client's response headers have not left yet. */
  private responseOps(ops: readonly HeaderOp[]): void {
    if (ops.length === 0) return;
    if (this.clientHeaders) applyHeaderOps(this.clientHeaders, ops, (op) => this.badOp(op));
    else if (!this.res.headersSent) this.pendingResponseOps.push(...ops);
    else this.core.log.debug(`request ${this.correlationId}: response header ops arrived too late`);
  }

  private hooks(direction: 'request' | 'response'): StageHooks {
    const event: AgentEvent = direction === 'request' ? 'request_body' : 'response_body';
    return {
      send: async (agent: AgentSpec, c: ChunkInfo) => {
        const r = await this.call(agent, event, (o) =>
          sendBodyChunk(this.core.pool, agent.name, direction, this.correlationId, c, o),
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
        return overLimitResponse(agent, direction, what, size);
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
}
