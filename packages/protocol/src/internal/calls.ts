/**
 * The proxy-side call engine every picket transport uses (UDS, reverse, gRPC, v1).
 *
 * A transport supplies a {@link CallWire}: "write this event" and "write a cancel". It reports
 * what comes back with {@link CallEngine.resolve} / {@link CallEngine.fail} and the end of the
 * connection with {@link CallEngine.close}. The engine owns everything between: the table of
 * pending calls keyed by correlation id, deadlines (one shared timer per engine, armed for the
 * earliest deadline), AbortSignal wiring, cancel / cancelAll, failing every call when the
 * connection ends, and the paused state (a paused engine refuses a call at once with
 * FLOW_CONTROL_PAUSED; what to do about that is the pool's decision).
 *
 * Per call it costs one promise (with its executor), one {@link Call} object, and, only when the
 * call has a signal, one listener registration (the call itself is the listener: no closure).
 * No timer per call: the shared one is re-armed only for a deadline earlier than its own.
 * A caller with its own promise (the pool) uses {@link CallEngine.callInto} and a
 * {@link CallSink} instead, so one call through the pool costs one promise, not two.
 */
import { CANCEL_REASONS } from '../enums.js';
import { AgentProtocolError, ErrorCode } from '../errors.js';
import type { CallOptions } from '../roles.js';
import type { AgentEvent, AgentResponse, CancelReason, EventType } from '../types.js';
import { IdTable } from './id-table.js';
import { withSent } from './sent.js';

/** What a transport supplies to the engine. */
export interface CallWire<X = undefined> {
  /**
   * Writes the event of a call the engine has just registered (its deadline and signal are
   * armed). Throwing fails the call: an AgentProtocolError as is, anything else as INTERNAL.
   */
  write(call: Call<X>, event: AgentEvent): void;
  /**
   * Tells the agent to stop working on a call. `call` is the call just settled by a timeout,
   * an abort or cancel(); it is undefined when cancel() named an id with no pending call
   * (a v2 wire still sends the cancel: the agent may know the id). Must not throw.
   */
  writeCancel(correlationId: string, reason: CancelReason, call: Call<X> | undefined): void;
  /** The error a call that ran out of time gets; default "<name> did not answer <type> <id> within <ms> ms". */
  timeoutError?(call: Call<X>): AgentProtocolError;
}

/**
 * Receives the outcome of a call made with {@link CallEngine.callInto}: exactly one of the two
 * methods is called once, possibly before `callInto` returns (a refusal). Must not throw.
 */
export interface CallSink {
  answered(response: AgentResponse): void;
  /** `error.sent` says whether the event may have reached the agent */
  failed(error: AgentProtocolError): void;
}

/** A call handed over with {@link sendInto}: what to send, and where its outcome goes. */
export interface SinkCall extends CallSink {
  readonly type: EventType;
  readonly event: AgentEvent;
  /** `eventCorrelationId(event)`, already read by the caller */
  readonly correlationId: string;
  /** undefined: the engine's default */
  readonly timeoutMs: number | undefined;
  readonly signal: AbortSignal | undefined;
}

/**
 * The method a transport built on a {@link CallEngine} offers next to `send`: the call's
 * outcome goes to the call itself instead of a promise. `now` is the caller's
 * `performance.now()` reading as it hands the call over (saves a read). A symbol, so it
 * stays out of the transports' public surface.
 */
export const sendInto: unique symbol = Symbol('picket.sendInto');

/** A transport that offers {@link sendInto}. */
export interface SinkSender {
  [sendInto](call: SinkCall, now: number): void;
}

/** Whether `t` offers {@link sendInto}. */
export function isSinkSender(t: object): t is SinkSender {
  return typeof (t as Partial<SinkSender>)[sendInto] === 'function';
}

/** Settings of a {@link CallEngine}. */
export interface CallEngineOptions<X = undefined> {
  /** names the transport in error messages, e.g. `agent waf` */
  name: string;
  /** default per-call timeout in ms; `Infinity` means none; below 1 counts as 1 (setTimeout's rule) */
  timeoutMs: number;
  wire: CallWire<X>;
  /** event types refused while paused (default: every type) */
  pausable?: ReadonlySet<EventType>;
  /** monotonic clock in ms (default `performance.now`); tests pass a fake one */
  now?: () => number;
}

/** Node's setTimeout turns a delay past 2^31-1 ms into 1 ms; the timer is re-armed instead. */
const MAX_TIMER_DELAY = 2_147_483_647;
const NO_OPTIONS: CallOptions = Object.freeze({});

