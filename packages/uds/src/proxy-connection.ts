import type { Duplex } from 'node:stream';
import {
  createMessageCodec,
  decodePing,
  encodeCancel,
  encodePing,
  getCodec,
  type MessageCodec,
} from '@picket/codec';
import type { Frame } from '@picket/framing';
import {
  type AgentCapabilities,
  type AgentEvent,
  AgentProtocolError,
  type AgentResponse,
  type AgentTransport,
  type CallOptions,
  type CancelReason,
  cancelReasonToUds,
  describeMessageType,
  type Encoding,
  ErrorCode,
  type EventMap,
  type EventType,
  eventCorrelationId,
  flowActionFromWire,
  type HandshakeResponse,
  type HealthReport,
  healthStateFromWire,
  MessageType,
  responseCorrelationId,
  type TransportKind,
} from '@picket/protocol';
import {
  AgentTransportBase,
  CallEngine,
  type SinkCall,
  type SinkSender,
  sendInto,
} from '@picket/protocol/internal';
import { FrameChannel } from './channel.js';
import { EVENT_FRAME_TYPE } from './events.js';
import { defaultLogger, type Logger } from './logger.js';

/** Proxy-side engine settings (everything but the socket and the handshake outcome is optional). */
export interface ProxyConnectionOptions {
  /** reported as `AgentTransport.kind`; default `'uds'` (reverse connections pass `'reverse'`) */
  kind?: TransportKind;
  /** the agent's id as the proxy knows it */
  agentId: string;
  /** capabilities from the handshake or the registration */
  capabilities: AgentCapabilities;
  /** negotiated payload encoding; default `json` */
  encoding?: Encoding;
  /** send raw `bin` body data in msgpack (only towards a picket agent that advertised it) */
  binaryBodies?: boolean;
  /** the handshake response, when there was one (kept for inspection) */
  handshake?: HandshakeResponse;
  /**
   * Default per-call timeout in ms. Default 1000, the Rust proxy's per-agent default
   * (`timeout_ms`), since a proxy waits on this for every request.
   */
  timeoutMs?: number;
  /** where diagnostics go; default warn/error to the console */
  logger?: Logger;
  /** epoch-ms clock for cancel / ping timestamps (tests pin it) */
  clock?: () => number;
  /** name used in logs and errors; default derived from the agent id */
  id?: string;
  /** used only when a raw socket (not a FrameChannel) is passed */
  maxFrameLength?: number;
  /** used only when a raw socket (not a FrameChannel) is passed */
  maxWriteQueueBytes?: number;
}

/** Counters of one proxy-side connection. */
export interface ProxyConnectionStats {
  /** events written to the agent */
  requests: number;
  /** replies matched to a pending call */
  responses: number;
  /** calls that timed out */
  timeouts: number;
  /** calls cancelled (cancel(), cancelAll(), AbortSignal) */
  cancelled: number;
  /** replies for no pending call (unknown or late) */
  droppedReplies: number;
  /** replies that failed to decode or validate */
  invalidReplies: number;
}

interface PendingPing {
  readonly payload: Uint8Array;
  readonly started: number;
  resolve(ms: number): void;
  reject(error: AgentProtocolError): void;
  timer?: NodeJS.Timeout;
  signal?: AbortSignal;
  onAbort?: () => void;
}

const DEFAULT_TIMEOUT_MS = 1000;

let connectionCounter = 0;

/** Reads `key` from a map-shaped value or `index` from an array-shaped (rmp-serde) struct. */
function field(v: unknown, key: string, index: number): unknown {
  if (Array.isArray(v)) return v[index];
  if (v instanceof Map) return v.get(key);
  if (v !== null && typeof v === 'object') return (v as Record<string, unknown>)[key];
  return undefined;
}

/**
 * The proxy side of one v2 connection, over any connected socket: sends events,
 * matches replies (0x20) by `audit.custom.correlation_id` in any order, handles
 * timeouts, cancellation (0x40), ping (0x41/0x42) and the agent's control frames
 * (health 0x30, metrics 0x31, config update 0x32, flow control 0x33).
 *
 * It does no handshake: {@link AgentClientV2Uds.connect} does the UDS handshake
 * and reverse connections do their registration, then both hand the socket (or
 * the {@link FrameChannel} they used) to this engine.
 *
 * Connection loss of any kind rejects every pending call at once with
 * CONNECTION_CLOSED and emits `close` with the cause; later calls fail immediately.
 */
