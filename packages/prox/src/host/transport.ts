/**
 * A prox plugin as a picket `AgentTransport`: the pool, the gateway and the CLI call it like
 * any agent. Events become hook calls on the plugin's socket (see the README's mapping
 * table); an event whose hook the plugin did not declare in `ready` is answered allow
 * without a call (the plugin opted out). Pending calls, deadlines, abort signals and cancel
 * are the protocol's CallEngine.
 */
import { EventEmitter } from 'node:events';
import {
  type AgentCapabilities,
  type AgentEvent,
  AgentProtocolError,
  type AgentResponse,
  type AgentTransport,
  allow,
  block,
  type CallOptions,
  type CancelReason,
  createCapabilities,
  ErrorCode,
  type EventMap,
  type EventType,
  escapeForLog,
  type Logger,
  needsMore,
  type RequestBodyChunkEvent,
  type RequestCompleteEvent,
  type RequestHeadersEvent,
  type ResponseHeadersEvent,
  silentLogger,
  type TransportEventMap,
  websocketAllow,
} from '@picket/protocol';
import { AgentTransportBase, type Call, CallEngine } from '@picket/protocol/internal';
import type { HookName, RequestInfoInput } from '../wire/types.js';
import { parseProxExec } from './endpoint.js';
import {
  type ProxLogPush,
  ProxPluginHost,
  type ProxPluginHostOptions,
  type ProxReadyInfo,
  type ProxSpeedPush,
  type ProxTargetsPush,
} from './host.js';
import { externalDeadline, type InternalCallOptions } from './internal.js';
import {
  authorizeResponse,
  disconnectInfo,
  MAX_CAPTURED_BODY,
  requestInfo,
  responseModResponse,
  responsePair,
} from './mapping.js';

/** The standard transport events plus the plugin's own. */
export interface ProxTransportEventMap extends TransportEventMap {
  /** the plugin sent `ready` (at start and after every restart or configure) */
  ready: [info: ProxReadyInfo];
  /** a `set_targets` push */
  targets: [push: ProxTargetsPush];
  /** a `set_speed` push */
  speed: [push: ProxSpeedPush];
  /** a `log` push (also written to the logger, escaped) */
  pluginLog: [push: ProxLogPush];
}

/** Settings of a {@link ProxPluginTransport} beyond its host's. */
export interface ProxTransportOptions {
  /** default per-call deadline in ms (default: the host's call timeout, 5 000) */
  timeoutMs?: number;
  /**
   * `'headers'` (default): `on_request` is called at the request-headers event, without `bd`.
   * `'capture'`: as prox, a request with `Content-Length > 0` waits for its body: the
   * headers are answered allow + `needs_more`, and `on_request` is called with up to 64 KiB of
   * body as `bd` once that much arrived or the last chunk did; its verdict answers that chunk.
   * Only for callers that send every such body (the gateway with the agent on `request_body`):
   * a body that never comes means `on_request` is never called.
   */
  requestBody?: 'headers' | 'capture';
  /**
   * An `on_request` call that fails (timeout, plugin gone, bad answer): `'reject'` (default)
   * rejects the call with the error, so the pool's failure mode decides; `'block'` answers
   * block 500 as prox does (tags `fail_closed`, `prox:error`).
   */
  requestErrors?: 'reject' | 'block';
  /**
   * An `on_response` call that fails: `'allow'` (default, as prox: the original response
   * passes; tags `fail_open`, `prox:error`) or `'reject'`.
   */
  responseErrors?: 'allow' | 'reject';
  /** route id put in `r` when an event carries none (default: the first binding's) */
  routeId?: string;
  /** requests remembered for `on_response` / `on_disconnect` (default 10 000; oldest dropped) */
  maxRemembered?: number;
  /** where problems go (default: the host's logger, else silent) */
  logger?: Logger;
}

/** Options of {@link ProxPluginTransport.connect}: the host's and the transport's. */
export interface ProxConnectOptions
  extends Omit<ProxPluginHostOptions, 'name' | 'command'>,
    ProxTransportOptions {
  /** names the plugin in logs (default: the agent id) */
  name?: string;
}

/** The request-side state the transport keeps per correlation id. */
interface Held {
  info: RequestInfoInput & { routeId: string };
  /** capture mode: body chunks still wanted before `on_request` */
  body?: { chunks: Uint8Array[]; size: number; want: number };
}

/** The pending call's cancel, so a timeout or cancel discards the socket connection too. */
type CallData = () => void;

/** The options of one plugin call: the engine keeps its deadline and cancel (see internal.ts). */
type HookCallOptions = InternalCallOptions & { timeoutMs: number };

