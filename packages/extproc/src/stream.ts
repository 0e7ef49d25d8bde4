/**
 * One ext_proc stream: one HTTP request and its response, as Envoy processes them. Each
 * ProcessingRequest is checked against the order Envoy sends them in, becomes a picket
 * event, and gets exactly one ProcessingResponse, in order (trailers pass through without
 * the handler). A non-allow answer becomes an ImmediateResponse, after which Envoy sends
 * nothing more for the request and anything already on its way is ignored.
 */
import { randomUUID } from 'node:crypto';
import { type ServerDuplexStream, status } from '@grpc/grpc-js';
import {
  type AgentHandler,
  AgentProtocolError,
  type AgentResponse,
  ErrorCode,
  type ErrorPolicy,
  type EventMap,
  type EventType,
  type HandlerErrorCause,
  type HeaderOp,
  handlerErrorResponse,
  type Logger,
  parseAgentResponse,
  type RequestHeadersEvent,
} from '@picket/protocol';
import {
  type AgentTracing,
  EVENT_HOOK,
  errorAnswer,
  LazyAbort,
  notifyCancel,
  requestContext,
  runHook,
} from '@picket/protocol/internal';
import { immediateResponse } from './answer.js';
import {
  bodyMutation,
  clientAddress,
  type MutationWriter,
  pseudoHeader,
  readHeaderMap,
} from './convert.js';
import {
  type BodyMutation,
  BodySendMode,
  type CommonResponse,
  encodeProcessingResponse,
  type HttpBody,
  type ImmediateResponse,
  type ProcessingRequest,
  type ProcessingResponse,
  ResponseStatus,
  Undecodable,
} from './proto.js';

/** What every stream of one server shares. */
export interface StreamHost {
  handler: AgentHandler;
  log: Logger;
  errorPolicy: ErrorPolicy;
  /** a span per event (the server's `tracer` option) */
  tracing: AgentTracing | undefined;
  writer: MutationWriter;
  maxMessageSize: number;
  ended(s: ExtProcStream): void;
}

/** Messages read ahead of the handler before the stream stops reading (HTTP/2 flow control). */
const MAX_QUEUED = 32;

/** Where one direction (request or response) is in Envoy's order: headers, body chunks, trailers. */
interface Direction {
  started: boolean;
  ended: boolean;
  trailers: boolean;
  chunks: number;
  bytes: number;
  /** content-length of its headers, when valid */
  length: number | null;
  /** the data plane streams this body full duplex: body answers carry the body back */
  fullDuplex: boolean;
}

const direction = (): Direction => ({
  started: false,
  ended: false,
  trailers: false,
  chunks: 0,
  bytes: 0,
  length: null,
  fullDuplex: false,
});

/** Raised for a ProcessingRequest out of Envoy's order or missing what it must carry. */
class BadRequest extends Error {}

let streams = 0;

export class ExtProcStream {
  /** a stable id for logs and `ctx.connectionId` */
  readonly id = `extproc-${++streams}`;
  /** the correlation id of this stream's request: generated, never taken from a client header */
  readonly cid = randomUUID();
  readonly #call: ServerDuplexStream<ProcessingRequest | Undecodable, Buffer>;
  readonly #host: StreamHost;
  readonly #abort = new LazyAbort();
  readonly #req = direction();
  readonly #res = direction();
  /** response-header ops answered before the response headers arrived */
  #responseOps: HeaderOp[] = [];
  #queue: Promise<void> = Promise.resolve();
  #pending = 0;
  #paused = false;
  #halfClosed = false;
  /** an ImmediateResponse went out: Envoy is done with this request */
  #stopped = false;
  #closed = false;
  #idle: (() => void)[] = [];
  /** the event type being answered (what an error answer is for) */
  #lastType: EventType = 'request_headers';

