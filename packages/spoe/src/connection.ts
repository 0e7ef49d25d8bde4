/**
 * One SPOP connection from HAProxy: length-prefixed frames checked against the
 * negotiated max-frame-size, the HELLO handshake (and the `option spop-check`
 * health check), NOTIFY frames answered with ACKs in whatever order the handler
 * finishes (pipelining), and AGENT-DISCONNECT with a status code on bad input.
 */
import type * as net from 'node:net';
import { escapeForLog, type Logger } from '@picket/protocol';
import {
  decodeFrame,
  decodeKvList,
  decodeMessages,
  encodeFrame,
  encodeKvList,
  SPOP_MIN_FRAME_SIZE,
  SPOP_STATUS_TEXT,
  SpopError,
  SpopFrameFlag,
  SpopFrameType,
  type SpopMessage,
  SpopStatus,
  type SpopValue,
} from './codec.js';

/** The SPOP version this agent speaks. */
export const SPOP_VERSION = '2.0';

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly log: Logger;
  /** our own largest frame (the HELLO negotiates down from it) */
  readonly maxFrameSize: number;
  /** NOTIFY frames handled at once before reading pauses */
  readonly maxInFlight: number;
  readonly helloTimeoutMs: number;
  /** answers one NOTIFY; resolves to the ACK payload, or undefined to drop the connection */
  notify(
    conn: SpopConnection,
    messages: SpopMessage[],
    streamId: number,
    frameId: number,
    signal: AbortSignal,
  ): Promise<Uint8Array | undefined>;
  ended(conn: SpopConnection): void;
  /** HAProxy aborted a NOTIFY being handled */
  cancelled(conn: SpopConnection, streamId: number, frameId: number): void;
  /** counters */
  counted(what: 'hello' | 'healthcheck' | 'notify', inFlight?: number): void;
}

type State = 'hello' | 'ready' | 'closing' | 'closed';

const LENGTH_BYTES = 4;

/** One accepted HAProxy connection. */
export class SpopConnection {
  state: State = 'hello';
  /** the max-frame-size agreed in the HELLO (before: our own) */
  frameSize: number;
  /** the engine-id HAProxy announced, for logs */
  engineId: string | undefined;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly inFlight = new Map<string, AbortController>();
  /** frames in flight that HAProxy aborted: their handlers run on, their ACKs are not sent */
  private readonly cancelled = new Set<string>();
  private helloTimer: NodeJS.Timeout | undefined;
  /** a 'drain' listener is waiting to take reading up again */
  private awaitingDrain = false;
  /** called once nothing is in flight (drain) */
  onIdle: (() => void) | undefined;

