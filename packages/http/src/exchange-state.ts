/**
 * The state of one exchange and how it ends: the answers the engine writes to
 * the client (next-hop response heads, generated responses, applied decisions,
 * cut connections) and the summary and request-complete once the client is done.
 * The phases that fill it in are in exchange.ts.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type AgentResponse,
  decisionKind,
  type HeaderOp,
  type Headers,
  putOwn,
} from '@picket/protocol';
import { AbortNotice } from './abort-notice.js';
import { DecisionSignal } from './body.js';
import { errorResponse, type GeneratedResponse, renderDecision } from './decisions.js';
import type {
  AgentEvent,
  AgentSpec,
  ClientRequest,
  ClientResponse,
  EngineRoute,
  HttpEngine,
  NextHop,
} from './engine.js';
import { type AgentVerdict, type ExchangeSummary, metricDecision } from './exchange-util.js';
import { errorCode, TIMEOUT_CODES, type UpstreamFailure } from './failure.js';
import {
  applyHeaderOps,
  firstForwardedAddress,
  newTraceparent,
  normaliseIp,
  parseTraceparent,
  toOutgoing,
  validHeader,
} from './http-util.js';

/** What an exchange knows and how it answers; {@link Exchange} runs the phases. */
export abstract class ExchangeState {
  protected readonly started = performance.now();
  readonly correlationId = randomUUID();
  readonly requestId: string;
  protected readonly traceparent: string;
  /** aborted when the client goes away; made at the first agent call (most requests have none) */
  protected readonly upstreamAbort = new AbortNotice();
  protected route: EngineRoute | undefined;
  protected chain: readonly AgentSpec[] = [];
  protected readonly verdicts: AgentVerdict[] = [];
  /** response header ops collected before the response headers exist */
  protected readonly pendingResponseOps: HeaderOp[] = [];
  /** the request headers forwarded upstream (null once they are sent) */
  protected forwardHeaders: Headers | null = null;
  /** the response headers for the client (null once written) */
  protected clientHeaders: Headers | null = null;
  protected requestBodySize = 0;
  protected responseBodySize = 0;
  protected upstreamAttempts = 0;
  protected status = 0;
  protected outcome = 'allow';
  protected decidedBy: string | null = null;
  protected error: string | null = null;
  protected clientGone = false;
  /** the engine itself ended the client connection (a response it could not finish) */
  protected cutByEngine = false;
  /** a body stage raised a decision (its stream teardown is not a client disconnect) */
  protected decisionRaised = false;
  protected completed = false;
  /** cancels and request-completes sent as the exchange ends (they need the request's affinity) */
  protected readonly agentCallsAtEnd: Promise<unknown>[] = [];
  /** a decision reached while the request body was already streaming upstream */
  protected bodyDecision: DecisionSignal | undefined;
  protected readonly clientIp: string;
  /** the raw request target until routing puts it into the route's path form */
  protected uri: string;
  /** the checked Host (or an absolute-form target's authority) */
  protected host: string | undefined;

  constructor(
    protected readonly core: HttpEngine,
    protected readonly req: ClientRequest,
    protected readonly res: ClientResponse,
    /** overrides the route's next hop */
    protected readonly nextHop: NextHop | undefined,
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
    const trusted = core.clientIpHeader;
    this.clientIp =
      (trusted && firstForwardedAddress(req.headers[trusted])) ||
      normaliseIp(req.socket.remoteAddress);
    this.uri = req.url ?? '/';
    core.hooks.exchangeStarted?.();
    res.once('close', () => {
      if (!res.writableFinished && !this.cutByEngine && !this.decisionRaised) {
        this.clientDisconnected();
      }
      this.complete();
    });
  }

  protected agentsFor(event: AgentEvent): readonly AgentSpec[] {
    return this.chain.length === 0 ? this.chain : this.chain.filter((a) => a.events.has(event));
  }

  protected badOp(op: HeaderOp): void {
    this.core.log.warn(
      `request ${this.correlationId}: ignored invalid header op ${JSON.stringify(op)}`,
    );
  }

  // ---------------------------------------------------------------- responses

  /** Ends a response whose headers already left: the client sees a truncated message. */
  protected cut(): void {
    this.cutByEngine = true;
    this.res.destroy();
  }

  protected writeHead(status: number): void {
    // toOutgoing leaves out hop-by-hop fields an agent may have set
    const h = this.clientHeaders ?? {};
    h['x-request-id'] ??= [this.requestId];
    this.clientHeaders = null;
    this.status = status;
    this.res.writeHead(status, toOutgoing(h));
  }

