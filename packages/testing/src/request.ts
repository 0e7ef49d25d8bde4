/** One request's events with one correlation id, and the whole-request `flow`. */
import {
  type AgentResponse,
  type CallOptions,
  type CancelReason,
  type Decision,
  decisionKind,
  type EventType,
} from '@picket/protocol';
import {
  type BodyInit,
  type RequestCompleteInit,
  type RequestHeadersInit,
  type ResponseHeadersInit,
  requestBodyChunkEvent,
  requestCompleteEvent,
  requestHeadersEvent,
  responseBodyChunkEvent,
  responseHeadersEvent,
  toBytes,
  type WebSocketFrameInit,
  webSocketFrameEvent,
} from './events.js';
import type { AgentHarness } from './harness.js';

/** Options of one body chunk. */
export interface ChunkOptions extends CallOptions {
  /** the last chunk of the body; default false */
  last?: boolean;
  /** `total_size` (Content-Length) when known; default null */
  totalSize?: number | null;
}

/**
 * The events of one request, all with its correlation id. Chunk indices, byte
 * counts, WebSocket frame indices and the sizes and status `complete()` reports
 * are counted from what was sent, as a proxy does.
 */
export class RequestDriver {
  #requestChunks = 0;
  #requestBytes = 0;
  #responseChunks = 0;
  #responseBytes = 0;
  #frames = 0;
  #status = 200;

  constructor(
    readonly harness: AgentHarness,
    readonly correlationId: string,
  ) {}

  requestHeaders(init: RequestHeadersInit = {}, options?: CallOptions): Promise<AgentResponse> {
    return this.harness.send(
      'request_headers',
      requestHeadersEvent(this.correlationId, init),
      options,
    );
  }

  requestBodyChunk(data: BodyInit, options: ChunkOptions = {}): Promise<AgentResponse> {
    const event = requestBodyChunkEvent(this.correlationId, data, {
      isLast: options.last ?? false,
      chunkIndex: this.#requestChunks++,
      bytesBefore: this.#requestBytes,
      totalSize: options.totalSize,
    });
    this.#requestBytes = event.bytes_received;
    return this.harness.send('request_body_chunk', event, options);
  }

  /** Sends `body` as chunks (one for a single value), the last flagged; resolves to every answer. */
  requestBody(
    body: BodyInit | readonly BodyInit[],
    options?: CallOptions,
  ): Promise<AgentResponse[]> {
    return sendChunks(body, (chunk, last, totalSize) =>
      this.requestBodyChunk(chunk, { ...options, last, totalSize }),
    );
  }

  responseHeaders(init: ResponseHeadersInit = {}, options?: CallOptions): Promise<AgentResponse> {
    const event = responseHeadersEvent(this.correlationId, init);
    this.#status = event.status;
    return this.harness.send('response_headers', event, options);
  }

  responseBodyChunk(data: BodyInit, options: ChunkOptions = {}): Promise<AgentResponse> {
    const event = responseBodyChunkEvent(this.correlationId, data, {
      isLast: options.last ?? false,
      chunkIndex: this.#responseChunks++,
      bytesBefore: this.#responseBytes,
      totalSize: options.totalSize,
    });
    this.#responseBytes = event.bytes_sent;
    return this.harness.send('response_body_chunk', event, options);
  }

  /** Sends `body` as response chunks, the last flagged; resolves to every answer. */
  responseBody(
    body: BodyInit | readonly BodyInit[],
    options?: CallOptions,
  ): Promise<AgentResponse[]> {
    return sendChunks(body, (chunk, last, totalSize) =>
      this.responseBodyChunk(chunk, { ...options, last, totalSize }),
    );
  }

  /** Request complete; status and body sizes default to what this request sent. */
  complete(init: RequestCompleteInit = {}, options?: CallOptions): Promise<AgentResponse> {
    return this.harness.send(
      'request_complete',
      requestCompleteEvent(this.correlationId, {
        status: this.#status,
        request_body_size: this.#requestBytes,
        response_body_size: this.#responseBytes,
        ...init,
      }),
      options,
    );
  }

