/**
 * An in-process mock proxy for one AgentHandler: no sockets, but the same agent-side
 * dispatch, RequestContext, cancel notification and error policy as picket's servers
 * (@picket/protocol/internal), and every event and answer goes through the real
 * codec both ways, so the handler sees what a wire would give it and a malformed
 * answer fails here as it would there.
 */
import {
  createMessageCodec,
  decodeHandshakeRequest,
  decodeHandshakeResponse,
  encodeHandshakeRequest,
  encodeHandshakeResponse,
  type MessageCodec,
} from '@picket/codec';
import {
  type AgentCapabilities,
  type AgentHandler,
  AgentProtocolError,
  type AgentResponse,
  type CallOptions,
  type CancelReason,
  type Encoding,
  ErrorCode,
  type ErrorPolicy,
  type EventMap,
  type EventType,
  eventCorrelationId,
  type HandlerErrorCause,
  type HandshakeRequest,
  handlerErrorResponse,
  type Logger,
  MAX_UDS_PAYLOAD_SIZE,
  PROTOCOL_VERSION,
  silentLogger,
  type TransportKind,
} from '@picket/protocol';
import {
  type AbortState,
  abortEvent,
  checkErrorPolicy,
  errorAnswer,
  notifyCancel,
  requestContext,
  runHook,
} from '@picket/protocol/internal';
import {
  configureEvent,
  type GuardrailInspectInit,
  guardrailInspectEvent,
  type RequestHeadersInit,
} from './events.js';
import { type FlowInit, type FlowResult, RequestDriver, runFlow } from './request.js';

/** How the harness behaves; every field optional. */
export interface HarnessOptions {
  /** the wire encoding events and answers go through; default `json` (what a Rust proxy uses) */
  encoding?: Encoding;
  /** what a failing handler is answered, as on the servers; default `'block'` */
  errorPolicy?: ErrorPolicy;
  /** `ctx.transport`; default `'uds'` */
  transport?: TransportKind;
  /** the proxy id sent in the handshake (`ctx.proxyId`); default `picket-testing` */
  proxyId?: string;
  /** the handshake's `config`; default null */
  handshakeConfig?: unknown;
  /** default deadline of each call in ms (the proxy then cancels with reason `timeout`); default none */
  timeoutMs?: number;
  /** an answer larger than this (encoded) gets the error policy's RESPONSE_TOO_LARGE answer; default 16 MiB (UDS) */
  maxResponseBytes?: number;
  /** where the dispatch logs handler failures; default silent */
  logger?: Logger;
}

/** One event the handler is working on. */
interface Job extends AbortState {
  readonly cid: string;
  readonly type: EventType;
  settled: boolean;
  resolve(r: AgentResponse): void;
  reject(e: AgentProtocolError): void;
}

let harnessCounter = 0;

/**
 * Drives one {@link AgentHandler} the way a proxy connected to it would: handshake,
 * events (built with defaults), cancels, connection loss. Each `AgentHarness` is one
 * connection; requests are numbered `req-1`, `req-2` … unless given an id.
 */
export class AgentHarness {
  /** `ctx.connectionId` of every event */
  readonly connectionId: string;
  readonly #handler: AgentHandler;
  readonly #codec: MessageCodec;
  readonly #policy: ErrorPolicy;
  readonly #transport: TransportKind;
  readonly #proxyId: string;
  readonly #handshakeConfig: unknown;
  readonly #timeoutMs: number | undefined;
  readonly #maxResponseBytes: number;
  readonly #log: Logger;
  readonly #jobs = new Map<string, Set<Job>>();
  #handshake: Promise<AgentCapabilities> | undefined;
  #capabilities: AgentCapabilities | undefined;
  #closed: AgentProtocolError | undefined;
  #requests = 0;