type ProxListener<K extends keyof ProxTransportEventMap> = (
  ...args: ProxTransportEventMap[K]
) => void;

/** The plugin's own events, typed, next to the standard transport events. */
export interface ProxPluginTransport {
  on<K extends keyof ProxTransportEventMap>(event: K, listener: ProxListener<K>): this;
  once<K extends keyof ProxTransportEventMap>(event: K, listener: ProxListener<K>): this;
  off<K extends keyof ProxTransportEventMap>(event: K, listener: ProxListener<K>): this;
}

/** A prox plugin as an {@link AgentTransport}. */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the interface above only widens the event map
export class ProxPluginTransport extends AgentTransportBase implements AgentTransport {
  readonly kind = 'prox' as const;
  readonly agentId: string;
  readonly capabilities: AgentCapabilities;
  readonly encoding = 'msgpack' as const;
  /** the plugin process and its socket pool */
  readonly host: ProxPluginHost;
  readonly #engine: CallEngine<CallData>;
  readonly #o: Required<
    Pick<ProxTransportOptions, 'requestBody' | 'requestErrors' | 'responseErrors'>
  >;
  readonly #routeId: string;
  readonly #maxRemembered: number;
  readonly #log: Logger;
  readonly #owned: boolean;
  readonly #held = new Map<string, Held>();
  readonly #detach: () => void;
  #closing: Promise<void> | undefined;

