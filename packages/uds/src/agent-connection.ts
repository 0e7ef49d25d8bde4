import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { createMessageCodec, decodeCancel, getCodec, type MessageCodec } from '@picket/codec';
import type { Frame } from '@picket/framing';
import {
  type AgentEvent,
  type AgentHandler,
  AgentProtocolError,
  type AgentResponse,
  type CancelReason,
  type ConfigUpdateRequest,
  cancelReasonFromUds,
  describeMessageType,
  type Encoding,
  ErrorCode,
  type ErrorPolicy,
  type EventType,
  eventCorrelationId,
  flowActionToWire,
  type HandlerErrorCause,
  type HealthState,
  handlerErrorResponse,
  healthStateToWire,
  MessageType,
  type MetricsReport,
  salvageCorrelationId,
  type TransportKind,
} from '@picket/protocol';
import {
  type AbortState,
  type AgentTracing,
  abortEvent,
  checkErrorPolicy,
  errorAnswer,
  IdTable,
  isThenable,
  notifyCancel,
  requestContext,
  runHook,
} from '@picket/protocol/internal';
import { FrameChannel } from './channel.js';
import { FRAME_EVENT_TYPE } from './events.js';
import { defaultLogger, type Logger } from './logger.js';

/** The one ErrorPolicy, answer and its constants live in @picket/protocol; re-exported for older imports. */
export {
  AGENT_HANDLER_ERROR,
  AGENT_INVALID_EVENT,
  type ErrorPolicy,
  PICKET_ERROR_TAG,
} from '@picket/protocol';

/** Agent-side engine settings. */
export interface AgentConnectionOptions {
  /** name used in logs and in `RequestContext.connectionId` */
  id?: string;
  /** reported in `RequestContext.transport`; default `'uds'` */
  transport?: TransportKind;
  /** negotiated encoding; default `json` */
  encoding?: Encoding;
  /** the proxy's id from its handshake */
  proxyId?: string;
  /** handlers running at once on this connection; default 100 (Rust's per-connection limit) */
  maxConcurrent?: number;
  /**
   * Events waiting for a free slot. When this many wait, the connection stops
   * reading from the socket until the queue shrinks, so the proxy feels
   * backpressure instead of the agent buffering without bound. Default 1000.
   */
  maxQueued?: number;
  /** what an event that cannot be handled is answered; default `'block'` (see ErrorPolicy) */
  errorPolicy?: ErrorPolicy;
  /** where diagnostics go; default warn/error to the console */
  logger?: Logger;
  /** used only when a raw socket (not a FrameChannel) is passed */
  maxFrameLength?: number;
  /** used only when a raw socket (not a FrameChannel) is passed */
  maxWriteQueueBytes?: number;
  /** a span per event (the server's `tracer` option, shared by its connections) */
  tracing?: AgentTracing;
}

/** One event: its abort state (ctx.signal, created on first read) and its place in the queue. */
interface Job extends AbortState {
  readonly cid: string;
  readonly type: EventType;
  readonly event: AgentEvent;
  cancelled: boolean;
  started: boolean;
  /** in {@link AgentConnection.jobs}: queued, or its answer is pending */
  registered: boolean;
}

/** Events emitted by an {@link AgentConnection}. */
export interface AgentConnectionEventMap {
  /** the connection ended; `error` says why when it was not a local close */
  close: [error?: AgentProtocolError];
}

let agentConnectionCounter = 0;

/**
 * The agent side of one v2 connection, over any connected socket: decodes events
 * (0x10–0x17), runs them through an {@link AgentHandler} concurrently (bounded per
 * connection, overflow queued with backpressure), replies exactly once per event
 * with 0x20 carrying `audit.custom.correlation_id`, answers pings, honours cancels
 * (aborts `ctx.signal`, calls `onCancel`, suppresses the reply) and sends control
 * frames (health, metrics, config update, flow control) to the proxy.
 *
 * It does no handshake: {@link UdsAgentServerV2} does the UDS handshake and reverse
 * connections their registration, then hand over the socket or {@link FrameChannel}.
 */
export class AgentConnection extends EventEmitter<AgentConnectionEventMap> {
  /** name used in logs and `RequestContext.connectionId` */
  readonly id: string;
  readonly encoding: Encoding;
  /** the proxy's id from its handshake, when known */
  readonly proxyId: string | undefined;
  /** the frame stream underneath */
  readonly channel: FrameChannel;

  private readonly handler: AgentHandler;
  private readonly codec: MessageCodec;
  private readonly transport: TransportKind;
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
  private readonly errorPolicy: ErrorPolicy;
  private readonly logger: Logger;
  private readonly tracing: AgentTracing | undefined;

