import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  type AgentCapabilities,
  type AgentEvent,
  AgentProtocolError,
  type AgentResponse,
  type AgentTransport,
  type CallOptions,
  type CancelReason,
  createCapabilities,
  ErrorCode,
  type EventMap,
  type EventType,
  eventCorrelationId,
} from '@picket/protocol';
import {
  AgentTransportBase,
  type Call,
  CallEngine,
  describeNodeError,
} from '@picket/protocol/internal';
import {
  AgentClient,
  type AgentClientOptions,
  DEFAULT_V1_CONNECT_TIMEOUT_MS,
  DEFAULT_V1_TIMEOUT_MS,
  socketPathOf,
} from './client.js';
import { type Logger, silentLogger } from './logger.js';

/** Default number of connections a {@link V1Transport} keeps open. */
export const DEFAULT_V1_CONNECTIONS = 4;
/** Default bound of the queue of calls waiting for a free connection. */
export const DEFAULT_V1_MAX_QUEUE = 1024;
/** Default pause before retrying a connection that could not be re-established. */
export const DEFAULT_V1_RECONNECT_INTERVAL_MS = 1000;
/** Default bound of the requests pinned to a connection at once. */
export const DEFAULT_V1_MAX_AFFINITIES = 10_000;
/** Default time a request stays pinned to its connection without a new event. */
export const DEFAULT_V1_AFFINITY_TTL_MS = 300_000;

/** Key prefix of calls without a correlation id (v1 does not need one). */
const ANONYMOUS = '(no correlation id #';

/** Events that go to the connection that carried their request's headers. */
const FOLLOW_HEADERS: ReadonlySet<EventType> = new Set<EventType>([
  'request_body_chunk',
  'response_headers',
  'response_body_chunk',
  'request_complete',
  'web_socket_frame',
]);

/** Options of {@link connectV1}. */
export interface V1TransportOptions
  extends Pick<AgentClientOptions, 'maxMessageSize' | 'requestVersion' | 'acceptedVersions'> {
  /** Connections kept open (v1 cannot multiplex: one call per connection at a time). Default 4. */
  connections?: number;
  /** Default per-call limit, including time spent waiting for a free connection. Default 1000 ms. */
  timeoutMs?: number;
  /** Limit for establishing each connection (and for `ping()`'s connect). Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Calls allowed to wait for a free connection; beyond it calls fail with `UNAVAILABLE`. Default 1024. */
  maxQueue?: number;
  /** Pause before retrying a connection slot whose reconnect failed. Default 1000 ms. */
  reconnectIntervalMs?: number;
  /**
   * Requests pinned to their connection at once (see {@link V1Transport}); beyond it the
   * oldest pin is forgotten. Default 10 000.
   */
  maxAffinities?: number;
  /** A pin without a new event of its request for this long is forgotten. Default 300 000 ms. */
  affinityTtlMs?: number;
  /**
   * What `capabilities` reports. v1 has no handshake, so by default they are
   * synthesised from the agent id (all events, `max_concurrency` = connections).
   */
  capabilities?: AgentCapabilities;
  /** Where connection losses are reported. Default: nowhere. */
  logger?: Logger;
}

type SlotState = 'ready' | 'busy' | 'connecting' | 'down';

interface Slot {
  readonly index: number;
  readonly client: AgentClient;
  state: SlotState;
  retry: NodeJS.Timeout | undefined;
}

/** A request pinned to the slot that carried its headers, and when it was last used. */
interface Pin {
  readonly slot: Slot;
  at: number;
}

/**
 * What a call carries besides the engine's bookkeeping: its event while it waits for a free
 * connection, then the controller that aborts its client call (closing that connection).
 * One field, no extra object per call.
 */
type V1Call = Call<AbortController | AgentEvent>;

/**
 * Opens a v1 {@link V1Transport} to the agent at `path`: `connections` sockets
 * are connected in parallel; it resolves when at least one is up and rejects
 * with `CONNECTION_FAILED` when none is.
 */
export async function connectV1(
  agentId: string,
  path: string,
  options: V1TransportOptions = {},
): Promise<V1Transport> {
  const transport = new V1Transport(agentId, path, options);
  await transport.start();
  return transport;
}

