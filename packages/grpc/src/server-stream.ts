/**
 * One open ProcessStream of the gRPC agent server: handshake, events run through
 * the handler concurrently (bounded, HTTP/2 flow control beyond), cancels, pings,
 * config answers, and the ways a stream ends.
 */
import { Metadata, type ServerDuplexStream, status } from '@grpc/grpc-js';
import {
  type AgentResponse,
  type ConfigUpdateResponse,
  cancelReasonFromGrpc,
} from '@picket/protocol';
import {
  IdTable,
  isThenable,
  LazyAbort,
  notifyCancel,
  requestContext,
  runHook,
} from '@picket/protocol/internal';
import { configResponseFromProto, handshakeRequestFromProto } from './convert.js';
import type { Logger } from './logger.js';
import {
  encodeAgentToProxy,
  type IAgentToProxy,
  num,
  PICKET_GRPC_REVISION,
  PICKET_METADATA_KEY,
  type ProxyToAgentMsg,
  UndecodableMessage,
} from './proto.js';
import type { ServerAnswers } from './server-answers.js';
import { type DecodedEvent, decodeEvent, type StreamMessage } from './server-events.js';

/** What a ProcessStream needs of its server. */
export interface StreamHost {
  readonly answers: ServerAnswers;
  readonly log: Logger;
  /** events handled at once per stream */
  readonly maxConcurrent: number;
  readonly handshakeTimeoutMs: number;
  /** the proxy completed its handshake: tell it the current health and pause */
  handshaken(s: ProcessStream): void;
  /** a picket proxy answered a config update */
  configResponse(r: ConfigUpdateResponse): void;
  /** the stream ended (for whatever reason) */
  ended(s: ProcessStream): void;
}

let streamCounter = 0;

/** A pong answering `msg`'s ping (sent even before the handshake, as Rust agents do). */
export function pong(msg: ProxyToAgentMsg): IAgentToProxy {
  return {
    pong: {
      sequence: num(msg.ping?.sequence) || undefined,
      ping_timestamp_ms: num(msg.ping?.timestamp_ms) || undefined,
      timestamp_ms: Date.now(),
    },
  };
}

/** The next connection number: ProcessStreams and unary calls share one sequence of ids. */
export function nextConnectionNumber(): number {
  return ++streamCounter;
}

/** One open ProcessStream: its state and everything that happens on it. */
export class ProcessStream {
  readonly id = `grpc-${nextConnectionNumber()}`;
  handshaken = false;
  /** ends the stream if the handshake does not complete in time; cleared once it has */
  handshakeTimer: NodeJS.Timeout | undefined;
  proxyId: string | undefined;
  closed = false;
  active = 0;
  readonly queue: DecodedEvent[] = [];
  /**
   * Async handlers running, by correlation id. An IdTable, not a Map: a Map under
   * per-event churn keeps young garbage alive (see @picket/protocol/internal).
   */
  readonly inflight = new IdTable<Set<LazyAbort>>();
  /** the proxy is picket (it answers config updates) */
  readonly picketPeer: boolean;
  readonly #idleWaiters: (() => void)[] = [];
  readonly #host: StreamHost;
  #ended = false;

  constructor(
    readonly call: ServerDuplexStream<ProxyToAgentMsg, Buffer>,
    host: StreamHost,
  ) {
    this.#host = host;
    this.picketPeer = call.metadata.get(PICKET_METADATA_KEY).length > 0;
  }

  /** Response headers at once (a Rust proxy waits for them), then reads. */
  static sendHeaders(call: ServerDuplexStream<ProxyToAgentMsg, Buffer>): void {
    const md = new Metadata();
    md.set(PICKET_METADATA_KEY, PICKET_GRPC_REVISION);
    call.sendMetadata(md);
  }