  private running = 0;
  private readonly queue: Job[] = [];
  /**
   * Jobs by correlation id: one job, or a list when the proxy reused an id still in
   * flight. An IdTable, not a Map: see @picket/protocol/internal for why a Map with
   * constant churn costs GC time.
   */
  private readonly jobs = new IdTable<Job | Job[]>();
  /** true while {@link startQueued} runs (a synchronous handler re-enters it through finish) */
  private starting = false;
  private readingPaused = false;
  private idleWaiters: (() => void)[] = [];
  private isClosed = false;

  constructor(
    source: FrameChannel | Duplex,
    handler: AgentHandler,
    options: AgentConnectionOptions = {},
  ) {
    super();
    this.id =
      options.id ??
      (source instanceof FrameChannel ? source.id : `agent-connection-${++agentConnectionCounter}`);
    this.handler = handler;
    this.encoding = options.encoding ?? 'json';
    this.proxyId = options.proxyId;
    this.transport = options.transport ?? 'uds';
    this.maxConcurrent = Math.max(1, options.maxConcurrent ?? 100);
    this.maxQueued = Math.max(1, options.maxQueued ?? 1000);
    this.errorPolicy = checkErrorPolicy(options.errorPolicy, `AgentConnection ${this.id}`);
    this.logger = options.logger ?? defaultLogger;
    this.tracing = options.tracing;
    this.codec = createMessageCodec(this.encoding, { binaryBodies: true });
    this.channel =
      source instanceof FrameChannel
        ? source
        : new FrameChannel(source, {
            id: this.id,
            maxFrameLength: options.maxFrameLength,
            maxWriteQueueBytes: options.maxWriteQueueBytes,
          });
    this.channel.onClose((error) => this.onChannelClose(error));
    this.channel.setFrameHandler((frame) => this.onFrame(frame));
  }

  /** Events being handled or waiting for a slot. */
  get inFlight(): number {
    return this.running + this.queue.length;
  }

  /** True once the connection has ended. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Reports health to the proxy (0x30). */
  reportHealth(state: HealthState, message?: string): void {
    const msg =
      message === undefined
        ? { state: healthStateToWire(state) }
        : { state: healthStateToWire(state), message };
    this.sendControl(MessageType.HealthStatus, () => this.codec.encodeHealth(msg));
  }

  /** Asks the proxy to stop sending events on this connection (0x33 action 1). */
  pause(): void {
    this.sendControl(MessageType.FlowControl, () =>
      this.codec.encodeFlowControl({ action: flowActionToWire('pause') }),
    );
  }

  /** Lets the proxy send events again (0x33 action 2). */
  resume(): void {
    this.sendControl(MessageType.FlowControl, () =>
      this.codec.encodeFlowControl({ action: flowActionToWire('resume') }),
    );
  }

  /** Pushes a metrics report (0x31). */
  reportMetrics(report: MetricsReport): void {
    this.sendControl(MessageType.MetricsReport, () => this.codec.encodeMetrics(report));
  }

  /** Asks the proxy for a configuration change (0x32). */
  requestConfigUpdate(request: ConfigUpdateRequest): void {
    this.sendControl(MessageType.ConfigUpdateRequest, () => this.codec.encodeConfigUpdate(request));
  }

  /** Resolves `true` once no event is running or queued, `false` if `timeoutMs` passes first. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0 || this.isClosed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }

  /** Flushes queued frames and ends the connection; in-flight handlers see `ctx.signal` abort. */
  async close(): Promise<void> {
    await this.channel.end();
  }

  /** Drops the connection at once. */
  destroy(error?: AgentProtocolError): void {
    this.channel.destroy(error);
  }

  // ------------------------------------------------------------------ internals

  private sendControl(type: number, encode: () => Uint8Array): void {
    if (this.isClosed) return;
    let payload: Uint8Array;
    try {
      payload = encode();
    } catch (err) {
      throw AgentProtocolError.from(
        err,
        ErrorCode.InvalidArgument,
        `${this.id}: cannot encode ${describeMessageType(type)}`,
      );
    }
    this.write(type, payload);
  }

  private write(type: number, payload: Uint8Array): void {
    try {
      this.channel.write(type, payload);
    } catch (err) {
      const e = AgentProtocolError.from(err, ErrorCode.Internal, this.id);
      if (e.code === ErrorCode.ConnectionClosed) return;
      if (e.code === ErrorCode.MessageTooLarge) {
        this.logger.error(`cannot send ${describeMessageType(type)}: too large`, {
          connection: this.id,
          error: e.message,
        });
        throw e;
      }
      this.logger.error('closing connection: cannot write to the proxy', {
        connection: this.id,
        error: e.message,
      });
      this.channel.destroy(e);
    }
  }