  constructor(call: ServerDuplexStream<ProcessingRequest | Undecodable, Buffer>, host: StreamHost) {
    this.#call = call;
    this.#host = host;
    call.on('data', (m: ProcessingRequest | Undecodable) => this.#receive(m));
    call.on('end', () => {
      this.#halfClosed = true;
      if (this.#pending === 0) this.#finish();
    });
    // A reset by Envoy (its client went away, a timeout), or the call dying under us.
    const gone = () => this.#gone();
    call.on('cancelled', gone);
    call.on('error', gone);
    call.on('close', gone);
  }

  /** Resolves once no message is being handled. */
  idle(): Promise<void> {
    if (this.#pending === 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Ends the stream with UNAVAILABLE (the server is closing). */
  end(why: string): void {
    this.#fail(status.UNAVAILABLE, why);
  }

  #receive(m: ProcessingRequest | Undecodable): void {
    if (this.#closed) return;
    if (m instanceof Undecodable) {
      this.#fail(status.INVALID_ARGUMENT, `ProcessingRequest could not be decoded: ${m.reason}`);
      return;
    }
    if (this.#stopped) {
      this.#host.log.debug('message after an immediate response ignored', {
        stream: this.id,
        part: m.request,
      });
      return;
    }
    let work: () => Promise<void>;
    try {
      work = this.#accept(m);
    } catch (err) {
      if (!(err instanceof BadRequest || err instanceof AgentProtocolError)) throw err;
      this.#fail(status.INVALID_ARGUMENT, err.message);
      return;
    }
    this.#pending++;
    if (this.#pending >= MAX_QUEUED && !this.#paused) {
      this.#paused = true;
      this.#call.pause();
    }
    this.#queue = this.#queue
      .then(() => (this.#closed || this.#stopped ? undefined : work()))
      .catch((err: unknown) => {
        this.#host.log.error('ext_proc stream failed', { stream: this.id, error: String(err) });
        this.#fail(status.INTERNAL, 'agent failed to answer');
      })
      .then(() => this.#settled());
  }

  #settled(): void {
    this.#pending--;
    if (this.#paused && this.#pending < MAX_QUEUED) {
      this.#paused = false;
      this.#call.resume();
    }
    if (this.#pending > 0) return;
    for (const resolve of this.#idle.splice(0)) resolve();
    if (this.#halfClosed) this.#finish();
  }

  /**
   * Checks `m` against what came before, in arrival order, and returns the work that
   * answers it. Throws BadRequest (or INVALID_ARGUMENT) for a message Envoy would not send.
   */
  #accept(m: ProcessingRequest): () => Promise<void> {
    const pc = m.protocol_config;
    if (pc !== undefined) {
      this.#req.fullDuplex = pc.request_body_mode === BodySendMode.FULL_DUPLEX_STREAMED;
      this.#res.fullDuplex = pc.response_body_mode === BodySendMode.FULL_DUPLEX_STREAMED;
    }
    const quiet = m.observability_mode === true;
    switch (m.request) {
      case 'request_headers': {
        const h = m.request_headers ?? {};
        this.#headersArrive(this.#req, 'request', h.end_of_stream === true);
        const event = this.#requestHeadersEvent(m);
        return () => this.#onRequestHeaders(event, quiet);
      }
      case 'response_headers': {
        const h = m.response_headers ?? {};
        this.#headersArrive(this.#res, 'response', h.end_of_stream === true);
        const read = readHeaderMap(h.headers);
        const statusText = pseudoHeader(read, ':status', 'response_headers');
        const code = Number(statusText);
        if (!/^\d{3}$/.test(statusText) || code < 100) {
          throw new BadRequest(
            `response_headers: :status ${JSON.stringify(statusText)} is not an HTTP status`,
          );
        }
        this.#res.length = contentLength(read.headers['content-length']);
        const event = { correlation_id: this.cid, status: code, headers: read.headers };
        return () => this.#onResponseHeaders(event, quiet);
      }
      case 'request_body':
      case 'response_body': {
        const request = m.request === 'request_body';
        const dir = request ? this.#req : this.#res;
        const body = (request ? m.request_body : m.response_body) ?? {};
        const chunk = this.#bodyArrives(dir, m.request, body);
        return () => this.#onBody(request, chunk, quiet);
      }
      case 'request_trailers':
      case 'response_trailers': {
        const request = m.request === 'request_trailers';
        const dir = request ? this.#req : this.#res;
        if (dir.trailers) throw new BadRequest(`${m.request}: a second set of trailers`);
        if (dir.ended)
          throw new BadRequest(
            `${m.request} after the end of the ${request ? 'request' : 'response'}`,
          );
        dir.started = true;
        dir.trailers = true;
        dir.ended = true;
        // passed through unchanged: an empty TrailersResponse
        const answer: ProcessingResponse = request
          ? { request_trailers: {} }
          : { response_trailers: {} };
        return async () => this.#send(answer, quiet);
      }
      default:
        throw new BadRequest(
          'ProcessingRequest carries none of request_headers, response_headers, request_body, response_body, request_trailers, response_trailers',
        );
    }
  }

  #headersArrive(dir: Direction, which: string, endOfStream: boolean): void {
    if (dir.started) {
      throw new BadRequest(`${which}_headers after the ${which}'s headers or body`);
    }
    dir.started = true;
    if (endOfStream) dir.ended = true;
  }

  #bodyArrives(dir: Direction, part: string, body: HttpBody): BodyChunk {
    if (dir.ended) {
      throw new BadRequest(
        `${part} after the end of the ${part === 'request_body' ? 'request' : 'response'}`,
      );
    }
    dir.started = true;
    const data = body.body ?? Buffer.alloc(0);
    const last = body.end_of_stream === true;
    if (last) dir.ended = true;
    dir.bytes += data.length;
    return { data, last, index: dir.chunks++, bytes: dir.bytes, total: dir.length };
  }

  #requestHeadersEvent(m: ProcessingRequest): RequestHeadersEvent {
    const read = readHeaderMap(m.request_headers?.headers);
    const method = pseudoHeader(read, ':method', 'request_headers');
    const uri = pseudoHeader(read, ':path', 'request_headers');
    const authority = read.pseudo.get(':authority');
    const { headers } = read;
    // HTTP/2 and Envoy carry the host as :authority; picket agents read `host`
    if (authority !== undefined && authority !== '' && !Object.hasOwn(headers, 'host')) {
      headers.host = [authority];
    }
    this.#req.length = contentLength(headers['content-length']);
    const client = clientAddress(m.attributes);
    const requestId = headers['x-request-id']?.[0];
    const traceparent = headers.traceparent?.[0];
    const host = authority?.replace(/:\d+$/, '') ?? null;
    return {
      metadata: {
        correlation_id: this.cid,
        request_id: requestId !== undefined && requestId !== '' ? requestId : this.cid,
        client_ip: client.ip,
        client_port: client.port,
        server_name: client.serverName ?? (host === '' ? null : host),
        protocol: client.protocol ?? '',
        tls_version: client.tlsVersion ?? null,
        route_id: null,
        upstream_id: null,
        timestamp: new Date().toISOString(),
        ...(traceparent !== undefined && { traceparent }),
      },
      method,
      uri,
      headers,
    };
  }

  async #onRequestHeaders(event: RequestHeadersEvent, quiet: boolean): Promise<void> {
    const r = await this.#invoke('request_headers', event);
    if (r === undefined || this.#immediate(r, quiet)) return;
    this.#responseOps.push(...r.response_headers);
    this.#send({ request_headers: { response: this.#common(r.request_headers) } }, quiet);
  }

  async #onResponseHeaders(event: EventMap['response_headers'], quiet: boolean): Promise<void> {
    const r = await this.#invoke('response_headers', event);
    if (r === undefined || this.#immediate(r, quiet)) return;
    const ops = [...this.#responseOps.splice(0), ...r.response_headers];
    this.#send({ response_headers: { response: this.#common(ops) } }, quiet);
  }

  async #onBody(request: boolean, chunk: BodyChunk, quiet: boolean): Promise<void> {
    const base = {
      correlation_id: this.cid,
      data: chunk.data,
      is_last: chunk.last,
      total_size: chunk.total,
      chunk_index: chunk.index,
    };
    const r = request
      ? await this.#invoke('request_body_chunk', { ...base, bytes_received: chunk.bytes })
      : await this.#invoke('response_body_chunk', { ...base, bytes_sent: chunk.bytes });
    if (r === undefined || this.#immediate(r, quiet)) return;
    const dir = request ? this.#req : this.#res;
    const wanted = request ? r.request_body_mutation : r.response_body_mutation;
    let mutation: BodyMutation | undefined;
    if (dir.fullDuplex) {
      // full duplex: the answer carries the chunk Envoy forwards, changed or not
      const replaced = bodyMutation(wanted);
      const body = replaced === undefined ? chunk.data : (replaced.body ?? Buffer.alloc(0));
      mutation = { streamed_response: { body, end_of_stream: chunk.last } };
    } else {
      mutation = bodyMutation(wanted);
    }
    // header ops on a body answer take effect in BUFFERED mode only (Envoy's rule)
    let ops: HeaderOp[];
    if (request) {
      this.#responseOps.push(...r.response_headers);
      ops = r.request_headers;
    } else {
      ops = [...this.#responseOps.splice(0), ...r.response_headers];
    }
    const common = this.#common(ops, mutation);
    this.#send(
      request ? { request_body: { response: common } } : { response_body: { response: common } },
      quiet,
    );
  }

  #common(ops: readonly HeaderOp[], body?: BodyMutation): CommonResponse {
    const out: CommonResponse = { status: ResponseStatus.CONTINUE };
    const mutation = this.#host.writer.mutation(ops, (why) => this.#skipped(why));
    if (mutation !== undefined) out.header_mutation = mutation;
    if (body !== undefined) out.body_mutation = body;
    return out;
  }

  #skipped(why: string): void {
    this.#host.log.warn('header op not sent to Envoy', { stream: this.id, why });
  }

  /** Sends the ImmediateResponse of a non-allow answer; false for allow. */
  #immediate(r: AgentResponse, quiet: boolean): boolean {
    if (r.decision === 'allow') return false;
    const skip = (why: string) => this.#skipped(why);
    let reply: ImmediateResponse;
    try {
      reply = immediateResponse(r, this.#host.writer, skip);
    } catch (err) {
      const fallback = this.#policy(
        AgentProtocolError.from(err, ErrorCode.HandlerError, 'unusable decision'),
        'INVALID_RESPONSE',
        this.#lastType,
      );
      if (fallback === undefined) return true;
      try {
        reply = immediateResponse(fallback, this.#host.writer, skip);
      } catch {
        reply = immediateResponse(
          handlerErrorResponse(this.#lastType, 'INVALID_RESPONSE'),
          this.#host.writer,
          skip,
        );
      }
    }
    // in observability mode Envoy ignores answers and keeps sending: nothing stops
    if (!quiet) this.#stopped = true;
    this.#send({ immediate_response: reply }, quiet);
    return true;
  }

  /**
   * Runs the hook and checks its answer. Failures go through the error policy: its answer
   * (a block; never an allow), or undefined after ending the stream when the policy closes.
   */
  async #invoke<K extends EventType>(
    type: K,
    event: EventMap[K],
  ): Promise<AgentResponse | undefined> {
    this.#lastType = type;
    const ctx = requestContext(this.#abort, this.cid, 'extproc', this.id, undefined);
    let raw: unknown;
    try {
      raw = await runHook(this.#host.handler, type, event, ctx, this.#host.tracing);
    } catch (err) {
      const e = AgentProtocolError.from(err, ErrorCode.HandlerError, `${EVENT_HOOK[type]} failed`);
      this.#host.log.warn('handler failed', {
        stream: this.id,
        correlationId: this.cid,
        error: e.message,
      });
      return this.#policy(e, 'HANDLER_ERROR', type);
    }
    try {
      return parseAgentResponse(raw, `${EVENT_HOOK[type]} answer`);
    } catch (err) {
      const e = AgentProtocolError.from(err, ErrorCode.HandlerError, 'invalid AgentResponse');
      this.#host.log.warn('handler answered no valid AgentResponse', {
        stream: this.id,
        correlationId: this.cid,
        error: e.message,
      });
      return this.#policy(e, 'INVALID_RESPONSE', type);
    }
  }