/**
 * The legacy v1 protocol behind the common {@link AgentTransport} interface
 * (kind `'v1'`, encoding `'json'`), so pools and gateways can use v1 agents
 * like any other.
 *
 * v1 cannot multiplex, so the transport keeps a small pool of
 * {@link AgentClient} connections: a call takes a free connection or waits in
 * a bounded queue. Differences from the v2 transports, all forced by the wire:
 * - `cancel(cid)` rejects the call locally with `CANCELLED` and, if its
 *   request is already on the wire, closes that connection: v1 has no cancel
 *   frame, and closing is the only way to stop the agent's work (a picket v1
 *   server aborts the handler's `ctx.signal`). The slot then reconnects.
 * - `ping()` has no v1 message to use: it measures how long establishing a new
 *   connection to the agent's socket takes (proof that the agent accepts
 *   connections, not that its handler answers).
 * - Capabilities are synthesised (v1 has no handshake); the agent never sends
 *   health, flow-control or metrics events, so `paused` is always false.
 * - A lost connection is re-established at once; a slot whose reconnect fails
 *   is retried every `reconnectIntervalMs` while other slots work. When every
 *   slot is down the transport closes itself and emits `close` with the error.
 * - Every event of a request goes to the connection that carried its request
 *   headers (by correlation id; the SDK agents keep per-request state per
 *   connection), waiting for it if it is busy. The pin is released when
 *   request-complete settles, when a call of the request fails (error, timeout,
 *   cancel) or its connection is lost, and after `affinityTtlMs` without an
 *   event; at most `maxAffinities` pins are kept (the oldest goes first).
 * - An acknowledgement (`{"success": true}`) answering request-complete or
 *   configure counts as allow (see {@link AgentClient}).
 */
export class V1Transport extends AgentTransportBase implements AgentTransport {
  /** Always `'v1'`. */
  readonly kind = 'v1' as const;
  /** v1 is JSON only. */
  readonly encoding = 'json' as const;
  /** The agent's id (also the `agent_id` of v1 configure payloads). */
  readonly agentId: string;
  /** Synthesised from the agent id unless given in the options (v1 has no handshake). */
  readonly capabilities: AgentCapabilities;
  /** The agent's Unix socket path. */
  readonly path: string;

  readonly #slots: Slot[];
  readonly #timeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #maxQueue: number;
  readonly #reconnectIntervalMs: number;
  readonly #maxAffinities: number;
  readonly #affinityTtlMs: number;
  readonly #log: Logger;
  /** correlation id → the slot that carried its request headers; ordered by last use */
  readonly #pins = new Map<string, Pin>();
  #queue: V1Call[] = [];
  /** pending calls (queued or on a connection), their shared deadline timer, signals, cancel */
  readonly #calls: CallEngine<AbortController | AgentEvent>;
  /** numbers the keys of events without a correlation id (v1 does not need one) */
  #anonymous = 0;
  #next = 0;
  #closed = false;
  #closing: Promise<void> | undefined;