  private onFrame(frame: Frame): void {
    const eventType = FRAME_EVENT_TYPE.get(frame.type);
    if (eventType !== undefined) {
      this.onEvent(eventType, frame.payload);
      return;
    }
    switch (frame.type) {
      case MessageType.Ping:
        // Echo the exact bytes, as Rust agents do.
        this.write(MessageType.Pong, frame.payload);
        return;
      case MessageType.Cancel:
        this.onCancel(frame.payload);
        return;
      default:
        this.logger.warn('ignoring unexpected frame from proxy', {
          connection: this.id,
          type: describeMessageType(frame.type),
        });
    }
  }

  private onEvent(type: EventType, payload: Uint8Array): void {
    let event: AgentEvent;
    let cid: string;
    try {
      event = this.codec.decodeEvent(type, payload);
      cid = eventCorrelationId(event);
    } catch (err) {
      const salvaged = this.salvageEventId(payload);
      this.logger.warn(`invalid ${type} event from proxy`, {
        connection: this.id,
        correlationId: salvaged,
        error: err instanceof Error ? err.message : String(err),
      });
      this.replyError(
        type,
        salvaged ?? '',
        'INVALID_EVENT',
        AgentProtocolError.from(err, ErrorCode.InvalidMessage, `invalid ${type} event`),
      );
      return;
    }
    // an object literal: measurably cheaper per event than a class instance
    const job: Job = {
      cid,
      type,
      event,
      controller: undefined,
      aborted: false,
      reason: undefined,
      cancelled: false,
      started: false,
      registered: false,
    };
    if (this.running < this.maxConcurrent) {
      this.run(job);
      return;
    }
    this.register(job);
    this.queue.push(job);
    if (this.queue.length >= this.maxQueued && !this.readingPaused) {
      this.readingPaused = true;
      this.logger.debug('event queue full; pausing reads', {
        connection: this.id,
        queued: this.queue.length,
      });
      this.channel.pauseReading();
    }
  }

  private salvageEventId(payload: Uint8Array): string | undefined {
    try {
      return salvageCorrelationId(getCodec(this.encoding).decode(payload));
    } catch {
      return undefined;
    }
  }

  private run(job: Job): void {
    job.started = true;
    this.running++;
    const ctx = requestContext(job, job.cid, this.transport, this.id, this.proxyId);
    const result = runHook(this.handler, job.type, job.event, ctx, this.tracing);
    if (!isThenable(result)) {
      // A synchronous answer is sent in this tick: no promise, no microtask per event
      // (replies still leave in one batched write per tick), and no cancel can name
      // the job meanwhile, so it is not registered by id unless it was queued.
      try {
        this.onHandlerResult(job, result);
      } finally {
        this.finish(job);
      }
      return;
    }
    if (!job.registered) this.register(job); // a cancel may name it from now on
    // One reaction for both outcomes (a `.finally` would cost another promise and tick).
    Promise.resolve(result).then(
      (value) => {
        try {
          this.onHandlerResult(job, value);
        } finally {
          this.finish(job);
        }
      },
      (err: unknown) => {
        try {
          this.onHandlerError(job, err);
        } finally {
          this.finish(job);
        }
      },
    );
  }

  private onHandlerResult(job: Job, value: unknown): void {
    if (job.cancelled || this.isClosed) {
      this.logger.debug('reply suppressed (cancelled or connection closed)', {
        connection: this.id,
        correlationId: job.cid,
      });
      return;
    }
    let payload: Uint8Array;
    try {
      // The encoder checks every field as it writes it: a malformed result is a handler error.
      payload = this.codec.encodeResponse(value as AgentResponse, job.cid);
    } catch (err) {
      this.onHandlerError(job, err, 'INVALID_RESPONSE');
      return;
    }
    try {
      this.write(MessageType.AgentResponse, payload);
    } catch (err) {
      this.onHandlerError(job, err, 'RESPONSE_TOO_LARGE');
    }
  }

  private onHandlerError(job: Job, err: unknown, cause: HandlerErrorCause = 'HANDLER_ERROR'): void {
    if (job.cancelled || this.isClosed) {
      this.logger.debug('handler failed after cancel/close; nothing sent', {
        connection: this.id,
        correlationId: job.cid,
      });
      return;
    }
    this.logger.error(`handler failed on ${job.type}`, {
      connection: this.id,
      correlationId: job.cid,
      error: err instanceof Error ? err.message : String(err),
    });
    this.replyError(
      job.type,
      job.cid,
      cause,
      AgentProtocolError.from(err, ErrorCode.HandlerError, `handler failed on ${job.type}`),
    );
  }