  protected async pipeToClient(source: AsyncIterable<Buffer>): Promise<void> {
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
      this.responseBodyFailed(e);
    }
  }

  /**
   * The next hop's body to the client when no agent reads it (the common case), with the
   * same outcomes as {@link pipeToClient}. Hand-wired instead of `pipeline()`: per request,
   * pipeline costs a Readable.from wrapper, an async-generator step per chunk, end-of-stream
   * bookkeeping and an AbortController that it aborts (building a DOMException) when it
   * finishes; together about a tenth of a no-agent exchange's CPU time (docs/perf-notes.md).
   */
  protected streamToClient(body: Readable): Promise<void> {
    const res = this.res;
    if (body.destroyed) {
      // it failed (or was destroyed) before we started reading: its 'close' is gone, so no
      // listener below would ever fire
      this.responseBodyFailed(body.errored ?? prematureClose());
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const onData = (chunk: Buffer): void => {
        this.responseBodySize += chunk.length;
        // back-pressure: the client's socket is full, stop reading the next hop
        if (!res.write(chunk)) body.pause();
      };
      const onDrain = (): void => {
        body.resume();
      };
      const stop = (): void => {
        body.off('data', onData);
        body.off('end', onEnd);
        body.off('error', onBodyError);
        body.off('close', onBodyClose);
        res.off('drain', onDrain);
        res.off('close', onClientClose);
        res.off('error', onClientClose);
        resolve();
      };
      const onEnd = (): void => {
        stop();
        res.end();
      };
      const onBodyError = (e: Error): void => {
        stop();
        this.responseBodyFailed(e);
      };
      // the next hop's body went away without an end or an error (it was destroyed)
      const onBodyClose = (): void => {
        if (!body.readableEnded) onBodyError(prematureClose());
      };
      // the client's response closed first (client gone, or the engine cut it): stop reading
      // the next hop; the constructor's 'close' listener records a disconnect
      const onClientClose = (): void => {
        stop();
        body.destroy();
      };
      body.on('data', onData);
      body.once('end', onEnd);
      body.once('error', onBodyError);
      body.once('close', onBodyClose);
      res.on('drain', onDrain);
      res.once('close', onClientClose);
      res.once('error', onClientClose);
    });
  }

  /** Reading the next hop's body failed after the client's response started: cut it. */
  private responseBodyFailed(e: unknown): void {
    if (this.clientGone) return;
    const code = errorCode(e);
    this.error = `response body: ${(e as Error).message}`;
    if (code !== undefined && TIMEOUT_CODES.has(code)) {
      this.outcome = 'upstream_timeout';
      this.core.hooks.nextHopError?.(this.route?.upstreamId ?? '', 'timeout');
    } else {
      this.outcome = 'upstream_error';
      this.core.hooks.nextHopError?.(this.route?.upstreamId ?? '', 'error');
    }
    this.cut();
  }

  /** Applies a non-allow decision: the agent's block / redirect / challenge replaces the exchange. */
  protected decide(agent: string, r: AgentResponse): void {
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
  protected badRequest(reason: string): void {
    this.outcome = 'bad_request';
    this.error = reason;
    this.req.resume();
    this.sendGenerated(errorResponse(400, `Bad Request: ${reason}`));
  }

  protected upstreamFailed(e: UpstreamFailure): void {
    this.outcome =
      e.kind === 'timeout'
        ? 'upstream_timeout'
        : e.kind === 'unavailable'
          ? 'no_upstream_target'
          : 'upstream_error';
    this.error = e.message;
    this.core.log.warn(`request ${this.correlationId}: ${e.message}`);
    if (this.clientGone) return;
    if (this.res.headersSent) this.cut();
    else {
      this.sendGenerated(
        e.kind === 'timeout'
          ? errorResponse(504, 'Gateway Timeout')
          : e.kind === 'unavailable'
            ? errorResponse(503, `Service Unavailable: ${e.message}`)
            : errorResponse(502, 'Bad Gateway'),
      );
    }
  }

  /** Sends a response the engine made itself, after the agents' response header ops. */
  protected sendGenerated(g: GeneratedResponse): void {
    const h: Headers = {};
    applyHeaderOps(h, this.pendingResponseOps.splice(0), (op) => this.badOp(op));
    for (const [k, v] of Object.entries(g.headers)) putOwn(h, k, v);
    h['content-length'] = [String(g.body.length)];
    h['x-request-id'] ??= [this.requestId];
    this.clientHeaders = null;
    this.status = g.status;
    this.res.writeHead(g.status, toOutgoing(h));
    const head = this.req.method === 'HEAD';
    if (!head) this.responseBodySize += g.body.length;
    this.res.end(head ? undefined : g.body);
  }

  // ---------------------------------------------------------------- the end

  protected clientDisconnected(): void {
    if (this.clientGone) return;
    this.clientGone = true;
    this.outcome = 'client_disconnect';
    this.error ??= 'client disconnected';
    // The pool sends Cancel(client_disconnect) on the connection that has the request: a call
    // in flight there fails at once, one still queued for a connection is dropped, and an
    // agent that answered already learns it is over. (No AbortSignal per agent call: one
    // costs microseconds to make and to listen to, on every request, for a rare event.)
    this.upstreamAbort.abort();
    for (const agent of this.chain) {
      this.agentCallsAtEnd.push(
        this.core.pool.cancel(agent.name, this.correlationId, 'client_disconnect').catch(() => {}),
      );
    }
  }

  /** Once per request, when the client's response is over: request_complete, then the summary. */
  protected complete(): void {
    if (this.completed) return;
    this.completed = true;
    const durationMs = performance.now() - this.started;
    const status = this.clientGone ? 499 : this.status;
    const summary: ExchangeSummary = {
      correlationId: this.correlationId,
      requestId: this.requestId,
      method: this.req.method ?? 'GET',
      uri: this.uri,
      clientIp: this.clientIp,
      route: this.route?.name ?? null,
      upstream: this.route?.upstreamId ?? null,
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
          this.core.hooks.agentDecision?.(agent.name, 'request_complete', metricDecision(r)),
        )
        .catch(() => {});
      this.agentCallsAtEnd.push(sent);
    }
    // The pool pins each request to the connection that saw its headers and forgets it only
    // on request-complete; agents that do not take it would keep the entry for the TTL.
    // Cleared once the cancels and request-completes above have gone out on that connection.
    // (no chain, no agent call: nothing pinned)
    const cid = this.correlationId;
    if (this.agentCallsAtEnd.length > 0) {
      void Promise.allSettled(this.agentCallsAtEnd).then(() => this.core.pool.clearAffinity(cid));
    } else if (this.chain.length > 0) this.core.pool.clearAffinity(cid);
    this.core.hooks.exchangeFinished?.(summary);
  }
}

/** What a stream that closed without ending or failing is reported as (as stream.pipeline does). */
function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}