export class ProxyConnection extends AgentTransportBase implements AgentTransport, SinkSender {
  readonly kind: TransportKind;
  readonly agentId: string;
  readonly capabilities: AgentCapabilities;
  readonly encoding: Encoding;
  /** the handshake response, when the connection was opened with one */
  readonly handshake: HandshakeResponse | undefined;
  /** name used in logs and errors */
  readonly id: string;
  /** the frame stream underneath */
  readonly channel: FrameChannel;
  /** counters, live */
  readonly stats: ProxyConnectionStats;

  private readonly codec: MessageCodec;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private readonly clock: () => number;
  /** pending calls, deadlines, signals, cancel, paused: the engine every transport shares */
  private readonly calls: CallEngine;

  private readonly pings = new Map<number, PendingPing>();
  private pingSequence = 0;
  private lastHealth: HealthReport | undefined;
  private isClosed = false;
  private closing = false;

  constructor(source: FrameChannel | Duplex, options: ProxyConnectionOptions) {
    super();
    this.kind = options.kind ?? 'uds';
    this.agentId = options.agentId;
    this.capabilities = options.capabilities;
    this.encoding = options.encoding ?? 'json';
    this.handshake = options.handshake;
    this.id = options.id ?? `${this.kind}:${this.agentId}#${++connectionCounter}`;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.logger = options.logger ?? defaultLogger;
    this.clock = options.clock ?? Date.now;
    this.codec = createMessageCodec(this.encoding, { binaryBodies: options.binaryBodies === true });
    this.channel =
      source instanceof FrameChannel
        ? source
        : new FrameChannel(source, {
            id: this.id,
            maxFrameLength: options.maxFrameLength,
            maxWriteQueueBytes: options.maxWriteQueueBytes,
          });
    const calls = new CallEngine({
      name: `agent "${this.agentId}" (${this.id})`,
      timeoutMs: this.timeoutMs,
      wire: {
        write: (call, event) => this.writeEvent(call.type, event, call.correlationId),
        writeCancel: (cid, reason) => this.writeCancel(cid, reason),
      },
    });
    this.calls = calls;
    this.stats = {
      requests: 0,
      responses: 0,
      get timeouts() {
        return calls.counts.timeouts;
      },
      get cancelled() {
        return calls.counts.cancelled;
      },
      droppedReplies: 0,
      invalidReplies: 0,
    };
    this.channel.onClose((error) => this.onChannelClose(error));
    this.channel.setFrameHandler((frame) => this.onFrame(frame));
  }

  /** Calls sent and not yet settled. */
  get inFlight(): number {
    return this.calls.size;
  }

  /** True while the agent has paused traffic. */
  get paused(): boolean {
    return this.calls.paused;
  }

  /** The agent's last health report, if it sent one. */
  get health(): HealthReport | undefined {
    return this.lastHealth;
  }

  /** True once the connection has ended. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Connected, not paused, and not reported unhealthy or draining. */
  isHealthy(): boolean {
    if (this.isClosed || this.calls.paused) return false;
    const state = this.lastHealth?.state;
    return state !== 'unhealthy' && state !== 'draining';
  }