  constructor(handler: AgentHandler, options: HarnessOptions = {}) {
    if (
      handler === null ||
      typeof handler !== 'object' ||
      typeof handler.capabilities !== 'function'
    ) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        'AgentHarness: handler must be an AgentHandler (an object with capabilities())',
      );
    }
    this.#handler = handler;
    this.#codec = createMessageCodec(options.encoding ?? 'json', { binaryBodies: true });
    this.#policy = checkErrorPolicy(options.errorPolicy, 'AgentHarness');
    this.#transport = options.transport ?? 'uds';
    this.#proxyId = options.proxyId ?? 'picket-testing';
    this.#handshakeConfig = options.handshakeConfig ?? null;
    this.#timeoutMs = options.timeoutMs;
    this.#maxResponseBytes = options.maxResponseBytes ?? MAX_UDS_PAYLOAD_SIZE;
    this.#log = options.logger ?? silentLogger;
    this.connectionId = `testing-${++harnessCounter}`;
  }

  /** The capabilities the handshake returned (after `handshake()` or the first event). */
  get capabilities(): AgentCapabilities {
    if (this.#capabilities === undefined) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        'AgentHarness: no handshake yet (await harness.handshake() or send an event first)',
      );
    }
    return this.#capabilities;
  }

  /** Events sent and not yet answered. */
  get inFlight(): number {
    let n = 0;
    for (const set of this.#jobs.values()) n += set.size;
    return n;
  }

  /**
   * Runs the handshake as the servers do: `capabilities()` (checked as the wire
   * would check it), then `onHandshake`. Resolves to the capabilities a proxy would
   * see; rejects with HANDSHAKE_FAILED when the handler refuses (a throwing
   * `onHandshake` refuses, as on the servers). Runs once; events call it first.
   */
  handshake(): Promise<AgentCapabilities> {
    this.#handshake ??= this.#runHandshake();
    return this.#handshake;
  }

  async #runHandshake(): Promise<AgentCapabilities> {
    // the request goes through the wire format too, so onHandshake sees a decoded one
    const request: HandshakeRequest = decodeHandshakeRequest(
      encodeHandshakeRequest({
        supported_versions: [PROTOCOL_VERSION],
        proxy_id: this.#proxyId,
        proxy_version: '0.0.0',
        config: this.#handshakeConfig,
        supported_encodings: [this.#codec.encoding],
      }),
    );
    let capabilities: AgentCapabilities;
    try {
      capabilities = this.#handler.capabilities();
    } catch (err) {
      throw AgentProtocolError.from(err, ErrorCode.HandlerError, 'handler.capabilities() threw');
    }
    let refusal: string | undefined;
    if (this.#handler.onHandshake !== undefined) {
      try {
        const decision = await this.#handler.onHandshake({ kind: 'handshake', request });
        if (!decision.accept) refusal = decision.error;
      } catch (err) {
        this.#log.error('handler.onHandshake threw; refusing the handshake', {
          connection: this.connectionId,
          error: err instanceof Error ? err.message : String(err),
        });
        refusal = 'agent handshake handler failed';
      }
    }
    let seen: AgentCapabilities;
    try {
      seen = decodeHandshakeResponse(
        encodeHandshakeResponse({
          protocol_version: PROTOCOL_VERSION,
          capabilities,
          success: refusal === undefined,
          error: refusal ?? null,
          encoding: this.#codec.encoding,
        }),
      ).capabilities;
    } catch (err) {
      throw new AgentProtocolError(
        ErrorCode.HandshakeFailed,
        `handler.capabilities() cannot be sent: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    if (refusal !== undefined) {
      throw new AgentProtocolError(
        ErrorCode.HandshakeFailed,
        `the agent refused the handshake: ${refusal}`,
      );
    }
    this.#capabilities = seen;
    return seen;
  }

  /**
   * A request: its events share one correlation id, so per-request state in the
   * handler is exercised as on a real connection. `id` default `req-<n>`.
   */
  request(id?: string): RequestDriver {
    return new RequestDriver(this, id ?? `req-${++this.#requests}`);
  }

  /** A new request's headers event; resolves to the answer. */
  requestHeaders(init: RequestHeadersInit = {}, options?: CallOptions): Promise<AgentResponse> {
    return this.request().requestHeaders(init, options);
  }

  /** A whole request (headers → body → response → complete); see {@link FlowInit}. */
  flow(init: FlowInit = {}): Promise<FlowResult> {
    return runFlow(this.request(init.correlationId), init);
  }

  /** A configure event (frame 0x17) with `config`. */
  configure(
    config: unknown,
    configVersion?: string,
    options?: CallOptions,
  ): Promise<AgentResponse> {
    const cid = `cfg-${++this.#requests}`;
    return this.send('configure', configureEvent(cid, config, configVersion), options);
  }

  /** A guardrail inspection of `init.content`. */
  guardrailInspect(init: GuardrailInspectInit, options?: CallOptions): Promise<AgentResponse> {
    const cid = `gr-${++this.#requests}`;
    return this.send('guardrail_inspect', guardrailInspectEvent(cid, init), options);
  }

  /**
   * Sends any event, as `AgentTransport.send` does: encoded and decoded with the
   * harness's encoding, dispatched to the hook (none: the default answer), the
   * answer checked by the encoder and decoded as the proxy would. A hook that
   * throws, rejects or returns something unsendable gets the error policy's answer
   * (default: the handler-error block). Rejects with CANCELLED / TIMEOUT when the
   * call is cancelled, CONNECTION_CLOSED after `close()` or a `'close'` policy.
   */
  async send<K extends EventType>(
    type: K,
    event: EventMap[K],
    options: CallOptions = {},
  ): Promise<AgentResponse> {
    await this.handshake();
    if (this.#closed !== undefined) throw this.#closed;
    const cid = eventCorrelationId(event);
    const decoded = this.#codec.decodeEvent(type, this.#codec.encodeEvent(type, event, cid));
    const set = this.#jobs.get(cid);
    for (const j of set ?? []) {
      if (j.type === type) {
        throw new AgentProtocolError(
          ErrorCode.InvalidArgument,
          `a ${type} event for "${cid}" is already in flight`,
        );
      }
    }
    return new Promise<AgentResponse>((resolve, reject) => {
      const cleanups: Array<() => void> = [];
      const job: Job = {
        cid,
        type,
        controller: undefined,
        aborted: false,
        reason: undefined,
        settled: false,
        resolve: (r) => {
          if (this.#settle(job, cleanups)) resolve(r);
        },
        reject: (e) => {
          if (this.#settle(job, cleanups)) reject(e);
        },
      };
      let jobs = this.#jobs.get(cid);
      if (jobs === undefined) {
        jobs = new Set();
        this.#jobs.set(cid, jobs);
      }
      jobs.add(job);
      const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
      if (timeoutMs !== undefined) {
        const timer = setTimeout(() => this.cancel(cid, 'timeout'), timeoutMs);
        cleanups.push(() => clearTimeout(timer));
      }
      const signal = options.signal;
      if (signal !== undefined) {
        const onAbort = () => this.cancel(cid, 'manual');
        if (signal.aborted) queueMicrotask(onAbort);
        else {
          signal.addEventListener('abort', onAbort, { once: true });
          cleanups.push(() => signal.removeEventListener('abort', onAbort));
        }
      }
      const ctx = requestContext(job, cid, this.#transport, this.connectionId, this.#proxyId);
      Promise.resolve(runHook(this.#handler, type, decoded, ctx)).then(
        (value) => this.#answer(job, value),
        (err: unknown) => this.#fail(job, err, 'HANDLER_ERROR'),
      );
    });
  }

  /**
   * Cancels a request as a proxy does: every event of it in flight has its
   * `ctx.signal` aborted (reason: the CancelReason) and its call rejected with
   * CANCELLED (TIMEOUT for reason `timeout`), and `onCancel` is told, even when
   * nothing was in flight. Resolves to how many events were in flight.
   */
  cancel(correlationId: string, reason: CancelReason = 'manual'): number {
    const set = this.#jobs.get(correlationId);
    let n = 0;
    for (const job of set ?? []) {
      n++;
      abortEvent(job, reason);
      job.reject(
        new AgentProtocolError(
          reason === 'timeout' ? ErrorCode.Timeout : ErrorCode.Cancelled,
          `${job.type} "${correlationId}" cancelled (${reason})`,
        ),
      );
    }
    notifyCancel(this.#handler, correlationId, reason, this.#log, this.connectionId);
    return n;
  }

  /**
   * Drops the connection: every event in flight has its `ctx.signal` aborted and its
   * call rejected with CONNECTION_CLOSED; later calls reject the same way. Idempotent.
   */
  close(): void {
    this.#closeWith(
      new AgentProtocolError(ErrorCode.ConnectionClosed, `${this.connectionId}: connection closed`),
    );
  }

  /** True after `close()` or a `'close'` error policy fired. */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  #closeWith(error: AgentProtocolError): void {
    if (this.#closed !== undefined) return;
    this.#closed = error;
    for (const set of [...this.#jobs.values()]) {
      for (const job of set) {
        abortEvent(job, error);
        job.reject(error);
      }
    }
  }

  /** Marks a job done; false when it already was (a late answer after a cancel is dropped). */
  #settle(job: Job, cleanups: Array<() => void>): boolean {
    if (job.settled) return false;
    job.settled = true;
    for (const c of cleanups) c();
    const set = this.#jobs.get(job.cid);
    set?.delete(job);
    if (set?.size === 0) this.#jobs.delete(job.cid);
    return true;
  }

  #answer(job: Job, value: unknown): void {
    if (job.settled) return;
    let bytes: Uint8Array;
    try {
      // The encoder checks every field as it writes it: a malformed result is a handler error.
      bytes = this.#codec.encodeResponse(value as AgentResponse);
    } catch (err) {
      this.#fail(job, err, 'INVALID_RESPONSE');
      return;
    }
    if (bytes.length > this.#maxResponseBytes) {
      this.#fail(
        job,
        new AgentProtocolError(
          ErrorCode.MessageTooLarge,
          `answer is ${bytes.length} bytes, over the ${this.#maxResponseBytes}-byte limit`,
        ),
        'RESPONSE_TOO_LARGE',
      );
      return;
    }
    job.resolve(this.#codec.decodeResponse(bytes));
  }

  #fail(job: Job, err: unknown, cause: HandlerErrorCause): void {
    if (job.settled) return;
    const error = AgentProtocolError.from(
      err,
      ErrorCode.HandlerError,
      `handler failed on ${job.type}`,
    );
    this.#log.error(`handler failed on ${job.type}`, {
      connection: this.connectionId,
      correlationId: job.cid,
      error: error.message,
    });
    const info = {
      cause,
      eventType: job.type,
      correlationId: job.cid,
      connectionId: this.connectionId,
      transport: this.#transport,
    };
    const answer = errorAnswer(this.#policy, error, info, this.#log);
    if (answer === undefined) {
      // errorPolicy 'close': the server drops the connection, the proxy sees it closed
      this.#closeWith(
        new AgentProtocolError(
          ErrorCode.ConnectionClosed,
          `${this.connectionId}: the agent closed the connection (errorPolicy 'close') after ${cause} on ${job.type} "${job.cid}"`,
          { cause: error },
        ),
      );
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = this.#codec.encodeResponse(answer);
    } catch {
      // only a function policy's own answer can fail to encode
      bytes = this.#codec.encodeResponse(handlerErrorResponse(job.type, cause));
    }
    job.resolve(this.#codec.decodeResponse(bytes));
  }
}

/** A harness for `handler`; see {@link AgentHarness}. */
export function createHarness(handler: AgentHandler, options?: HarnessOptions): AgentHarness {
  return new AgentHarness(handler, options);
}