  #policy(
    error: AgentProtocolError,
    cause: HandlerErrorCause,
    type: EventType,
  ): AgentResponse | undefined {
    const info = {
      cause,
      eventType: type,
      correlationId: this.cid,
      connectionId: this.id,
      transport: 'extproc' as const,
    };
    const answer = errorAnswer(this.#host.errorPolicy, error, info, this.#host.log);
    if (answer === undefined) this.#fail(status.INTERNAL, `agent failed: ${error.message}`);
    return answer;
  }

  /** Encodes and writes one answer (none in observability mode); an oversized one is replaced. */
  #send(m: ProcessingResponse, quiet: boolean): void {
    if (this.#closed || quiet) return;
    let bytes = encodeProcessingResponse(m);
    if (bytes.length > this.#host.maxMessageSize) {
      const answer = this.#policy(
        new AgentProtocolError(
          ErrorCode.MessageTooLarge,
          `answer of ${bytes.length} bytes is over the ${this.#host.maxMessageSize}-byte message limit`,
        ),
        'RESPONSE_TOO_LARGE',
        this.#lastType,
      );
      if (answer === undefined) return;
      const fallback = answer.decision === 'allow' ? handlerErrorResponse(this.#lastType) : answer;
      this.#stopped = true;
      bytes = encodeProcessingResponse({
        immediate_response: immediateResponse(fallback, this.#host.writer, () => {}),
      });
    }
    if (!this.#closed) this.#call.write(bytes);
  }

  /** Ends the stream with an error status: the request's processing failed. */
  #fail(code: status, details: string): void {
    if (this.#closed) return;
    this.#host.log.warn('ext_proc stream ended with an error', {
      stream: this.id,
      code: status[code],
      details,
    });
    this.#close('upstream_error');
    this.#call.emit('error', { code, details });
  }

  /** Envoy half-closed and every answer is out: end with OK. */
  #finish(): void {
    if (this.#closed) return;
    this.#close(undefined);
    this.#call.end();
  }

  /** Envoy reset the stream, or the call ended under us. */
  #gone(): void {
    if (this.#closed) return;
    this.#close('client_disconnect');
  }

  #close(cancel: 'client_disconnect' | 'upstream_error' | undefined): void {
    this.#closed = true;
    if (cancel !== undefined && this.#pending > 0) {
      this.#abort.abort(
        new AgentProtocolError(ErrorCode.Cancelled, `ext_proc stream ended (${cancel})`),
      );
      notifyCancel(this.#host.handler, this.cid, cancel, this.#host.log, this.id);
    }
    for (const resolve of this.#idle.splice(0)) resolve();
    this.#host.ended(this);
  }
}

interface BodyChunk {
  data: Uint8Array;
  last: boolean;
  index: number;
  bytes: number;
  total: number | null;
}

function contentLength(values: string[] | undefined): number | null {
  const v = values?.[0];
  return v !== undefined && /^\d{1,15}$/.test(v) ? Number(v) : null;
}