  /** Creates the transport without connecting; prefer {@link connectV1}. */
  constructor(agentId: string, path: string, options: V1TransportOptions = {}) {
    super();
    const connections = options.connections ?? DEFAULT_V1_CONNECTIONS;
    if (!Number.isInteger(connections) || connections < 1) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `connections must be a positive integer, got ${connections}`,
      );
    }
    this.agentId = agentId;
    this.path = socketPathOf(path);
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_V1_TIMEOUT_MS;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_V1_CONNECT_TIMEOUT_MS;
    this.#maxQueue = options.maxQueue ?? DEFAULT_V1_MAX_QUEUE;
    this.#reconnectIntervalMs = options.reconnectIntervalMs ?? DEFAULT_V1_RECONNECT_INTERVAL_MS;
    this.#maxAffinities = positiveOption(
      options.maxAffinities,
      DEFAULT_V1_MAX_AFFINITIES,
      'maxAffinities',
    );
    this.#affinityTtlMs = positiveOption(
      options.affinityTtlMs,
      DEFAULT_V1_AFFINITY_TTL_MS,
      'affinityTtlMs',
    );
    this.#log = options.logger ?? silentLogger;
    this.#calls = new CallEngine({
      name: this.#where(),
      timeoutMs: this.#timeoutMs,
      wire: {
        write: (call, event) => this.#enqueue(call, event),
        writeCancel: (_cid, _reason, call) => {
          if (call !== undefined) this.#drop(call);
        },
        timeoutError: (call) =>
          new AgentProtocolError(
            ErrorCode.Timeout,
            call.data instanceof AbortController
              ? `${this.#where()}: no response to ${call.type} "${call.correlationId}" within ${call.timeoutMs} ms; its connection was closed`
              : `${this.#where()}: no free connection for ${call.type} "${call.correlationId}" within ${call.timeoutMs} ms`,
          ),
      },
    });
    this.capabilities =
      options.capabilities ??
      createCapabilities({ agentId, name: agentId, limits: { max_concurrency: connections } });
    const clientOptions: AgentClientOptions = {
      timeoutMs: this.#timeoutMs,
      connectTimeoutMs: this.#connectTimeoutMs,
      reconnect: true,
      logger: this.#log,
      ...(options.maxMessageSize !== undefined && { maxMessageSize: options.maxMessageSize }),
      ...(options.requestVersion !== undefined && { requestVersion: options.requestVersion }),
      ...(options.acceptedVersions !== undefined && { acceptedVersions: options.acceptedVersions }),
    };
    this.#slots = Array.from({ length: connections }, (_, index) => {
      const slot: Slot = {
        index,
        client: new AgentClient(agentId, path, clientOptions),
        state: 'connecting',
        retry: undefined,
      };
      slot.client.on('disconnect', (err) => {
        // The agent's per-connection request state is gone with the connection.
        this.#unpinSlot(slot);
        // A busy slot is handled when its call settles; only idle losses matter here.
        if (slot.state === 'ready' && !this.#closed) this.#reconnect(slot, err);
      });
      return slot;
    });
  }

  /** Same as {@link connectV1}. */
  static connect(
    agentId: string,
    path: string,
    options?: V1TransportOptions,
  ): Promise<V1Transport> {
    return connectV1(agentId, path, options);
  }

  /** Connects every slot; resolves when at least one is up. Called by {@link connectV1}. */
  async start(): Promise<void> {
    const results = await Promise.allSettled(this.#slots.map((s) => s.client.connect()));
    if (this.#closed) throw this.#closedError();
    const failed = results.find((r) => r.status === 'rejected');
    if (results.every((r) => r.status === 'rejected')) {
      this.#closing = this.#shutdown();
      await this.#closing;
      const cause: unknown = failed?.reason;
      throw new AgentProtocolError(
        ErrorCode.ConnectionFailed,
        `cannot connect to v1 agent "${this.agentId}" at ${this.path}: ${errorText(cause)}`,
        { cause },
      );
    }
    results.forEach((r, i) => {
      const slot = this.#slots[i] as Slot;
      if (r.status === 'rejected') this.#markDown(slot, r.reason);
      else if (slot.client.connected) slot.state = 'ready';
      else this.#reconnect(slot);
    });
    this.#pump();
  }

  /** Calls accepted and not yet settled: on the wire or waiting for a free connection. */
  get inFlight(): number {
    return this.#calls.size;
  }

  /** Calls waiting for a free connection. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Connections currently open (idle or busy). */
  get openConnections(): number {
    return this.#slots.filter((s) => s.state === 'ready' || s.state === 'busy').length;
  }

  /** v1 agents cannot pause traffic. */
  get paused(): boolean {
    return false;
  }

  /** Not closed and at least one connection open. */
  isHealthy(): boolean {
    return !this.#closed && this.openConnections > 0;
  }

  /**
   * Rejects the pending call for `correlationId` with `CANCELLED`. If its
   * request is already on the wire, that connection is closed (v1's only way
   * to stop the agent) and re-established. Unknown ids are ignored.
   */
  async cancel(correlationId: string, reason: CancelReason = 'manual'): Promise<void> {
    this.#pins.delete(correlationId);
    this.#calls.cancel(correlationId, reason);
  }

  /** Cancels every pending call; resolves to how many there were. */
  async cancelAll(reason: CancelReason = 'manual'): Promise<number> {
    this.#pins.clear();
    return this.#calls.cancelAll(reason);
  }

  /** Requests currently pinned to a connection. */
  get affinities(): number {
    return this.#pins.size;
  }

  /**
   * v1 has no ping message: this measures, in milliseconds, how long a fresh
   * connection to the agent's socket takes to establish, then closes it.
   * Rejects with `CONNECTION_FAILED`, `TIMEOUT` or `CANCELLED`.
   */
  ping(o: CallOptions = {}): Promise<number> {
    if (this.#closed) return Promise.reject(this.#closedError());
    const timeoutMs = o.timeoutMs ?? this.#timeoutMs;
    const signal = o.signal;
    const where = `v1 agent "${this.agentId}" at ${this.path}`;
    if (signal?.aborted) {
      return Promise.reject(new AgentProtocolError(ErrorCode.Cancelled, `${where}: ping aborted`));
    }
    return new Promise((resolve, reject) => {
      const start = performance.now();
      const socket = net.createConnection({ path: this.path });
      const finish = (err: AgentProtocolError | undefined) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.destroy();
        if (err === undefined) resolve(performance.now() - start);
        else reject(err);
      };
      const timer = setTimeout(
        () =>
          finish(
            new AgentProtocolError(
              ErrorCode.Timeout,
              `${where}: ping not connected within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      const onAbort = () =>
        finish(new AgentProtocolError(ErrorCode.Cancelled, `${where}: ping aborted`));
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('connect', () => finish(undefined));
      socket.once('error', (err) =>
        finish(
          new AgentProtocolError(
            ErrorCode.ConnectionFailed,
            `${where}: ping failed: ${describeNodeError(err)}`,
            {
              cause: err,
            },
          ),
        ),
      );
    });
  }

  /** Rejects every pending call with `CONNECTION_CLOSED`, closes all connections, emits `close`. */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = this.#shutdown().then(() => {
        this.emit('close');
      });
    }
    return this.#closing;
  }

  // ---------------------------------------------------------------- internals

  #where(): string {
    return `v1 agent "${this.agentId}" at ${this.path}`;
  }

  #closedError(): AgentProtocolError {
    return new AgentProtocolError(
      ErrorCode.ConnectionClosed,
      `${this.#where()}: the transport is closed`,
    );
  }

  /**
   * Sends one event on a free connection (or after waiting for one) and resolves with the
   * answer. v1 sends `{agent_id, config}` for configure: the event's correlation id and
   * config version stay local.
   */
  send<K extends EventType>(
    type: K,
    event: EventMap[K],
    o: CallOptions = {},
  ): Promise<AgentResponse> {
    if (this.#closed) return Promise.reject(this.#closedError());
    let correlationId: unknown;
    try {
      correlationId = eventCorrelationId(event);
    } catch {
      correlationId = '';
    }
    const timeoutMs = o.timeoutMs ?? this.#timeoutMs;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.InvalidArgument,
          `timeoutMs must be a positive number, got ${timeoutMs}`,
        ),
      );
    }
    if (this.#queue.length >= this.#maxQueue && this.#freeSlot(false) === undefined) {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.Unavailable,
          `${this.#where()}: all connections busy and ${this.#maxQueue} calls already waiting`,
        ),
      );
    }
    // v1 needs no correlation id; such calls get a key of their own
    const key =
      typeof correlationId === 'string' && correlationId !== ''
        ? correlationId
        : `${ANONYMOUS}${++this.#anonymous})`;
    return this.#calls.call(type, event, key, o);
  }

  /** The engine registered a call: send it on its connection if free, or queue it. */
  #enqueue(call: V1Call, event: AgentEvent): void {
    const slot = this.#slotFor(call);
    if (slot !== undefined) this.#dispatch(call, event, slot);
    else {
      call.data = event;
      this.#queue.push(call);
    }
  }

  /** The slot a call may go to now: its request's pinned one, else any free one. */
  #slotFor(call: V1Call): Slot | undefined {
    const pin = this.#pinOf(call);
    if (pin === undefined) return this.#freeSlot(true);
    return pin.slot.state === 'ready' && pin.slot.client.connected ? pin.slot : undefined;
  }

  /** The live pin of the call's request (any event type: request headers follow a pin too). */
  #pinOf(call: V1Call): Pin | undefined {
    const pin = this.#pins.get(call.correlationId);
    if (pin === undefined) return undefined;
    if (performance.now() - pin.at >= this.#affinityTtlMs) {
      this.#pins.delete(call.correlationId);
      return undefined;
    }
    return pin;
  }

  /** Pins (or refreshes) the request of `call` to `slot`, keeping the map bounded. */
  #pin(call: V1Call, slot: Slot): void {
    if (call.type === 'request_headers') {
      // keys of calls without a correlation id are local and never repeat
      if (call.correlationId.startsWith(ANONYMOUS)) return;
    } else if (!FOLLOW_HEADERS.has(call.type) || !this.#pins.has(call.correlationId)) return;
    const now = performance.now();
    this.#pins.delete(call.correlationId); // re-insert at the end: the map stays ordered by use
    for (const [cid, pin] of this.#pins) {
      if (now - pin.at < this.#affinityTtlMs && this.#pins.size < this.#maxAffinities) break;
      this.#pins.delete(cid);
    }
    this.#pins.set(call.correlationId, { slot, at: now });
  }

  /** Forgets the pin of `cid` if it still points at `slot`. */
  #unpin(cid: string, slot: Slot): void {
    if (this.#pins.get(cid)?.slot === slot) this.#pins.delete(cid);
  }

  #unpinSlot(slot: Slot): void {
    for (const [cid, pin] of this.#pins) if (pin.slot === slot) this.#pins.delete(cid);
  }

  /** The call was settled (timeout, signal, cancel): stop it where it is. */
  #drop(call: V1Call): void {
    this.#pins.delete(call.correlationId);
    const data = call.data;
    if (data instanceof AbortController) {
      // Aborting the client call closes the connection: v1 has no cancel frame.
      data.abort();
      return;
    }
    const i = this.#queue.indexOf(call);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  /** A connection free for a call; `take` moves the round-robin cursor past it. */
  #freeSlot(take: boolean): Slot | undefined {
    const n = this.#slots.length;
    for (let i = 0; i < n; i++) {
      const slot = this.#slots[(this.#next + i) % n] as Slot;
      if (slot.state === 'ready' && slot.client.connected) {
        if (take) this.#next = (slot.index + 1) % n;
        return slot;
      }
    }
    return undefined;
  }

  #dispatch(call: V1Call, event: AgentEvent, slot: Slot): void {
    const controller = new AbortController();
    call.data = controller;
    slot.state = 'busy';
    this.#pin(call, slot);
    // no client timeout: the engine's deadline aborts the client call, closing its connection
    slot.client
      .sendEvent(call.type, event as EventMap[EventType], {
        timeoutMs: Number.POSITIVE_INFINITY,
        signal: controller.signal,
      })
      .then(
        (response) => {
          if (call.type === 'request_complete') this.#unpin(call.correlationId, slot);
          this.#calls.settle(call, response);
        },
        (err: AgentProtocolError) => {
          this.#unpin(call.correlationId, slot);
          this.#calls.settle(call, err);
        },
      )
      .finally(() => this.#release(slot));
  }

  #release(slot: Slot): void {
    if (this.#closed) return;
    if (slot.client.connected) {
      slot.state = 'ready';
      this.#pump();
    } else {
      this.#reconnect(slot);
    }
  }

  #reconnect(slot: Slot, why?: AgentProtocolError): void {
    slot.state = 'connecting';
    if (why !== undefined) {
      this.#log.debug('v1 connection lost; reconnecting', {
        agentId: this.agentId,
        slot: slot.index,
        reason: why.message,
      });
    }
    slot.client.connect().then(
      () => {
        if (this.#closed) return;
        slot.state = 'ready';
        this.#pump();
      },
      (err: unknown) => {
        if (this.#closed) return;
        this.#markDown(slot, err);
      },
    );
  }

  #markDown(slot: Slot, err: unknown): void {
    slot.state = 'down';
    this.#log.warn('v1 connection could not be re-established', {
      agentId: this.agentId,
      path: this.path,
      slot: slot.index,
      error: errorText(err),
    });
    if (this.#slots.every((s) => s.state === 'down')) {
      // Nothing left to serve calls and nothing reconnecting: the transport is gone.
      if (this.#closing === undefined) {
        const error = new AgentProtocolError(
          ErrorCode.ConnectionClosed,
          `${this.#where()}: all ${this.#slots.length} connections are gone and reconnecting failed: ${errorText(err)}`,
          { cause: err },
        );
        this.#closing = this.#shutdown(error).then(() => {
          this.emit('close', error);
        });
      }
      return;
    }
    slot.retry = setTimeout(() => {
      slot.retry = undefined;
      if (!this.#closed && slot.state === 'down') this.#reconnect(slot);
    }, this.#reconnectIntervalMs);
    slot.retry.unref();
  }

  /** Sends queued calls in order, each on its pinned connection or any free one. */
  #pump(): void {
    for (let i = 0; i < this.#queue.length; ) {
      if (this.#freeSlot(false) === undefined) return;
      const call = this.#queue[i] as V1Call;
      const slot = this.#slotFor(call);
      if (slot === undefined) {
        i++; // its connection is busy: later calls may still go elsewhere
        continue;
      }
      this.#queue.splice(i, 1);
      this.#dispatch(call, call.data as AgentEvent, slot);
    }
  }

  async #shutdown(error?: AgentProtocolError): Promise<void> {
    this.#closed = true;
    this.#pins.clear();
    const sent: AbortController[] = [];
    for (const call of this.#calls.calls()) {
      if (call.data instanceof AbortController) sent.push(call.data);
    }
    const queued = this.#queue;
    this.#queue = [];
    const closing = error ?? this.#closedError();
    // calls still queued never reached a connection: retrying them elsewhere duplicates nothing
    for (const call of queued) {
      this.#calls.settle(
        call,
        new AgentProtocolError(closing.code, `${closing.message} (${call.type} not sent)`, {
          cause: closing,
          sent: false,
        }),
      );
    }
    this.#calls.close(closing);
    for (const controller of sent) controller.abort();
    for (const slot of this.#slots) clearTimeout(slot.retry);
    await Promise.all(this.#slots.map((s) => s.client.close()));
  }
}

function positiveOption(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `${name} must be a positive number, got ${value}`,
    );
  }
  return value;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