  /** A WebSocket frame of this (upgraded) request; frame indices count up from 0. */
  webSocketFrame(init: WebSocketFrameInit = {}, options?: CallOptions): Promise<AgentResponse> {
    return this.harness.send(
      'web_socket_frame',
      webSocketFrameEvent(this.correlationId, this.#frames++, init),
      options,
    );
  }

  /** Cancels this request (see `AgentHarness.cancel`). */
  cancel(reason?: CancelReason): number {
    return this.harness.cancel(this.correlationId, reason);
  }
}

/** Sends `body` chunk by chunk (the last flagged) until `stop()` says so. */
async function sendChunks(
  body: BodyInit | readonly BodyInit[],
  send: (chunk: BodyInit, last: boolean, totalSize: number) => Promise<AgentResponse>,
  stop: () => boolean = () => false,
): Promise<AgentResponse[]> {
  const chunks: readonly BodyInit[] =
    typeof body === 'string' || body instanceof Uint8Array ? [body] : body;
  const total = chunks.reduce((n, c) => n + toBytes(c).length, 0);
  const answers: AgentResponse[] = [];
  for (let i = 0; i < chunks.length && !stop(); i++) {
    answers.push(await send(chunks[i] as BodyInit, i === chunks.length - 1, total));
  }
  return answers;
}

/** A whole request for `harness.flow()`; everything defaults. */
export interface FlowInit extends RequestHeadersInit {
  /** default `req-<n>` */
  correlationId?: string;
  /** request body: one chunk or several; default none */
  requestBody?: BodyInit | readonly BodyInit[];
  /** the upstream's response headers; default status 200, no headers */
  response?: ResponseHeadersInit;
  /** response body: one chunk or several; default none */
  responseBody?: BodyInit | readonly BodyInit[];
  /** overrides of the request-complete event */
  complete?: RequestCompleteInit;
}

/** One answer of a flow, in the order the events were sent. */
export interface FlowAnswer {
  type: EventType;
  response: AgentResponse;
}

/** Every answer of a flow. */
export interface FlowResult {
  correlationId: string;
  requestHeaders: AgentResponse;
  requestBody: AgentResponse[];
  /** absent when an earlier answer did not allow */
  responseHeaders: AgentResponse | undefined;
  responseBody: AgentResponse[];
  complete: AgentResponse;
  /** all of the above in order */
  answers: FlowAnswer[];
  /** what the client got: the first answer that did not allow, else allow */
  decision: Decision;
  /** the event whose answer decided, when one did not allow */
  decidedAt: EventType | undefined;
}

/**
 * Runs a request as a proxy would: request headers, request body chunks, response
 * headers, response body chunks, each only while every answer so far allowed;
 * then request complete, always, with the status the client got (the block's or
 * the redirect's status, 403 for a challenge, else the response's).
 */
export async function runFlow(r: RequestDriver, init: FlowInit): Promise<FlowResult> {
  const answers: FlowAnswer[] = [];
  let decided: AgentResponse | undefined;
  let decidedAt: EventType | undefined;
  const note = (type: EventType, response: AgentResponse): AgentResponse => {
    answers.push({ type, response });
    if (decided === undefined && response.decision !== 'allow') {
      decided = response;
      decidedAt = type;
    }
    return response;
  };
  const stop = () => decided !== undefined;

  const requestHeaders = note('request_headers', await r.requestHeaders(init));
  const requestBody = await sendChunks(
    init.requestBody ?? [],
    async (c, last, totalSize) =>
      note('request_body_chunk', await r.requestBodyChunk(c, { last, totalSize })),
    stop,
  );
  let responseHeaders: AgentResponse | undefined;
  let responseBody: AgentResponse[] = [];
  if (decided === undefined) {
    responseHeaders = note('response_headers', await r.responseHeaders(init.response));
    responseBody = await sendChunks(
      init.responseBody ?? [],
      async (c, last, totalSize) =>
        note('response_body_chunk', await r.responseBodyChunk(c, { last, totalSize })),
      stop,
    );
  }
  const decision: Decision = decided?.decision ?? 'allow';
  const complete = await r.complete({ status: clientStatus(decision, init), ...init.complete });
  answers.push({ type: 'request_complete', response: complete });
  return {
    correlationId: r.correlationId,
    requestHeaders,
    requestBody,
    responseHeaders,
    responseBody,
    complete,
    answers,
    decision,
    decidedAt,
  };
}

function clientStatus(d: Decision, init: FlowInit): number {
  switch (decisionKind(d)) {
    case 'block':
      return (d as { block: { status: number } }).block.status;
    case 'redirect':
      return (d as { redirect: { status: number } }).redirect.status;
    case 'challenge':
      return 403;
    default:
      return init.response?.status ?? 200;
  }
}