  /**
   * A transport over a started `host`. With `owned` (as {@link connect} makes it) closing the
   * transport stops the plugin; otherwise the host outlives it.
   */
  constructor(
    agentId: string,
    host: ProxPluginHost,
    o: ProxTransportOptions & { owned?: boolean } = {},
  ) {
    super();
    this.agentId = agentId;
    this.host = host;
    this.#owned = o.owned ?? false;
    this.#log = o.logger ?? silentLogger;
    this.#routeId = o.routeId ?? host.routes[0]?.routeId ?? '';
    this.#maxRemembered = o.maxRemembered ?? 10_000;
    this.#o = {
      requestBody: o.requestBody ?? 'headers',
      requestErrors: o.requestErrors ?? 'reject',
      responseErrors: o.responseErrors ?? 'allow',
    };
    this.capabilities = createCapabilities({
      agentId,
      name: host.name,
      events: ['request_headers', 'request_body_chunk', 'response_headers', 'request_complete'],
      features: { concurrent_requests: 100, cancellation: true, health_reporting: true },
    });
    this.#engine = new CallEngine<CallData>({
      name: `prox plugin "${host.name}"`,
      timeoutMs: o.timeoutMs ?? host.callTimeoutMs,
      wire: {
        write: (call, event) => this.#dispatch(call, event),
        writeCancel: (_id, _reason, call) => call?.data?.(),
        timeoutError: (call) =>
          new AgentProtocolError(
            ErrorCode.Timeout,
            `prox plugin "${host.name}" did not answer ${hookOf(call.type)} (${call.type} ${call.correlationId}) within ${call.timeoutMs} ms`,
          ),
      },
    });
    const onReady = (info: ProxReadyInfo): void => {
      this.#emitProx('ready', info);
      this.emit('health', { state: 'healthy' });
    };
    const onUnready = (why: string): void => {
      this.emit('health', { state: 'unhealthy', message: `prox plugin: ${why}` });
    };
    const onTargets = (p: ProxTargetsPush): void => this.#emitProx('targets', p);
    const onSpeed = (p: ProxSpeedPush): void => this.#emitProx('speed', p);
    const onLog = (p: ProxLogPush): void => this.#emitProx('pluginLog', p);
    host.on('ready', onReady);
    host.on('unready', onUnready);
    host.on('targets', onTargets);
    host.on('speed', onSpeed);
    host.on('log', onLog);
    // stopped by someone else (the owner's signal, a shared host's owner): this transport is over
    const onStopped = (): void => {
      if (this.#closing !== undefined) return;
      const err = new AgentProtocolError(
        ErrorCode.ConnectionClosed,
        `prox plugin "${host.name}" was stopped`,
      );
      this.#closing = Promise.resolve();
      this.#engine.close(err);
      this.#held.clear();
      this.#detach();
      this.emit('close', err);
    };
    host.on('stopped', onStopped);
    this.#detach = () => {
      host.off('stopped', onStopped);
      host.off('ready', onReady);
      host.off('unready', onUnready);
      host.off('targets', onTargets);
      host.off('speed', onSpeed);
      host.off('log', onLog);
    };
  }

  /**
   * Starts the plugin of a `prox+exec:` endpoint (or an argv) and resolves with a transport
   * once it sent `ready`; closing the transport stops the plugin. Rejects INVALID_ARGUMENT
   * for a bad endpoint and TIMEOUT when `ready` does not come within `readyTimeoutMs`.
   */
  static async connect(
    agentId: string,
    endpoint: string | readonly string[],
    o: ProxConnectOptions = {},
  ): Promise<ProxPluginTransport> {
    const command = typeof endpoint === 'string' ? parseProxExec(endpoint).command : [...endpoint];
    const {
      name,
      timeoutMs,
      requestBody,
      requestErrors,
      responseErrors,
      routeId,
      maxRemembered,
      ...hostOptions
    } = o;
    const host = new ProxPluginHost({ ...hostOptions, name: name ?? agentId, command });
    const t = new ProxPluginTransport(agentId, host, {
      owned: true,
      ...(timeoutMs !== undefined && { timeoutMs }),
      ...(requestBody !== undefined && { requestBody }),
      ...(requestErrors !== undefined && { requestErrors }),
      ...(responseErrors !== undefined && { responseErrors }),
      ...(routeId !== undefined && { routeId }),
      ...(maxRemembered !== undefined && { maxRemembered }),
      ...(o.logger !== undefined && { logger: o.logger }),
    });
    try {
      await host.start();
    } catch (err) {
      await t.close();
      throw err;
    }
    return t;
  }

  /** Emits one of the plugin's own events (the base class types only the standard ones). */
  #emitProx<K extends 'ready' | 'targets' | 'speed' | 'pluginLog'>(
    event: K,
    ...args: ProxTransportEventMap[K]
  ): void {
    (EventEmitter.prototype.emit as (e: string, ...a: unknown[]) => boolean).call(
      this,
      event,
      ...args,
    );
  }

  get inFlight(): number {
    return this.#engine.size;
  }

  /** prox plugins have no flow control. */
  get paused(): boolean {
    return false;
  }

  /** Open, and the plugin's latest `ready` is in use (false while it restarts). */
  isHealthy(): boolean {
    return this.#closing === undefined && this.host.ready;
  }

  send<K extends EventType>(
    type: K,
    event: EventMap[K],
    options?: CallOptions,
  ): Promise<AgentResponse> {
    const cid =
      type === 'request_headers'
        ? (event as RequestHeadersEvent).metadata?.correlation_id
        : (event as { correlation_id?: string }).correlation_id;
    if (typeof cid !== 'string') {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.InvalidArgument,
          `${type} event without a correlation id`,
          {
            sent: false,
          },
        ),
      );
    }
    return this.#engine.call(type, event, cid, options);
  }

  cancel(correlationId: string, reason: CancelReason = 'client_disconnect'): Promise<void> {
    // the request stays remembered: request-complete (and on_disconnect) still follows
    this.#engine.cancel(correlationId, reason);
    return Promise.resolve();
  }

  cancelAll(reason: CancelReason = 'client_disconnect'): Promise<number> {
    return Promise.resolve(this.#engine.cancelAll(reason));
  }

  /** prox's wire has no ping: UNSUPPORTED (the pool then stops probing this connection). */
  ping(): Promise<number> {
    return Promise.reject(
      new AgentProtocolError(
        ErrorCode.Unsupported,
        'prox plugins have no ping; health follows ready',
      ),
    );
  }

  /** Fails pending calls, stops following the plugin and, if owned, stops it. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#engine.close(
        new AgentProtocolError(
          ErrorCode.ConnectionClosed,
          `prox plugin "${this.host.name}": transport closed`,
        ),
      );
      this.#held.clear();
      this.#detach();
      if (this.#owned) await this.host.stop();
      this.emit('close');
    })();
    return this.#closing;
  }

  /** The engine registered `call`: answer it from the plugin (asynchronously). */
  #dispatch(call: Call<CallData>, event: AgentEvent): void {
    const o: HookCallOptions = {
      timeoutMs: call.timeoutMs,
      [externalDeadline]: (cancel) => {
        call.data = cancel;
      },
    };
    this.#answer(call.type, event, call.correlationId, o).then(
      (r) => this.#engine.settle(call, r),
      (err: unknown) =>
        this.#engine.settle(call, AgentProtocolError.from(err, ErrorCode.Internal, call.type)),
    );
  }

  async #answer(
    type: EventType,
    event: AgentEvent,
    cid: string,
    o: HookCallOptions,
  ): Promise<AgentResponse> {
    switch (type) {
      case 'request_headers':
        return this.#requestHeaders(event as RequestHeadersEvent, cid, o);
      case 'request_body_chunk':
        return this.#requestBody(event as RequestBodyChunkEvent, cid, o);
      case 'response_headers':
        return this.#responseHeaders(event as ResponseHeadersEvent, cid, o);
      case 'request_complete':
        return this.#requestComplete(event as RequestCompleteEvent, cid);
      case 'web_socket_frame':
        return websocketAllow();
      default:
        return allow();
    }
  }

  #requestHeaders(e: RequestHeadersEvent, cid: string, o: HookCallOptions): Promise<AgentResponse> {
    const info = requestInfo(e, this.#routeId);
    const remember = this.host.has('on_response') || this.host.has('on_disconnect');
    if (!this.host.has('on_request')) {
      if (remember) this.#remember(cid, { info });
      return Promise.resolve(allow());
    }
    const cl = info.contentLength ?? 0;
    if (this.#o.requestBody === 'capture' && cl > 0) {
      this.#remember(cid, {
        info,
        body: { chunks: [], size: 0, want: Math.min(cl, MAX_CAPTURED_BODY) },
      });
      return Promise.resolve(needsMore({ tags: ['prox:awaiting_body'] }));
    }
    if (remember) this.#remember(cid, { info });
    return this.#onRequest(info, o);
  }

  #requestBody(e: RequestBodyChunkEvent, cid: string, o: HookCallOptions): Promise<AgentResponse> {
    const held = this.#held.get(cid);
    const body = held?.body;
    if (held === undefined || body === undefined) return Promise.resolve(allow());
    const room = body.want - body.size;
    if (room > 0 && e.data.length > 0) {
      const part = e.data.subarray(0, room);
      body.chunks.push(part);
      body.size += part.length;
    }
    if (body.size < body.want && !e.is_last)
      return Promise.resolve(needsMore({ tags: ['prox:awaiting_body'] }));
    held.body = undefined;
    const captured = Buffer.concat(body.chunks, body.size);
    const info = { ...held.info, ...(captured.length > 0 && { body: captured }) };
    return this.#onRequest(info, o);
  }

  async #onRequest(info: RequestInfoInput, o: HookCallOptions): Promise<AgentResponse> {
    try {
      return authorizeResponse(await this.host.onRequest(info, o));
    } catch (err) {
      const e = AgentProtocolError.from(err, ErrorCode.Internal, 'on_request');
      if (this.#o.requestErrors === 'reject' || e.code === ErrorCode.Cancelled) throw e;
      this.#log.warn(
        `prox plugin "${this.host.name}": on_request failed, answering 500: ${escapeForLog(e.message)}`,
      );
      return block(500, {
        tags: ['fail_closed', 'prox:error'],
        reasonCodes: [e.code],
        custom: { error: e.message },
      });
    }
  }

  async #responseHeaders(
    e: ResponseHeadersEvent,
    cid: string,
    o: HookCallOptions,
  ): Promise<AgentResponse> {
    const held = this.#held.get(cid);
    if (!this.host.has('on_response')) return allow();
    if (!this.host.has('on_disconnect')) this.#held.delete(cid);
    try {
      return responseModResponse(
        await this.host.onResponse(responsePair(e, held?.info, this.#routeId), o),
      );
    } catch (err) {
      const x = AgentProtocolError.from(err, ErrorCode.Internal, 'on_response');
      if (this.#o.responseErrors === 'reject' || x.code === ErrorCode.Cancelled) throw x;
      this.#log.warn(
        `prox plugin "${this.host.name}": on_response failed, response passes: ${escapeForLog(x.message)}`,
      );
      return allow({
        tags: ['fail_open', 'prox:error'],
        reasonCodes: [x.code],
        custom: { error: x.message },
      });
    }
  }

  #requestComplete(e: RequestCompleteEvent, cid: string): AgentResponse {
    const held = this.#held.get(cid);
    this.#held.delete(cid);
    if (held?.body !== undefined) {
      this.#log.warn(
        `prox plugin "${this.host.name}": request ${escapeForLog(cid)} ended before its body arrived; on_request was never called`,
      );
    }
    if (this.host.has('on_disconnect'))
      this.host.onDisconnect(disconnectInfo(e, held?.info, this.#routeId));
    return allow();
  }

  #remember(cid: string, h: Held): void {
    this.#held.delete(cid);
    this.#held.set(cid, h);
    if (this.#held.size > this.#maxRemembered) {
      const oldest = this.#held.keys().next().value as string;
      this.#held.delete(oldest);
    }
  }
}

function hookOf(type: EventType): HookName | EventType {
  switch (type) {
    case 'request_headers':
    case 'request_body_chunk':
      return 'on_request';
    case 'response_headers':
      return 'on_response';
    case 'request_complete':
      return 'on_disconnect';
    default:
      return type;
  }
}