  /** Answers an event that could not be handled, as the error policy says. */
  private replyError(
    type: EventType,
    cid: string,
    cause: HandlerErrorCause,
    error: AgentProtocolError,
  ): void {
    if (this.isClosed) return;
    const info = {
      cause,
      eventType: type,
      correlationId: cid,
      connectionId: this.id,
      transport: this.transport,
    };
    const response = errorAnswer(this.errorPolicy, error, info, this.logger);
    if (response === undefined) {
      this.logger.warn('closing connection (errorPolicy "close")', {
        connection: this.id,
        correlationId: cid,
        reason: cause,
      });
      this.channel.destroy(
        new AgentProtocolError(ErrorCode.HandlerError, `${this.id}: ${cause} on ${type} "${cid}"`),
      );
      return;
    }
    let payload: Uint8Array;
    try {
      payload = this.codec.encodeResponse(response, cid);
    } catch (err) {
      // only a function policy's own answer can fail to encode
      this.logger.error('errorPolicy answer cannot be sent; answering the default block', {
        connection: this.id,
        correlationId: cid,
        error: err instanceof Error ? err.message : String(err),
      });
      payload = this.codec.encodeResponse(handlerErrorResponse(type, cause), cid);
    }
    try {
      this.write(MessageType.AgentResponse, payload);
    } catch (err) {
      this.logger.error('could not send the error reply', {
        connection: this.id,
        correlationId: cid,
        error: err,
      });
    }
  }

  private finish(job: Job): void {
    this.running--;
    if (job.registered) this.forget(job);
    this.startQueued();
    if (this.inFlight === 0 && this.idleWaiters.length > 0) {
      for (const w of this.idleWaiters.splice(0, this.idleWaiters.length)) w();
    }
  }

  /** Lets a cancel find `job` by its correlation id. */
  private register(job: Job): void {
    job.registered = true;
    const same = this.jobs.get(job.cid);
    if (same === undefined) this.jobs.set(job.cid, job);
    else if (Array.isArray(same)) same.push(job);
    else this.jobs.set(job.cid, [same, job]);
  }

  /** Drops `job` from the registry of jobs by correlation id. */
  private forget(job: Job): void {
    job.registered = false;
    const same = this.jobs.get(job.cid);
    if (same === job) {
      this.jobs.delete(job.cid);
    } else if (Array.isArray(same)) {
      const i = same.indexOf(job);
      if (i >= 0) same.splice(i, 1);
      if (same.length === 1) this.jobs.set(job.cid, same[0] as Job);
      else if (same.length === 0) this.jobs.delete(job.cid);
    }
  }

  private startQueued(): void {
    if (this.starting) return; // the outer loop goes on
    this.starting = true;
    try {
      while (this.running < this.maxConcurrent && this.queue.length > 0 && !this.isClosed) {
        this.run(this.queue.shift() as Job);
      }
    } finally {
      this.starting = false;
    }
    if (this.readingPaused && this.queue.length < this.maxQueued) {
      this.readingPaused = false;
      this.channel.resumeReading();
    }
  }

  private onCancel(payload: Uint8Array): void {
    let cid: string;
    let reason: CancelReason;
    try {
      const msg = decodeCancel(payload);
      cid = msg.correlation_id;
      reason = cancelReasonFromUds(msg.reason);
    } catch (err) {
      this.logger.warn('invalid Cancel from proxy; ignored', { connection: this.id, error: err });
      return;
    }
    const same = this.jobs.get(cid);
    this.logger.debug('proxy cancelled a request', {
      connection: this.id,
      correlationId: cid,
      reason,
      known: same !== undefined,
    });
    if (same !== undefined) {
      for (const job of Array.isArray(same) ? [...same] : [same]) {
        job.cancelled = true;
        if (!job.started) {
          const i = this.queue.indexOf(job);
          if (i >= 0) this.queue.splice(i, 1);
          this.forget(job);
        }
        abortEvent(job, reason);
      }
      this.startQueued();
      if (this.inFlight === 0)
        for (const w of this.idleWaiters.splice(0, this.idleWaiters.length)) w();
    }
    notifyCancel(this.handler, cid, reason, this.logger, this.id);
  }

  private onChannelClose(error?: AgentProtocolError): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const reason =
      error ?? new AgentProtocolError(ErrorCode.ConnectionClosed, `${this.id}: connection closed`);
    for (const job of this.queue.splice(0, this.queue.length)) {
      job.cancelled = true;
      abortEvent(job, reason);
    }
    for (const same of this.jobs.values()) {
      for (const job of Array.isArray(same) ? same : [same]) {
        job.cancelled = true;
        abortEvent(job, reason);
      }
    }
    this.jobs.clear();
    for (const w of this.idleWaiters.splice(0, this.idleWaiters.length)) w();
    if (error !== undefined && error.code !== ErrorCode.ConnectionClosed) {
      this.logger.warn('connection closed', { connection: this.id, reason: error.message });
    } else {
      this.logger.debug('connection closed', { connection: this.id, reason: error?.message });
    }
    this.emit('close', error);
  }
}