  constructor(
    readonly id: string,
    readonly socket: net.Socket,
    private readonly host: ConnectionHost,
  ) {
    this.frameSize = host.maxFrameSize;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) =>
      host.log.debug('spoe connection error', { connectionId: id, error: err.message }),
    );
    socket.on('end', () => {
      if (this.buffered > 0 && this.state !== 'closing') {
        host.log.warn('spoe connection closed by the peer in the middle of a frame', {
          connectionId: id,
          buffered: this.buffered,
        });
      }
      this.destroy();
    });
    socket.once('close', () => this.finish());
    this.helloTimer = setTimeout(
      () => this.disconnect(SpopStatus.Timeout, 'no HAPROXY-HELLO within the hello timeout'),
      host.helloTimeoutMs,
    );
    this.helloTimer.unref();
  }

  /** NOTIFY frames being handled. */
  get pending(): number {
    return this.inFlight.size;
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.pump();
  }

  /**
   * Whether to stop taking frames: `maxInFlight` NOTIFYs are being handled, or
   * the peer is not reading its ACKs (the socket's write buffer is full). Then
   * the socket is paused and frames already received wait in the buffer.
   */
  private blocked(): boolean {
    return this.inFlight.size >= this.host.maxInFlight || this.socket.writableNeedDrain;
  }

  /** Takes up reading and the buffered frames again once nothing blocks. */
  private unblock(): void {
    if (this.state !== 'ready' || this.blocked()) return;
    this.socket.resume();
    this.pump();
  }

  /** Handles the whole frames buffered, as long as nothing blocks. */
  private pump(): void {
    while (this.state === 'hello' || this.state === 'ready') {
      if (this.blocked()) {
        this.socket.pause();
        return;
      }
      if (this.buffered < LENGTH_BYTES) return;
      const head = this.peek(LENGTH_BYTES);
      const length = head.readUInt32BE(0);
      // checked before anything is buffered for it: a peer cannot make us hold more
      if (length > this.frameSize) {
        this.disconnect(
          SpopStatus.TooBig,
          `frame of ${length} bytes exceeds max-frame-size ${this.frameSize}`,
        );
        return;
      }
      if (this.buffered < LENGTH_BYTES + length) return;
      const frame = this.take(LENGTH_BYTES + length).subarray(LENGTH_BYTES);
      try {
        this.onFrame(frame);
      } catch (err) {
        if (err instanceof SpopError) this.disconnect(err.status, err.message);
        else this.disconnect(SpopStatus.Unknown, (err as Error).message);
        return;
      }
    }
  }

  private peek(n: number): Buffer {
    if ((this.chunks[0]?.length ?? 0) < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] as Buffer;
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }

  private onFrame(bytes: Uint8Array): void {
    const f = decodeFrame(bytes);
    if (this.state === 'hello') {
      if (f.type !== SpopFrameType.HaproxyHello) {
        throw new SpopError(
          SpopStatus.Invalid,
          `expected HAPROXY-HELLO first, got ${frameName(f.type)}`,
        );
      }
      this.onHello(f.flags, f.streamId, f.frameId, f.payload);
      return;
    }
    switch (f.type) {
      case SpopFrameType.Notify:
        this.onNotify(f.flags, f.streamId, f.frameId, f.payload);
        return;
      case SpopFrameType.HaproxyDisconnect:
        this.onHaproxyDisconnect(f.payload);
        return;
      case SpopFrameType.Unset:
        throw new SpopError(
          SpopStatus.FragmentationNotSupported,
          'fragmented payload (UNSET frame) received; this agent does not announce fragmentation',
        );
      case SpopFrameType.HaproxyHello:
        throw new SpopError(SpopStatus.Invalid, 'second HAPROXY-HELLO on the connection');
      case SpopFrameType.AgentHello:
      case SpopFrameType.AgentDisconnect:
      case SpopFrameType.Ack:
        throw new SpopError(SpopStatus.Invalid, `${frameName(f.type)} is an agent frame`);
      default:
        // "Unknown frames may be silently skipped" (SPOE.txt 3.2.2)
        this.host.log.debug('spoe: unknown frame type skipped', {
          connectionId: this.id,
          type: f.type,
        });
    }
  }

  private onHello(flags: number, streamId: number, frameId: number, payload: Uint8Array): void {
    if ((flags & SpopFrameFlag.Fin) === 0) {
      throw new SpopError(
        SpopStatus.FragmentationNotSupported,
        'HAPROXY-HELLO without the FIN flag (a HELLO cannot be fragmented)',
      );
    }
    if (streamId !== 0 || frameId !== 0) {
      throw new SpopError(SpopStatus.Invalid, 'HAPROXY-HELLO with a stream-id or frame-id not 0');
    }
    const kv = new Map(decodeKvList(payload, 'HAPROXY-HELLO'));
    const versions = stringItem(kv, 'supported-versions', SpopStatus.NoVersion);
    const theirMax = integerItem(kv, 'max-frame-size', SpopStatus.NoMaxFrameSize);
    stringItem(kv, 'capabilities', SpopStatus.NoCapabilities);
    if (!supportsVersion(versions)) {
      throw new SpopError(
        SpopStatus.BadVersion,
        `supported-versions "${escapeForLog(versions.slice(0, 60))}" does not include SPOP ${SPOP_VERSION}, which this agent speaks`,
      );
    }
    if (theirMax < SPOP_MIN_FRAME_SIZE) {
      throw new SpopError(
        SpopStatus.BadFrameSize,
        `max-frame-size ${theirMax} is below the minimum of ${SPOP_MIN_FRAME_SIZE}`,
      );
    }
    const engine = kv.get('engine-id');
    if (engine?.type === 'string') this.engineId = engine.value.slice(0, 100);
    const healthcheck = kv.get('healthcheck');
    this.frameSize = Math.min(this.host.maxFrameSize, theirMax);
    clearTimeout(this.helloTimer);
    this.write(
      encodeFrame({
        type: SpopFrameType.AgentHello,
        payload: encodeKvList([
          ['version', { type: 'string', value: SPOP_VERSION }],
          ['max-frame-size', { type: 'uint32', value: this.frameSize }],
          ['capabilities', { type: 'string', value: 'pipelining' }],
        ]),
      }),
    );
    if (healthcheck?.type === 'bool' && healthcheck.value) {
      // SPOE.txt 3.2.3: a health check's HELLO is answered, then the connection closes
      this.host.counted('healthcheck');
      this.state = 'closing';
      this.socket.end();
      this.closeSoon();
      return;
    }
    this.host.counted('hello');
    this.state = 'ready';
    this.host.log.debug('spoe handshake done', {
      connectionId: this.id,
      maxFrameSize: this.frameSize,
      engineId: this.engineId,
    });
  }

  private onNotify(flags: number, streamId: number, frameId: number, payload: Uint8Array): void {
    const key = `${streamId}:${frameId}`;
    if ((flags & SpopFrameFlag.Abort) !== 0) {
      // "the processing of the current frame must be cancelled" (SPOE.txt 3.2)
      if ((flags & SpopFrameFlag.Fin) === 0) {
        throw new SpopError(SpopStatus.Invalid, 'ABORT flag without FIN');
      }
      const running = this.inFlight.get(key);
      if (running !== undefined && !this.cancelled.has(key)) {
        this.cancelled.add(key);
        running.abort(new Error(`HAProxy aborted stream-id ${streamId} frame-id ${frameId}`));
        this.host.cancelled(this, streamId, frameId);
      }
      return;
    }
    if ((flags & SpopFrameFlag.Fin) === 0) {
      throw new SpopError(
        SpopStatus.FragmentationNotSupported,
        `fragmented NOTIFY (stream-id ${streamId}, frame-id ${frameId}); this agent does not announce fragmentation`,
      );
    }
    if (this.inFlight.has(key)) {
      throw new SpopError(
        SpopStatus.Invalid,
        `NOTIFY for stream-id ${streamId} frame-id ${frameId}, which is already being handled`,
      );
    }
    const messages = decodeMessages(payload);
    const abort = new AbortController();
    this.inFlight.set(key, abort);
    this.host.counted('notify', this.inFlight.size);
    void this.host.notify(this, messages, streamId, frameId, abort.signal).then(
      (ack) => this.answered(key, streamId, frameId, ack),
      (err: unknown) => {
        this.host.log.error('spoe: NOTIFY handling failed', {
          connectionId: this.id,
          error: err instanceof Error ? err.message : String(err),
        });
        this.answered(key, streamId, frameId, undefined);
      },
    );
  }

  private answered(
    key: string,
    streamId: number,
    frameId: number,
    ack: Uint8Array | undefined,
  ): void {
    if (!this.inFlight.delete(key) || this.state === 'closed') return;
    // an aborted frame gets no ACK
    if (!this.cancelled.delete(key) && this.state === 'ready') {
      if (ack === undefined) this.drop('handler failed and errorPolicy is "close"');
      else this.write(encodeFrame({ type: SpopFrameType.Ack, streamId, frameId, payload: ack }));
    }
    if (this.inFlight.size === 0) this.onIdle?.();
    this.unblock();
  }

  private onHaproxyDisconnect(payload: Uint8Array): void {
    let status: number | undefined;
    let message = '';
    try {
      const kv = new Map(decodeKvList(payload, 'HAPROXY-DISCONNECT'));
      const s = kv.get('status-code');
      if (s !== undefined && (s.type === 'uint32' || s.type === 'int32')) status = s.value;
      const m = kv.get('message');
      if (m?.type === 'string') message = m.value;
    } catch {
      // answered the same way: the peer is going away
    }
    const log = status === undefined || status === SpopStatus.Normal ? 'debug' : 'warn';
    this.host.log[log]('spoe: HAProxy disconnected', {
      connectionId: this.id,
      status,
      message: escapeForLog(message.slice(0, 255)),
    });
    this.disconnect(SpopStatus.Normal, 'normal', false);
  }

  /**
   * Sends AGENT-DISCONNECT with `status` and closes. The message names what was
   * wrong (HAProxy reads at most 255 bytes of it); a failure is logged.
   */
  disconnect(status: number, message: string, failure = status !== SpopStatus.Normal): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    clearTimeout(this.helloTimer);
    if (failure) {
      this.host.log.warn(`spoe connection closed: ${escapeForLog(message)}`, {
        connectionId: this.id,
        status,
        statusText: SPOP_STATUS_TEXT[status],
      });
    }
    this.state = 'closing';
    this.abortAll(`connection closed: ${message}`);
    const text = Buffer.from(message, 'utf8').subarray(0, 255).toString('utf8');
    this.write(
      encodeFrame({
        type: SpopFrameType.AgentDisconnect,
        payload: encodeKvList([
          ['status-code', { type: 'uint32', value: status }],
          ['message', { type: 'string', value: text }],
        ]),
      }),
    );
    this.socket.end();
    this.closeSoon();
  }

  /** Closes without a frame (errorPolicy 'close'): HAProxy sees an I/O error. */
  drop(reason: string): void {
    if (this.state === 'closed') return;
    this.host.log.warn(`spoe connection dropped: ${reason}`, { connectionId: this.id });
    this.destroy();
  }

  destroy(): void {
    if (this.state === 'closed') return;
    this.socket.destroy();
    this.finish();
  }

  private closeSoon(): void {
    // a peer that never closes its side does not keep the socket forever
    setTimeout(() => this.destroy(), 2_000).unref();
  }

  private write(frame: Uint8Array): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    if (!this.socket.write(frame) && !this.awaitingDrain) {
      this.awaitingDrain = true;
      this.socket.once('drain', () => {
        this.awaitingDrain = false;
        this.unblock();
      });
    }
  }

  private abortAll(reason: string): void {
    for (const a of this.inFlight.values()) a.abort(new Error(reason));
  }

  private finish(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.helloTimer);
    this.abortAll('connection closed');
    this.inFlight.clear();
    this.cancelled.clear();
    this.chunks = [];
    this.buffered = 0;
    this.host.ended(this);
    this.onIdle?.();
  }
}