/** The cancel reason an aborted signal carries, or `client_disconnect`. */
export function abortReason(signal: AbortSignal | undefined): CancelReason {
  const r: unknown = signal?.reason;
  return typeof r === 'string' && (CANCEL_REASONS as readonly string[]).includes(r)
    ? (r as CancelReason)
    : 'client_disconnect';
}

/**
 * One pending call. A class, not closures, because there is one per call; it is its own
 * abort listener (`handleEvent`).
 */
export class Call<X = undefined> {
  /** the transport's own state for this call (e.g. which connection carries it) */
  data: X | undefined = undefined;
  /** @internal settled (answered, failed, timed out or cancelled): it left the pending table */
  done = false;
  /** @internal the engine's count of calls when this one was made (their order) */
  seq = 0;

  constructor(
    private readonly engine: CallEngine<X>,
    readonly type: EventType,
    readonly correlationId: string,
    /** clock value after which the call times out (`Infinity`: never) */
    readonly deadline: number,
    readonly timeoutMs: number,
    readonly signal: AbortSignal | undefined,
    /** where the outcome goes: a caller's sink, or the call's own promise */
    /** @internal */ readonly sink: CallSink | undefined,
    /** @internal */ readonly settleOk: ((r: AgentResponse) => void) | undefined,
    /** @internal */ readonly settleErr: ((e: AgentProtocolError) => void) | undefined,
  ) {}

  /** The call's signal aborted. */
  handleEvent(): void {
    this.engine.abort(this);
  }
}

/** Pending calls of one connection: correlation, deadlines, signals, cancel, fail-all, paused. */
export class CallEngine<X = undefined> {
  readonly name: string;
  /** default per-call timeout in ms */
  readonly timeoutMs: number;
  /** calls that ran out of time, and calls cancelled (cancel, cancelAll, signal) */
  readonly counts = { timeouts: 0, cancelled: 0 };

  readonly #wire: CallWire<X>;
  readonly #pausable: ReadonlySet<EventType> | undefined;
  readonly #now: () => number;
  /** #now is performance.now (not a clock the creator passed) */
  readonly #performanceClock: boolean;
  readonly #pending = new IdTable<Call<X>>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #paused = false;
  /** calls made so far (orders the pending ones) */
  #made = 0;
  #closed: AgentProtocolError | undefined;

  constructor(options: CallEngineOptions<X>) {
    this.name = options.name;
    this.timeoutMs = options.timeoutMs;
    this.#wire = options.wire;
    this.#pausable = options.pausable;
    this.#now = options.now ?? performance.now.bind(performance);
    this.#performanceClock = options.now === undefined;
  }

  /** Calls registered and not yet settled. */
  get size(): number {
    return this.#pending.size;
  }

  /** True while the agent has paused traffic. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Records a pause or resume; returns whether the state changed. */
  setPaused(paused: boolean): boolean {
    if (this.#paused === paused) return false;
    this.#paused = paused;
    return true;
  }

  /** Why the engine was closed, once it was. */
  get closedBy(): AgentProtocolError | undefined {
    return this.#closed;
  }

  get(correlationId: string): Call<X> | undefined {
    return this.#pending.get(correlationId);
  }

  /** The pending calls (a snapshot, in the order they were made). */
  calls(): IterableIterator<Call<X>> {
    return this.#inOrder()[Symbol.iterator]();
  }

  #inOrder(): Call<X>[] {
    return this.#pending.values().sort((a, b) => a.seq - b.seq);
  }

  /**
   * Registers a call and writes it. Rejects at once (nothing written) when the engine is
   * closed (CONNECTION_CLOSED), the signal already aborted (CANCELLED), the agent paused
   * traffic (FLOW_CONTROL_PAUSED) or the correlation id is in flight (INVALID_ARGUMENT).
   */
  call(
    type: EventType,
    event: AgentEvent,
    correlationId: string,
    options: CallOptions = NO_OPTIONS,
  ): Promise<AgentResponse> {
    const refused = this.#refusal(type, correlationId, options.signal);
    if (refused !== undefined) return Promise.reject(refused);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const deadline = this.#deadline(timeoutMs);
    let call!: Call<X>;
    const promise = new Promise<AgentResponse>((resolve, reject) => {
      call = new Call(
        this,
        type,
        correlationId,
        deadline,
        timeoutMs,
        options.signal,
        undefined,
        resolve,
        reject,
      );
    });
    this.#start(call, event);
    return promise;
  }