  start(): void {
    const { call } = this;
    this.#host.log.debug('ProcessStream opened', { connectionId: this.id, peer: call.getPeer() });
    this.handshakeTimer = setTimeout(
      () => this.#handshakeTimedOut(),
      this.#host.handshakeTimeoutMs,
    );
    call.on('data', (msg: StreamMessage | UndecodableMessage) => {
      if (msg instanceof UndecodableMessage) this.#rejectUndecodable(msg);
      else this.#onMessage(msg);
    });
    call.on('end', () => {
      // the proxy half-closed: finish what is in flight, then end our side
      void this.idle().then(() => {
        if (!this.closed) call.end();
        this.#done('proxy ended the stream');
      });
    });
    call.on('cancelled', () => this.#done('stream cancelled'));
    call.on('error', (err: Error) => this.#done(`stream error: ${err.message}`));
  }

  #done(why: string): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.handshakeTimer);
    this.closed = true;
    this.abortAll(why);
    this.#host.ended(this);
    this.#host.log.debug('ProcessStream closed', { connectionId: this.id, why });
  }

  write(m: IAgentToProxy): void {
    if (this.closed) return;
    try {
      this.call.write(encodeAgentToProxy(m));
    } catch {
      // the stream is going away; its 'cancelled'/'error' handler cleans up
    }
  }

  /** Resolves once no event is being handled or waiting. */
  idle(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
    });
  }

  #checkIdle(): void {
    if (this.active === 0 && this.queue.length === 0) {
      for (const wake of this.#idleWaiters.splice(0)) wake();
    }
  }

  abortAll(reason: string): void {
    for (const set of this.inflight.values()) for (const c of set) c.abort(reason);
  }

  /** Ends the stream from the server side (close, shutdown). */
  end(reason: string): void {
    clearTimeout(this.handshakeTimer);
    this.abortAll(reason);
    this.closed = true;
    this.call.end();
  }

  /**
   * Ends the stream with `code`, logged: marked closed first, so no answer of a handler
   * still running is written after the status (which would keep grpc-js from ever sending it).
   */
  fail(code: status, what: string, fields: Record<string, unknown>, details: string): void {
    if (this.closed) return;
    clearTimeout(this.handshakeTimer);
    this.#host.log.warn(`closing ProcessStream: ${what}`, { connectionId: this.id, ...fields });
    this.closed = true;
    this.abortAll(what);
    this.call.emit('error', { code, details });
  }

  /** A stream whose handshake has not completed in time (silent peer, slow onHandshake). */
  #handshakeTimedOut(): void {
    this.handshakeTimer = undefined;
    if (this.closed || this.handshaken) return;
    const details = `no handshake completed within ${this.#host.handshakeTimeoutMs} ms (handshakeTimeoutMs)`;
    this.fail(status.DEADLINE_EXCEEDED, details, { peer: this.call.getPeer() }, details);
  }

  /** Bytes that are not a ProxyToAgent end the stream. */
  #rejectUndecodable(msg: UndecodableMessage): void {
    const why = msg.error instanceof Error ? msg.error.message : String(msg.error);
    this.fail(
      status.INVALID_ARGUMENT,
      'undecodable ProxyToAgent message',
      { bytes: msg.size, error: why },
      `undecodable ProxyToAgent message (${msg.size} bytes): ${why}`,
    );
  }

  #onMessage(msg: StreamMessage): void {
    if (this.closed) return;
    switch (msg.message) {
      case 'handshake':
        void this.#onHandshake(msg);
        return;
      case 'ping':
        this.write(pong(msg));
        return;
      case 'cancel': {
        const cid = msg.cancel?.correlation_id ?? '';
        const reason = cancelReasonFromGrpc(msg.cancel?.reason ?? 0);
        const set = this.inflight.get(cid);
        if (set) for (const c of set) c.abort(reason);
        // queued events of the cancelled request are dropped as well
        for (let i = this.queue.length - 1; i >= 0; i--)
          if (this.queue[i]?.cid === cid) this.queue.splice(i, 1);
        this.#checkIdle();
        notifyCancel(this.#host.answers.handler, cid, reason, this.#host.log, this.id);
        return;
      }
      case 'config_response': {
        const r = msg.config_response;
        if (r) this.#host.configResponse(configResponseFromProto(r));
        return;
      }
      default: {
        let ev: DecodedEvent | undefined;
        try {
          ev = decodeEvent(msg);
        } catch (err) {
          // decoded, but the event could not be converted (no known input does this)
          const why = err instanceof Error ? err.message : String(err);
          this.fail(
            status.INVALID_ARGUMENT,
            'unusable event',
            { kind: msg.message, error: why },
            `unusable ${String(msg.message)} event: ${why}`,
          );
          return;
        }
        if (!ev) {
          this.#host.log.debug('ignored empty message', { connectionId: this.id });
          return;
        }
        if (!this.handshaken) {
          // as a Rust agent: events before a successful handshake get no reply
          this.#host.log.warn('event before handshake ignored', {
            connectionId: this.id,
            type: ev.type,
          });
          return;
        }
        this.queue.push(ev);
        this.#pump();
      }
    }
  }

  async #onHandshake(msg: ProxyToAgentMsg): Promise<void> {
    const request = handshakeRequestFromProto(msg.handshake ?? {});
    const decision = await this.#host.answers.handshake(request);
    if (this.closed) return; // timed out (or went away) while onHandshake ran
    this.write({ handshake: this.#host.answers.handshakeReply(decision) });
    if (!decision.accept) {
      this.closed = true;
      this.call.end();
      return;
    }
    this.handshaken = true;
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    this.proxyId = request.proxy_id;
    this.#host.handshaken(this);
  }

  /** Starts queued events while below the concurrency limit; pauses reading when full. */
  #pump(): void {
    let answered = false;
    const max = this.#host.maxConcurrent;
    while (this.active < max && this.queue.length > 0) {
      const ev = this.queue.shift() as DecodedEvent;
      this.active++;
      const running = this.#run(ev);
      if (running === undefined) {
        // answered synchronously (a handler that returned its response, not a promise)
        this.active--;
        answered = true;
        continue;
      }
      const done = (): void => {
        this.active--;
        this.#pump();
        this.#checkIdle();
      };
      // `.then` with both outcomes instead of `.finally` (one promise less); a rejection still surfaces
      void running.then(done, (err: unknown) => {
        done();
        throw err;
      });
    }
    // backpressure through HTTP/2 flow control instead of an unbounded queue
    if (this.queue.length >= max) this.call.pause();
    else if (this.call.isPaused()) this.call.resume();
    if (answered) this.#checkIdle();
  }

  /**
   * Runs one event. A handler that returns its response directly is answered at once
   * (no promise, no bookkeeping: no cancel can arrive while it runs) and this returns
   * undefined; one that returns a promise is registered for cancellation and awaited.
   */
  #run(ev: DecodedEvent): Promise<void> | undefined {
    const abort = new LazyAbort();
    const ctx = requestContext(abort, ev.cid, 'grpc', this.id, this.proxyId);
    const started = performance.now();
    const result = runHook(
      this.#host.answers.handler,
      ev.type,
      ev.event,
      ctx,
      this.#host.answers.tracing,
    );
    if (isThenable(result)) return this.#await(ev, abort, result, started);
    this.#reply(ev, this.#host.answers.checked(result, ev, this.id), started);
    return undefined;
  }

  /** The rest of {@link #run} for a handler that returned a promise. */
  async #await(
    ev: DecodedEvent,
    abort: LazyAbort,
    pending: PromiseLike<unknown>,
    started: number,
  ): Promise<void> {
    let set = this.inflight.get(ev.cid);
    if (!set) {
      set = new Set();
      this.inflight.set(ev.cid, set);
    }
    set.add(abort);
    let response: AgentResponse | undefined;
    try {
      response = this.#host.answers.checked(await pending, ev, this.id);
    } catch (err) {
      response = this.#host.answers.failed(err, ev, this.id);
    }
    set.delete(abort);
    if (set.size === 0) this.inflight.delete(ev.cid);
    if (abort.aborted) return; // cancelled by the proxy: no reply
    this.#reply(ev, response, started);
  }

  /** Writes the answer; none (errorPolicy 'close') ends the stream with INTERNAL. */
  #reply(ev: DecodedEvent, response: AgentResponse | undefined, started: number): void {
    const bytes =
      response === undefined
        ? undefined
        : this.#host.answers.encode(response, ev, this.id, performance.now() - started);
    if (bytes === undefined) {
      this.fail(
        status.INTERNAL,
        'handler failed (errorPolicy "close")',
        { correlationId: ev.cid },
        `agent handler failed on ${ev.type} ${ev.cid}`,
      );
      return;
    }
    if (!this.closed) {
      try {
        this.call.write(bytes);
      } catch {
        // stream going away
      }
    }
  }
}
