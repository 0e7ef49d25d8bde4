/**
 * The call path: admission (circuit breaker), connection choice, the
 * transport call with the remaining deadline, one retry elsewhere when that is
 * safe, and the failure mode. One call is one {@link PoolCall} record and one
 * promise: picket's own transports deliver the answer to the record itself
 * (`sendInto`), other transports through their promise. The guard against a
 * transport that ignores its timeout, and against a wait for a connection that
 * never ends, is an entry in a shared deadline timer, not a timer per call.
 */
// imported: Node's global `performance` is an accessor, one more call on every read of the clock
import { performance } from 'node:perf_hooks';
import {
  type AgentEvent,
  AgentProtocolError,
  type AgentResponse,
  type CallOptions,
  ErrorCode,
  type EventMap,
  type EventType,
  eventCorrelationId,
} from '@picket/protocol';
import { batchNow, type OtelSpan, type SinkCall, sendInto } from '@picket/protocol/internal';
import type { AgentState, Conn, EventMetrics, PoolContext } from './agent-state.js';
import type { BreakerOutcome, CircuitBreaker } from './breaker.js';
import { type Deadline, DeadlineTimer } from './deadlines.js';
import {
  classify,
  type Failure,
  FailureReason,
  failureResponse,
  markUnsent,
  mayRetry,
  neverSent,
  poolError,
} from './failure.js';
import type { FailureMode, PoolCallOptions } from './options.js';
import { FailOpenGate, type FlowState, type Selector } from './selection.js';
import type { PoolTracing } from './tracing.js';

/** Extra time past the deadline before the pool stops waiting for a transport that ignores its timeout. */
const GUARD_GRACE_MS = 50;
/** The excluded set of a call's first attempt (no connection excluded yet; never written to). */
const NO_CONNS: Set<Conn> = new Set();
const NO_OPTIONS: PoolCallOptions = {};

/**
 * One call through the pool, from admission to its answer. It is also what its attempts
 * hand to transports that offer `sendInto`, and where their outcome comes back (no promise
 * per attempt).
 */
class PoolCall implements Deadline, FlowState, SinkCall {
  resolve!: (r: AgentResponse) => void;
  reject!: (e: unknown) => void;
  /** the connection of the attempt running now */
  conn: Conn | undefined;
  /** retries used (at most one) */
  retries = 0;
  excluded: Set<Conn> = NO_CONNS;
  /** why the previous attempt failed, reported when the retry finds nowhere to go */
  previous: AgentProtocolError | undefined;
  /** the breaker that admitted the call and its ticket (-1: none to end) */
  breaker: CircuitBreaker | null = null;
  ticket = -1;
  admitted = false;
  settled = false;
  pausedSince: number | undefined = undefined;
  refused = false;
  /** connections that refused as paused without reporting `paused` */
  flowExcluded: Conn[] | undefined = undefined;
  prevDeadline: Deadline | undefined = undefined;
  nextDeadline: Deadline | undefined = undefined;
  /** the call's span when the pool traces */
  span: OtelSpan | undefined = undefined;
  /** the time left for the attempt running now (set as it is sent) */
  timeoutMs: number | undefined = undefined;

  constructor(
    readonly dispatcher: Dispatcher,
    readonly agent: AgentState,
    readonly type: EventType,
    readonly event: AgentEvent,
    readonly cid: string,
    readonly options: PoolCallOptions,
    readonly started: number,
    /** the call's time budget in ms (its deadline is derived: one stored time instead of three) */
    readonly budgetMs: number,
    readonly m: EventMetrics,
  ) {}

  /** when the call's time is up, on the performance.now() clock */
  get deadline(): number {
    return this.started + this.budgetMs;
  }

  /** when the guard gives up on a transport that ignores the deadline */
  get dueAt(): number {
    return this.started + this.budgetMs + GUARD_GRACE_MS;
  }

  get correlationId(): string {
    return this.cid;
  }

  get signal(): AbortSignal | undefined {
    return this.options.signal;
  }

  expire(): void {
    this.dispatcher.guardExpired(this);
  }

  resumed(): void {
    this.refused = false;
    for (const conn of this.flowExcluded ?? []) this.excluded.delete(conn);
    this.flowExcluded = undefined;
  }

  exclude(conn: Conn): void {
    if (this.excluded === NO_CONNS) this.excluded = new Set();
    this.excluded.add(conn);
  }

  answered(response: AgentResponse): void {
    // no attempt running: the guard gave up on it already
    if (this.conn !== undefined) this.dispatcher.answered(this, this.conn, response);
  }