  /**
   * {@link call} without a promise: the outcome goes to `call` itself (a refusal before this
   * returns). `now` is a `performance.now()` reading the deadline counts from when the engine
   * runs on that clock.
   */
  callInto(call: SinkCall, now?: number): void {
    const { type, correlationId, signal } = call;
    const refused = this.#refusal(type, correlationId, signal);
    if (refused !== undefined) {
      call.failed(refused);
      return;
    }
    const ms = call.timeoutMs ?? this.timeoutMs;
    const from = now !== undefined && this.#performanceClock ? now : undefined;
    this.#start(
      new Call(
        this,
        type,
        correlationId,
        this.#deadline(ms, from),
        ms,
        signal,
        call,
        undefined,
        undefined,
      ),
      call.event,
    );
  }

  #deadline(timeoutMs: number, now = this.#now()): number {
    return timeoutMs === Number.POSITIVE_INFINITY ? timeoutMs : now + (Math.max(timeoutMs, 1) || 1); // NaN counts as 1 too
  }

  /** Registers a call, arms its deadline and signal, and has the wire write it. */
  #start(call: Call<X>, event: AgentEvent): void {
    if (!this.#pending.add(call.correlationId, call)) {
      call.done = true;
      this.#deliver(
        call,
        new AgentProtocolError(
          ErrorCode.InvalidArgument,
          `${this.name}: correlation id ${JSON.stringify(call.correlationId)} is already in flight`,
          { sent: false },
        ),
      );
      return;
    }
    call.seq = ++this.#made;
    const { deadline } = call;
    if (deadline < this.#timerAt) this.#arm(deadline, this.#now());
    call.signal?.addEventListener('abort', call, { once: true });
    try {
      this.#wire.write(call, event);
    } catch (err) {
      // a write that throws wrote nothing (unless the transport says otherwise)
      const e = AgentProtocolError.from(
        err,
        ErrorCode.Internal,
        `${this.name}: ${call.type} ${call.correlationId}`,
      );
      this.#settle(call, withSent(e, false));
    }
  }

  /** A reply arrived for `correlationId`; false when no call is pending for it (late, unknown). */
  resolve(correlationId: string, response: AgentResponse): boolean {
    const call = this.#pending.take(correlationId);
    if (call === undefined) return false;
    this.#finish(call, response);
    return true;
  }

  /** Fails the pending call for `correlationId`; false when there is none. */
  fail(correlationId: string, error: AgentProtocolError): boolean {
    const call = this.#pending.take(correlationId);
    if (call === undefined) return false;
    this.#finish(call, error);
    return true;
  }

  /**
   * Settles this very call (not a later one that reused its correlation id); false when it
   * was settled already. For transports whose answers belong to a call, not to an id (v1).
   */
  settle(call: Call<X>, outcome: AgentResponse | AgentProtocolError): boolean {
    if (call.done) return false;
    this.#settle(call, outcome);
    return true;
  }

  /** Rejects the call with CANCELLED (if pending) and has the wire tell the agent. No-op once closed. */
  cancel(correlationId: string, reason: CancelReason): void {
    if (this.#closed !== undefined) return;
    const call = this.#pending.get(correlationId);
    if (call !== undefined) {
      this.counts.cancelled++;
      this.#settle(
        call,
        new AgentProtocolError(
          ErrorCode.Cancelled,
          `${this.name}: ${correlationId} cancelled (${reason})`,
        ),
      );
    }
    this.#wire.writeCancel(correlationId, reason, call);
  }

  /** Cancels every pending call; returns how many there were. */
  cancelAll(reason: CancelReason): number {
    const ids = this.#inOrder().map((call) => call.correlationId);
    for (const id of ids) this.cancel(id, reason);
    return ids.length;
  }

  /** The connection ended: every pending call and every later one fails with `error`. Idempotent. */
  close(error: AgentProtocolError): void {
    if (this.#closed !== undefined) return;
    this.#closed = error;
    this.#disarm();
    // every pending call was handed to the wire: it may have reached the agent
    if (this.#pending.size > 0) withSent(error, true);
    for (const call of this.#inOrder()) this.#settle(call, error);
  }

  /** @internal The call's signal aborted (see {@link Call.handleEvent}). */
  abort(call: Call<X>): void {
    if (call.done) return;
    this.counts.cancelled++;
    this.#settle(
      call,
      new AgentProtocolError(
        ErrorCode.Cancelled,
        `${this.name}: ${call.type} ${call.correlationId} aborted by the caller`,
        { cause: call.signal?.reason },
      ),
    );
    this.#wire.writeCancel(call.correlationId, abortReason(call.signal), call);
  }

  #refusal(
    type: EventType,
    cid: string,
    signal: AbortSignal | undefined,
  ): AgentProtocolError | undefined {
    const closed = this.#closed;
    if (closed !== undefined) {
      return new AgentProtocolError(
        ErrorCode.ConnectionClosed,
        `${closed.message} (${type} ${cid} not sent)`,
        { cause: closed, sent: false },
      );
    }
    if (signal?.aborted === true) {
      return new AgentProtocolError(
        ErrorCode.Cancelled,
        `${this.name}: ${type} ${cid} aborted before it was sent`,
        { cause: signal.reason, sent: false },
      );
    }
    if (this.#paused && (this.#pausable === undefined || this.#pausable.has(type))) {
      return new AgentProtocolError(
        ErrorCode.FlowControlPaused,
        `${this.name}: the agent paused traffic; ${type} ${cid} not sent`,
        { sent: false },
      );
    }
    return undefined; // an id already in flight is refused by #start
  }

  /** Ends a pending call: out of the table, then its outcome delivered. */
  #settle(call: Call<X>, outcome: AgentResponse | AgentProtocolError): void {
    if (call.done) return;
    this.#pending.delete(call.correlationId); // a pending call is the table's entry for its id
    this.#finish(call, outcome);
  }

  /** Ends a call already taken out of the table. */
  #finish(call: Call<X>, outcome: AgentResponse | AgentProtocolError): void {
    call.done = true;
    call.signal?.removeEventListener('abort', call);
    this.#deliver(call, outcome);
  }

  #deliver(call: Call<X>, outcome: AgentResponse | AgentProtocolError): void {
    const sink = call.sink;
    if (sink === undefined) {
      if (outcome instanceof AgentProtocolError) call.settleErr?.(outcome);
      else call.settleOk?.(outcome);
      return;
    }
    try {
      if (outcome instanceof AgentProtocolError) sink.failed(outcome);
      else sink.answered(outcome);
    } catch (err) {
      // a sink must not throw; if one does, it surfaces as an uncaught error (as a throwing
      // promise reaction would) instead of breaking the transport's read loop
      process.nextTick(() => {
        throw err;
      });
    }
  }

  /** Arms the shared timer for `deadline` (the caller checked it is earlier than the armed one). */
  #arm(deadline: number, now: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    // whole ms, rounded up: timers truncate fractions and would fire early
    let delay = Math.max(1, Math.ceil(deadline - now));
    this.#timerAt = deadline;
    if (delay > MAX_TIMER_DELAY) {
      delay = MAX_TIMER_DELAY;
      this.#timerAt = now + delay;
    }
    // Left armed when the last call settles (disarming and re-arming would cost a timer per
    // call at low concurrency); it then fires once, finds nothing, and is not re-armed.
    // Unref'd: pending calls have a socket that keeps the process alive.
    this.#timer = setTimeout(this.#onTimer, delay);
    this.#timer.unref();
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  /**
   * The timer armed for the earliest deadline fired: every call due by then (1 ms of slack
   * groups near-equal deadlines) times out, as its own setTimeout would have. The firing is
   * the clock here (not a fresh reading, which may lag under fake timers).
   */
  readonly #onTimer = (): void => {
    const dueBy = this.#timerAt + 1;
    const now = Math.max(this.#now(), this.#timerAt);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    let next = Number.POSITIVE_INFINITY;
    const due: Call<X>[] = [];
    for (const call of this.#pending.values()) {
      if (call.deadline <= dueBy) due.push(call);
      else if (call.deadline < next) next = call.deadline;
    }
    due.sort((a, b) => a.seq - b.seq); // calls due together time out in the order they were made
    for (const call of due) {
      if (call.done) continue; // settled by an earlier one's cancel
      this.counts.timeouts++;
      this.#settle(
        call,
        this.#wire.timeoutError?.(call) ??
          new AgentProtocolError(
            ErrorCode.Timeout,
            `${this.name} did not answer ${call.type} ${call.correlationId} within ${call.timeoutMs} ms`,
          ),
      );
      this.#wire.writeCancel(call.correlationId, 'timeout', call);
    }
    if (next < this.#timerAt) this.#arm(next, now);
  };
}