  /**
   * Sends any event and resolves with the agent's reply. The event's own correlation
   * id (RequestHeaders: `metadata.correlation_id`) keys the reply; a second call with
   * an id already in flight is rejected with INVALID_ARGUMENT. While the agent has paused
   * traffic (frame 0x33) a call is rejected at once with FLOW_CONTROL_PAUSED.
   */
  send<K extends EventType>(
    type: K,
    event: EventMap[K],
    options?: CallOptions,
  ): Promise<AgentResponse> {
    let cid: unknown;
    try {
      cid = eventCorrelationId(event);
    } catch {
      cid = undefined;
    }
    if (typeof cid !== 'string') {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.InvalidArgument,
          `${this.id}: ${type} event has no string correlation_id`,
        ),
      );
    }
    return this.calls.call(type, event, cid, options);
  }

  /** @internal The pool's path: {@link send} with the outcome going to the call itself. */
  [sendInto](call: SinkCall, now: number): void {
    this.calls.callInto(call, now);
  }

  /** Tells the agent to stop working on `correlationId` (0x40) and rejects its pending call with CANCELLED. */
  async cancel(correlationId: string, reason: CancelReason = 'manual'): Promise<void> {
    this.calls.cancel(correlationId, reason);
  }

  /** Cancels every pending call (one 0x40 each, as there is no cancel-all frame); resolves to how many. */
  async cancelAll(reason: CancelReason = 'manual'): Promise<number> {
    return this.calls.cancelAll(reason);
  }

  /**
   * Sends a ping (0x41, sequence from 0) and resolves with the round trip in ms when
   * the agent echoes it (0x42, matched by sequence).
   */
  ping(options: CallOptions = {}): Promise<number> {
    if (this.isClosed) return Promise.reject(this.closedError('cannot ping'));
    const sequence = this.pingSequence++;
    const payload = encodePing({ sequence, timestamp_ms: this.clock() });
    return new Promise<number>((resolve, reject) => {
      const ping: PendingPing = { payload, started: performance.now(), resolve, reject };
      const settle = (outcome: number | AgentProtocolError): void => {
        if (this.pings.get(sequence) !== ping) return;
        this.pings.delete(sequence);
        if (ping.timer !== undefined) clearTimeout(ping.timer);
        if (ping.signal !== undefined && ping.onAbort !== undefined) {
          ping.signal.removeEventListener('abort', ping.onAbort);
        }
        if (typeof outcome === 'number') resolve(outcome);
        else reject(outcome);
      };
      ping.resolve = (ms) => settle(ms);
      ping.reject = (err) => settle(err);
      this.pings.set(sequence, ping);
      const timeoutMs = options.timeoutMs ?? this.timeoutMs;
      if (Number.isFinite(timeoutMs)) {
        ping.timer = setTimeout(
          () =>
            ping.reject(
              new AgentProtocolError(
                ErrorCode.Timeout,
                `${this.id}: no pong for ping ${sequence} within ${timeoutMs} ms`,
              ),
            ),
          timeoutMs,
        );
      }
      if (options.signal !== undefined) {
        const signal = options.signal;
        if (signal.aborted) {
          ping.reject(new AgentProtocolError(ErrorCode.Cancelled, `${this.id}: ping aborted`));
          return;
        }
        ping.signal = signal;
        ping.onAbort = () =>
          ping.reject(new AgentProtocolError(ErrorCode.Cancelled, `${this.id}: ping aborted`));
        signal.addEventListener('abort', ping.onAbort, { once: true });
      }
      try {
        this.channel.write(MessageType.Ping, payload);
      } catch (err) {
        ping.reject(AgentProtocolError.from(err, ErrorCode.ConnectionClosed, `${this.id}: ping`));
      }
    });
  }

  /**
   * Closes the connection: pending calls are cancelled towards the agent (reason
   * `proxy_shutdown`) and rejected with CONNECTION_CLOSED, queued frames are flushed,
   * the socket is ended. Emits `close` without an error.
   */
  async close(): Promise<void> {
    if (!this.isClosed && !this.closing) {
      this.closing = true;
      for (const call of this.calls.calls()) this.writeCancel(call.correlationId, 'proxy_shutdown');
      await this.channel.end();
    }
    await this.channel.whenClosed();
  }

  /** Drops the connection at once (no flush). */
  destroy(error?: AgentProtocolError): void {
    this.channel.destroy(error);
  }

  // ------------------------------------------------------------------ internals

  private closedError(context: string): AgentProtocolError {
    const why = this.channel.closeError?.message ?? `${this.id}: connection closed`;
    return new AgentProtocolError(ErrorCode.ConnectionClosed, `${why} (${context})`, {
      cause: this.channel.closeError,
    });
  }

  /** Encodes and writes one event (the engine registered its call and fails it if this throws). */
  private writeEvent(type: EventType, event: AgentEvent, cid: string): void {
    let payload: Uint8Array;
    try {
      payload = this.codec.encodeEvent(type, event as EventMap[typeof type], cid);
    } catch (err) {
      throw AgentProtocolError.from(
        err,
        ErrorCode.InvalidArgument,
        `${this.id}: cannot encode ${type} "${cid}"`,
      );
    }
    // With other calls pending the proxy is busy: let the calls of this whole loop turn share
    // one write. A lone call (latency matters most there) leaves at once.
    const lone = this.calls.size <= 1;
    this.channel.write(EVENT_FRAME_TYPE[type], payload, !lone);
    if (lone) this.channel.flushNow();
    this.stats.requests++;
  }

  private writeCancel(cid: string, reason: CancelReason): void {
    try {
      this.channel.write(
        MessageType.Cancel,
        encodeCancel({
          correlation_id: cid,
          reason: cancelReasonToUds(reason),
          timestamp_ms: this.clock(),
        }),
      );
    } catch (err) {
      this.logger.debug('could not send cancel', {
        connection: this.id,
        correlationId: cid,
        error: err,
      });
    }
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case MessageType.AgentResponse:
        this.onResponse(frame.payload);
        return;
      case MessageType.Pong:
        this.onPong(frame.payload);
        return;
      case MessageType.HealthStatus:
        this.control('HealthStatus', () => {
          const msg = this.codec.decodeHealth(frame.payload);
          const state = healthStateFromWire(msg.state);
          if (state === undefined) {
            this.logger.warn('agent sent an unknown health state; ignored', {
              connection: this.id,
              state: msg.state,
            });
            return;
          }
          const report: HealthReport =
            msg.message === undefined ? { state } : { state, message: msg.message };
          this.lastHealth = report;
          this.emit('health', report);
        });
        return;
      case MessageType.MetricsReport:
        this.control('MetricsReport', () =>
          this.emit('metrics', this.codec.decodeMetrics(frame.payload)),
        );
        return;
      case MessageType.ConfigUpdateRequest:
        this.control('ConfigUpdateRequest', () =>
          this.emit('configUpdate', this.codec.decodeConfigUpdate(frame.payload)),
        );
        return;
      case MessageType.FlowControl:
        this.control('FlowControl', () => {
          const action = flowActionFromWire(this.codec.decodeFlowControl(frame.payload).action);
          this.calls.setPaused(action === 'pause');
          this.emit('flowControl', action);
        });
        return;
      default:
        // Valid type bytes that an agent has no business sending: ignored, as Rust does.
        this.logger.debug('ignoring unexpected frame from agent', {
          connection: this.id,
          type: describeMessageType(frame.type),
        });
    }
  }

  private control(what: string, run: () => void): void {
    try {
      run();
    } catch (err) {
      this.logger.warn(`invalid ${what} from agent; ignored`, { connection: this.id, error: err });
    }
  }

  private onResponse(payload: Uint8Array): void {
    let response: AgentResponse;
    try {
      response = this.codec.decodeResponse(payload);
    } catch (err) {
      this.stats.invalidReplies++;
      const cid = this.salvageReplyId(payload);
      this.logger.warn('invalid AgentResponse from agent', {
        connection: this.id,
        correlationId: cid,
        error: err,
      });
      if (cid !== undefined) {
        this.calls.fail(
          cid,
          AgentProtocolError.from(
            err,
            ErrorCode.InvalidMessage,
            `${this.id}: invalid reply to "${cid}"`,
          ),
        );
      }
      return;
    }
    const cid = responseCorrelationId(response);
    if (cid === undefined || !this.calls.resolve(cid, response)) {
      this.stats.droppedReplies++;
      this.logger.debug('dropping reply for no pending call', {
        connection: this.id,
        correlationId: cid,
      });
      return;
    }
    this.stats.responses++;
  }

  /** `audit.custom.correlation_id` of a reply that failed validation (map or array shaped). */
  private salvageReplyId(payload: Uint8Array): string | undefined {
    try {
      const raw = getCodec(this.encoding).decode(payload);
      const id = field(field(field(raw, 'audit', 5), 'custom', 4), 'correlation_id', -1);
      return typeof id === 'string' ? id : undefined;
    } catch {
      return undefined;
    }
  }

  private onPong(payload: Uint8Array): void {
    let sequence: number;
    try {
      sequence = decodePing(payload).sequence;
    } catch (err) {
      this.logger.debug('unparsable pong; ignored', { connection: this.id, error: err });
      return;
    }
    const ping = this.pings.get(sequence);
    if (ping === undefined) {
      this.logger.debug('pong for no pending ping; ignored', { connection: this.id, sequence });
      return;
    }
    if (Buffer.compare(Buffer.from(ping.payload), Buffer.from(payload)) !== 0) {
      this.logger.debug('pong payload differs from the ping it answers', {
        connection: this.id,
        sequence,
      });
    }
    ping.resolve(performance.now() - ping.started);
  }

  private onChannelClose(error?: AgentProtocolError): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const closed = new AgentProtocolError(
      ErrorCode.ConnectionClosed,
      error?.message ?? `${this.id}: connection closed locally`,
      { cause: error },
    );
    this.calls.close(closed);
    for (const ping of [...this.pings.values()]) ping.reject(closed);
    if (error !== undefined) {
      this.logger.warn('connection to agent lost', {
        connection: this.id,
        agent: this.agentId,
        error: error.message,
      });
    }
    this.emit('close', error);
  }
}