  failed(error: AgentProtocolError): void {
    // a refusal carries `sent: false`, so "registered" is not needed to judge a retry
    if (this.conn !== undefined) this.dispatcher.failedAttempt(this, this.conn, error, true);
  }

  /** Ends the breaker's admission (the call settles once, so this runs once). */
  leaveBreaker(outcome: BreakerOutcome): void {
    if (this.ticket >= 0) (this.breaker as CircuitBreaker).leave(this.ticket, outcome);
  }
}

/** The call whose promise is being made: the executor below is one function, not a closure per call. */
let making: PoolCall | undefined;
function bindSettlers(resolve: (r: AgentResponse) => void, reject: (e: unknown) => void): void {
  (making as PoolCall).resolve = resolve;
  (making as PoolCall).reject = reject;
}
function newCallPromise(c: PoolCall): Promise<AgentResponse> {
  making = c;
  const promise = new Promise<AgentResponse>(bindSettlers);
  making = undefined;
  return promise;
}

export class Dispatcher {
  private readonly guards = new DeadlineTimer();

  constructor(
    private readonly ctx: PoolContext,
    private readonly selector: Selector,
    private readonly tracing: PoolTracing | undefined = undefined,
  ) {}

  /** Sends one event to an agent; resolves to the agent's answer or the failure mode's. */
  call<K extends EventType>(
    agentId: string,
    type: K,
    event: EventMap[K],
    options: PoolCallOptions = NO_OPTIONS,
  ): Promise<AgentResponse> {
    if (this.ctx.closing) {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.Unavailable,
          `agent pool is closed; cannot send ${type} to agent "${agentId}"`,
        ),
      );
    }
    const agent = this.ctx.agents.get(agentId);
    if (!agent) {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.InvalidArgument,
          `unknown agent "${agentId}" (send ${type})`,
        ),
      );
    }
    const cid = event !== null && typeof event === 'object' ? eventCorrelationId(event) : undefined;
    if (typeof cid !== 'string') {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.InvalidArgument,
          `${type} event for agent "${agentId}" has no string correlation_id`,
        ),
      );
    }
    const started = performance.now();
    const m = agent.metricsFor(type);
    m.requests++;
    agent.totalRequests++;
    agent.inFlight++;
    let span: OtelSpan | undefined;
    let sent: unknown = event;
    if (this.tracing !== undefined) {
      span = this.tracing.start(agentId, type, event, cid, options.parentContext);
      sent = this.tracing.stamp(span, type, event);
    }
    const c = new PoolCall(
      this,
      agent,
      type,
      sent as AgentEvent,
      cid,
      options,
      started,
      options.timeoutMs ?? agent.options.requestTimeoutMs,
      m,
    );
    c.span = span;
    const promise = newCallPromise(c);
    try {
      this.admit(c);
    } catch (e) {
      this.fail(c, e); // a bug must not leave the call hanging (the executor used to catch this)
    }
    return promise;
  }

  /** The breaker's admission, then the first attempt. */
  private admit(c: PoolCall): void {
    const { agent } = c;
    const breaker = agent.breaker;
    if (breaker) {
      c.breaker = breaker;
      c.ticket = breaker.enter();
      if (c.ticket < 0) {
        this.fail(
          c,
          poolError(
            ErrorCode.Unavailable,
            FailureReason.CircuitOpen,
            false,
            `circuit breaker of agent "${agent.id}" is ${breaker.state}; ${c.type} not sent`,
          ),
        );
        return;
      }
    }
    c.admitted = true;
    this.attempt(c, c.started);
  }

  /** Finds a connection for the call's next attempt and sends on it. */
  private attempt(c: PoolCall, now = performance.now()): void {
    const { agent } = c;
    // A free slot right away (the usual case) is taken without going through the
    // asynchronous acquire; anything else (queueing, flow-control wait) goes there.
    const free =
      c.options.signal?.aborted || agent.removed
        ? undefined
        : this.selector.take(agent, c.type, c.cid, c.options.sessionId, c.excluded);
    if (typeof free === 'object') {
      this.sendOn(c, free, now); // take() just found it usable: no need to look again
      return;
    }
    this.guards.add(c); // waiting for a connection: the guard bounds the wait
    this.selector.acquire(agent, c.type, c.cid, c.options, c.deadline, c.excluded, c).then(
      (conn) => this.sendAfterWait(c, conn),
      (e) => {
        // the retry found nowhere to go: report the original failure
        const noRoom = e instanceof AgentProtocolError && e.code === ErrorCode.Unavailable;
        this.fail(c, c.previous && noRoom ? c.previous : e);
      },
    );
  }

  /** Sends on a connection the call waited for: the call or the connection may have ended meanwhile. */
  private sendAfterWait(c: PoolCall, conn: Conn, now = performance.now()): void {
    const { agent } = c;
    if (c.settled) {
      this.selector.release(agent, conn); // the guard answered while this call waited
      return;
    }
    const t = conn.transport;
    if (conn.dead || !t.isHealthy()) {
      // went away while this call waited for it
      this.selector.release(agent, conn);
      c.exclude(conn);
      const paused = t.paused;
      c.previous = poolError(
        paused ? ErrorCode.FlowControlPaused : ErrorCode.ConnectionClosed,
        paused ? FailureReason.FlowControlPaused : FailureReason.ConnectionClosed,
        !paused,
        `connection ${conn.id} of agent "${agent.id}" became unusable before ${c.type} was sent`,
      );
      if (c.retries++ === 0) this.attempt(c);
      else this.fail(c, c.previous);
      return;
    }
    this.sendOn(c, conn, now);
  }

  /** Sends the call's attempt on a usable connection whose slot it holds. */
  private sendOn(c: PoolCall, conn: Conn, now: number): void {
    const { agent } = c;
    const t = conn.transport;
    if (c.type === 'request_headers') this.pin(agent, conn, c.cid, c.options.sessionId, now);
    c.conn = conn;
    conn.requests++;
    if (c.span !== undefined) this.tracing?.sending(c.span, t.kind);
    const timeoutMs = Math.max(1, Math.ceil(c.deadline - now));
    const sink = conn.sink;
    if (sink !== undefined) {
      // The outcome comes to c.answered / c.failed, perhaps before this returns. Such a
      // transport runs on a CallEngine, which ends the call by this timeout: no guard needed.
      c.timeoutMs = timeoutMs;
      sink[sendInto](c, now);
      return;
    }
    this.guards.add(c); // a transport the pool does not know: bound the wait for its answer
    const callOptions: CallOptions = { timeoutMs };
    if (c.options.signal) callOptions.signal = c.options.signal;
    // A call the transport refused synchronously never made it into its pending set:
    // it cannot have been written, so a connection error then is safe to retry elsewhere.
    const before = t.inFlight;
    let sending: Promise<AgentResponse>;
    try {
      sending = t.send(c.type, c.event as EventMap[EventType], callOptions);
    } catch (e) {
      sending = Promise.reject(e);
    }
    const registered = t.inFlight > before;
    sending.then(
      (response) => this.answered(c, conn, response),
      (e) => this.failedAttempt(c, conn, e, registered),
    );
  }

  answered(c: PoolCall, conn: Conn, response: AgentResponse): void {
    if (c.conn !== conn) return; // the guard gave up on this attempt already
    c.conn = undefined;
    conn.consecutiveErrors = 0;
    conn.sample(false);
    this.selector.release(c.agent, conn);
    this.finish(c, response);
  }

  failedAttempt(c: PoolCall, conn: Conn, e: unknown, registered: boolean): void {
    if (c.conn !== conn) return;
    c.conn = undefined;
    const { agent } = c;
    const err = AgentProtocolError.from(e, ErrorCode.Internal, `agent "${agent.id}" ${c.type}`);
    if (!registered && err.code === ErrorCode.ConnectionClosed) markUnsent(err);
    this.countError(agent, conn, err);
    this.selector.release(agent, conn);
    if (c.options.signal?.aborted) {
      this.fail(c, err);
    } else if (err.code === ErrorCode.FlowControlPaused) {
      // the agent paused this connection: the pool's flow-control policy decides, in acquire
      c.refused = true;
      c.pausedSince ??= performance.now();
      if (!conn.transport.paused) {
        // it refuses without saying so: skipped until the wait sees a change
        c.exclude(conn);
        c.flowExcluded ??= [];
        c.flowExcluded.push(conn);
      }
      this.attempt(c);
    } else if (c.retries === 0 && mayRetry(err, c.type) && performance.now() < c.deadline) {
      c.retries++;
      c.previous = err;
      c.exclude(conn);
      this.attempt(c);
    } else {
      this.fail(c, err);
    }
  }

  private countError(agent: AgentState, conn: Conn, err: AgentProtocolError): void {
    if (!classify(err).counts || neverSent(err)) return;
    conn.errors++;
    conn.consecutiveErrors++;
    conn.sample(true);
    if (conn.consecutiveErrors === agent.options.maxConsecutiveErrors) {
      this.selector.changed(agent);
    }
  }

  /** The transport did not answer within the deadline plus grace: no call may hang. */
  guardExpired(c: PoolCall): void {
    if (c.settled) return;
    const conn = c.conn;
    let err: AgentProtocolError;
    if (conn) {
      c.conn = undefined;
      conn.transport.cancel(c.cid, 'timeout').catch(() => {});
      err = new AgentProtocolError(
        ErrorCode.Timeout,
        `agent "${c.agent.id}" did not answer ${c.type} ${c.cid} within its deadline (connection ${conn.id})`,
      );
      this.countError(c.agent, conn, err);
      this.selector.release(c.agent, conn);
    } else {
      err = poolError(
        ErrorCode.Timeout,
        FailureReason.Timeout,
        true,
        `agent "${c.agent.id}": ${c.type} ${c.cid} got no connection before its deadline`,
      );
    }
    this.fail(c, err);
  }

  /** Ends a call with the agent's answer. */
  private finish(c: PoolCall, response: AgentResponse): void {
    if (this.settle(c)) {
      c.leaveBreaker('success');
      if (c.span !== undefined) this.tracing?.answered(c.span, response);
      c.resolve(response);
    }
  }

  /** Ends a call that got no answer: the failure mode decides what it returns. */
  private fail(c: PoolCall, e: unknown): void {
    if (!this.settle(c)) return;
    const { agent } = c;
    if (e instanceof FailOpenGate) {
      c.leaveBreaker('release');
      const answer = this.failed(agent, c.type, classify(e.error), 'open');
      if (c.span !== undefined) this.tracing?.failed(c.span, e.error, 'open', answer);
      c.resolve(answer);
      return;
    }
    const err = AgentProtocolError.from(e, ErrorCode.Internal, `agent "${agent.id}"`);
    if (err.code === ErrorCode.InvalidArgument) {
      c.leaveBreaker('release');
      if (c.span !== undefined) this.tracing?.failed(c.span, err, undefined, undefined);
      c.reject(err); // the caller's mistake (e.g. a correlation id already in flight), never an answer
      return;
    }
    const failure = classify(err);
    c.leaveBreaker(failure.counts ? 'failure' : 'release');
    const mode = agent.options.failureMode;
    try {
      const answer = this.failed(agent, c.type, failure, mode);
      if (c.span !== undefined)
        this.tracing?.failed(c.span, err, mode === 'throw' ? undefined : mode, answer);
      c.resolve(answer);
    } catch (thrown) {
      if (c.span !== undefined) this.tracing?.failed(c.span, thrown, undefined, undefined);
      c.reject(thrown);
    }
  }

  /** Books the end of a call once; false when it had ended already. */
  private settle(c: PoolCall): boolean {
    if (c.settled) return false;
    c.settled = true;
    const { agent } = c;
    if (c.admitted) {
      this.guards.delete(c);
      // answers of one socket read share a reading; one that started in that batch counts 0
      const seconds = Math.max(0, batchNow() - c.started) / 1000;
      c.m.latency.observe(seconds);
      agent.latency.add(seconds * 1000);
    }
    if (c.type === 'request_complete') this.ctx.affinity.delete(agent.id, c.cid);
    agent.inFlight--;
    if (agent.inFlight === 0 && agent.drainWaiters.length > 0) {
      for (const d of agent.drainWaiters.splice(0)) d();
    }
    return true;
  }

  /** Counts a failure and answers with the failure mode (`throw` rethrows). */
  private failed(
    agent: AgentState,
    type: EventType,
    failure: Failure,
    mode: FailureMode,
  ): AgentResponse {
    const m = agent.metricsFor(type);
    m.errors.set(failure.reason, (m.errors.get(failure.reason) ?? 0) + 1);
    agent.totalErrors++;
    if (failure.reason === FailureReason.Timeout) {
      m.timeouts++;
      agent.totalTimeouts++;
    }
    if (mode === 'throw') throw failure.error;
    const key = `${mode}\u0000${failure.reason}`;
    agent.failureResponses.set(key, (agent.failureResponses.get(key) ?? 0) + 1);
    return failureResponse(mode, agent.id, type, failure);
  }

  private pin(
    agent: AgentState,
    conn: Conn,
    cid: string,
    sessionId: string | undefined,
    now: number,
  ): void {
    this.ctx.affinity.set(agent.id, cid, conn.id, now);
    if (sessionId !== undefined) this.ctx.sessions.get(agent.id)?.set(sessionId, conn.id);
  }
}