function frameName(type: number): string {
  const names: Record<number, string> = {
    0: 'UNSET',
    1: 'HAPROXY-HELLO',
    2: 'HAPROXY-DISCONNECT',
    3: 'NOTIFY',
    101: 'AGENT-HELLO',
    102: 'AGENT-DISCONNECT',
    103: 'ACK',
  };
  return names[type] ?? `frame type ${type}`;
}

function stringItem(kv: Map<string, SpopValue>, name: string, missing: number): string {
  const v = kv.get(name);
  if (v === undefined) throw new SpopError(missing, `HAPROXY-HELLO without "${name}"`);
  if (v.type !== 'string') {
    throw new SpopError(SpopStatus.Invalid, `HAPROXY-HELLO "${name}" is ${v.type}, not a string`);
  }
  return v.value;
}

function integerItem(kv: Map<string, SpopValue>, name: string, missing: number): number {
  const v = kv.get(name);
  if (v === undefined) throw new SpopError(missing, `HAPROXY-HELLO without "${name}"`);
  if (v.type === 'uint32' || v.type === 'int32') return v.value;
  if (v.type === 'uint64' || v.type === 'int64') {
    return v.value > 0xffffffffn ? 0xffffffff : Math.max(0, Number(v.value));
  }
  throw new SpopError(SpopStatus.Invalid, `HAPROXY-HELLO "${name}" is ${v.type}, not an integer`);
}

/**
 * Whether a `supported-versions` list ("2.0, 1.5") covers SPOP 2.0: an announced
 * major version includes every earlier minor of it (SPOE.txt 3.2.4).
 */
export function supportsVersion(list: string): boolean {
  return list
    .split(',')
    .map((v) => v.replace(/\s+/g, ''))
    .some((v) => /^2\.\d+$/.test(v));
}
