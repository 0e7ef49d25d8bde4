import { EventEmitter } from 'node:events';
import {
  type AgentCapabilities,
  AgentProtocolError,
  type AgentResponse,
  type AgentTransport,
  allow,
  type CallOptions,
  type CancelReason,
  createCapabilities,
  ErrorCode,
  type EventType,
  eventCorrelationId,
  type HealthReport,
  type RequestHeadersEvent,
  type TransportEventMap,
} from '@picket/protocol';

type Handler = (
  type: EventType,
  event: unknown,
  t: FakeTransport,
) => AgentResponse | Promise<AgentResponse>;

let seq = 0;

/** An in-memory AgentTransport for pool logic tests (no sockets). */
export class FakeTransport extends EventEmitter<TransportEventMap> implements AgentTransport {
  readonly kind = 'uds' as const;
  readonly encoding = 'json' as const;
  readonly capabilities: AgentCapabilities;
  readonly name = `fake#${++seq}`;
  readonly pending = new Map<string, { reject: (e: AgentProtocolError) => void }>();
  readonly seen: { type: EventType; cid: string }[] = [];
  closed = false;
  isPaused = false;
  reported: HealthReport['state'] = 'healthy';
  pingFails = false;
  cancelled: [string, CancelReason | undefined][] = [];

  constructor(
    readonly agentId: string,
    public handler: Handler = () => allow(),
  ) {
    super();
    this.capabilities = createCapabilities({ agentId });
  }

  get inFlight(): number {
    return this.pending.size;
  }
  get paused(): boolean {
    return this.isPaused;
  }
  isHealthy(): boolean {
    return (
      !this.closed &&
      !this.isPaused &&
      this.reported !== 'unhealthy' &&
      this.reported !== 'draining'
    );
  }

  pause(): void {
    this.isPaused = true;
    this.emit('flowControl', 'pause');
  }
  resume(): void {
    this.isPaused = false;
    this.emit('flowControl', 'resume');
  }
  report(state: HealthReport['state']): void {
    this.reported = state;
    this.emit('health', { state });
  }

  /** The connection dies: pending calls fail with CONNECTION_CLOSED. */
  kill(): void {
    if (this.closed) return;
    this.closed = true;
    const err = new AgentProtocolError(ErrorCode.ConnectionClosed, `${this.name}: connection lost`);
    for (const p of [...this.pending.values()]) p.reject(err);
    this.pending.clear();
    this.emit('close', err);
  }

  send(type: EventType, event: unknown, o: CallOptions = {}): Promise<AgentResponse> {
    if (this.closed) {
      return Promise.reject(
        new AgentProtocolError(ErrorCode.ConnectionClosed, `${this.name}: closed`),
      );
    }
    if (this.isPaused) {
      return Promise.reject(
        new AgentProtocolError(ErrorCode.FlowControlPaused, `${this.name}: paused`),
      );
    }
    const cid = eventCorrelationId(event as RequestHeadersEvent);
    this.seen.push({ type, cid });
    return new Promise<AgentResponse>((resolve, reject) => {
      const key = `${cid}/${this.seen.length}`;
      const done = () => {
        this.pending.delete(key);
        clearTimeout(timer);
      };
      const timer = setTimeout(() => {
        done();
        reject(new AgentProtocolError(ErrorCode.Timeout, `${this.name}: ${cid} timed out`));
      }, o.timeoutMs ?? 1_000);
      this.pending.set(key, {
        reject: (e) => {
          done();
          reject(e);
        },
      });
      o.signal?.addEventListener('abort', () => {
        done();
        reject(new AgentProtocolError(ErrorCode.Cancelled, `${this.name}: aborted`));
      });
      Promise.resolve()
        .then(() => this.handler(type, event, this))
        .then(
          (r) => {
            if (!this.pending.has(key)) return;
            done();
            resolve(r);
          },
          (e) => {
            if (!this.pending.has(key)) return;
            done();
            reject(AgentProtocolError.from(e, ErrorCode.HandlerError));
          },
        );
    });
  }

  sendRequestHeaders = (e: never, o?: CallOptions) => this.send('request_headers', e, o);
  sendRequestBodyChunk = (e: never, o?: CallOptions) => this.send('request_body_chunk', e, o);
  sendResponseHeaders = (e: never, o?: CallOptions) => this.send('response_headers', e, o);
  sendResponseBodyChunk = (e: never, o?: CallOptions) => this.send('response_body_chunk', e, o);
  sendRequestComplete = (e: never, o?: CallOptions) => this.send('request_complete', e, o);
  sendWebSocketFrame = (e: never, o?: CallOptions) => this.send('web_socket_frame', e, o);
  sendGuardrailInspect = (e: never, o?: CallOptions) => this.send('guardrail_inspect', e, o);
  sendConfigure = (e: never, o?: CallOptions) => this.send('configure', e, o);

  async cancel(cid: string, reason?: CancelReason): Promise<void> {
    this.cancelled.push([cid, reason]);
  }
  async cancelAll(reason?: CancelReason): Promise<number> {
    const n = this.pending.size;
    const err = new AgentProtocolError(ErrorCode.Cancelled, `${this.name}: cancelled (${reason})`);
    for (const p of [...this.pending.values()]) p.reject(err);
    this.cancelled.push(['*', reason]);
    return n;
  }
  async ping(): Promise<number> {
    if (this.closed) throw new AgentProtocolError(ErrorCode.ConnectionClosed, 'closed');
    if (this.pingFails) throw new AgentProtocolError(ErrorCode.Timeout, `${this.name}: no pong`);
    return 0.1;
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.pending.values()]) {
      p.reject(new AgentProtocolError(ErrorCode.ConnectionClosed, `${this.name}: closed locally`));
    }
    this.emit('close');
  }
}

export function headers(cid: string, uri = '/'): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: cid,
      request_id: cid,
      client_ip: '127.0.0.1',
      client_port: 40000,
      server_name: null,
      protocol: 'HTTP/1.1',
      tls_version: null,
      tls_cipher: null,
      route_id: null,
      upstream_id: null,
      timestamp: '2026-01-01T00:00:00+00:00',
    },
    method: 'GET',
    uri,
    headers: {},
  };
}

export function bodyChunk(cid: string, index = 0) {
  return {
    correlation_id: cid,
    data: new Uint8Array([1, 2, 3]),
    is_last: false,
    total_size: null,
    chunk_index: index,
    bytes_received: 3 * (index + 1),
  };
}

export function complete(cid: string) {
  return {
    correlation_id: cid,
    status: 200,
    duration_ms: 1,
    request_body_size: 0,
    response_body_size: 0,
    upstream_attempts: 1,
    error: null,
  };
}

/** Polls until `check()` holds; a hang guard, not a timing assertion. */
export async function until(
  check: () => boolean,
  what = 'condition',
  timeoutMs = 5_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
