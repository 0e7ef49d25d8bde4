/**
 * A bare socket to an agent for `picket conform`'s wire-level checks: it writes whatever bytes a
 * check asks for (oversize, truncated, unknown frames) and reads the agent's frames, reporting
 * when the agent closes. The transports refuse to send such frames, hence this.
 */
import { connect, type Socket } from 'node:net';
import {
  decodeHandshakeResponse,
  encodeHandshakeRequest,
  encodeV1Request,
  type V1Request,
} from '@picket/codec';
import {
  encodeFrame,
  encodeV1Frame,
  type Frame,
  FrameDecoder,
  V1FrameDecoder,
} from '@picket/framing';
import {
  type Encoding,
  type HandshakeResponse,
  MessageType,
  PROTOCOL_VERSION,
} from '@picket/protocol';

/** v2 frames (`[u32 len][type][payload]`, a handshake first) or legacy v1 (`[u32 len][json]`). */
export type WireKind = 'v2' | 'v1';

/** What the next read saw. */
export type Next =
  | { kind: 'frame'; frame: Frame }
  | { kind: 'closed'; error?: string }
  | { kind: 'timeout' };

/** One raw connection; every frame it reads is kept until `next()` takes it. */
export class RawConnection {
  private readonly frames: Frame[] = [];
  private readonly decoder: FrameDecoder | V1FrameDecoder;
  private ended = false;
  private endError: string | undefined;
  private wake: (() => void) | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly kind: WireKind,
  ) {
    // an agent may answer with anything: accept every type byte, report it to the check
    this.decoder =
      kind === 'v2' ? new FrameDecoder({ acceptType: () => true }) : new V1FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      if (this.ended) return;
      try {
        const out = this.decoder.push(chunk);
        for (const f of out) {
          this.frames.push(
            f instanceof Uint8Array ? { type: MessageType.AgentResponse, payload: f } : f,
          );
        }
      } catch (err) {
        this.finish(`the agent sent an invalid frame: ${(err as Error).message}`);
        socket.destroy();
      }
      this.wake?.();
    });
    socket.on('error', (err) => this.finish(err.message));
    socket.on('close', () => this.finish());
  }

  private finish(error?: string): void {
    if (!this.ended) {
      this.ended = true;
      this.endError = error;
    }
    this.wake?.();
  }

  /** Wraps a socket a listener accepted (reverse: the agent dialled in). */
  static accepted(socket: Socket): RawConnection {
    return new RawConnection(socket, 'v2');
  }

  /** Connects to the Unix socket at `path`; rejects with the system error. */
  static open(path: string, kind: WireKind, timeoutMs: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`not connected within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new RawConnection(socket, kind));
      });
    });
  }

  /** True once the agent closed the connection (or it broke). */
  get closed(): boolean {
    return this.ended;
  }

  /** Writes raw bytes; a write to a closed socket is ignored (the check sees `closed`). */
  write(bytes: Uint8Array): void {
    if (!this.ended && !this.socket.destroyed) this.socket.write(bytes);
  }

  /** Writes one well-formed frame (v1: `type` is ignored). */
  frame(type: number, payload: Uint8Array): void {
    this.write(
      this.kind === 'v2'
        ? encodeFrame(type, payload, { acceptType: () => true })
        : encodeV1Frame(payload),
    );
  }

  /** Half-closes: no more bytes from us. */
  end(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  /** The next frame, or the end of the connection, or nothing within `timeoutMs`. */
  async next(timeoutMs: number): Promise<Next> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.frames.shift();
      if (frame !== undefined) return { kind: 'frame', frame };
      if (this.ended) {
        return this.endError === undefined
          ? { kind: 'closed' }
          : { kind: 'closed', error: this.endError };
      }
      const left = end - Date.now();
      if (left <= 0) return { kind: 'timeout' };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** The next frame of `type`, skipping the agent's control messages (health, metrics, …). */
  async nextOf(type: number, timeoutMs: number): Promise<Next> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const n = await this.next(Math.max(0, end - Date.now()));
      if (n.kind !== 'frame' || n.frame.type === type) return n;
      if (n.frame.type < MessageType.HealthStatus || n.frame.type > MessageType.Pong) return n;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The handshake a proxy sends, with the versions and encodings a check wants to offer. */
export function handshakeRequestBytes(
  versions: number[] = [PROTOCOL_VERSION],
  encodings: Encoding[] = ['json'],
): Uint8Array {
  return encodeHandshakeRequest({
    supported_versions: versions,
    proxy_id: 'picket-conform',
    proxy_version: '1',
    config: null,
    supported_encodings: encodings,
  });
}

/** Result of {@link rawHandshake}: the agent's answer, or why there is none. */
export type HandshakeOutcome =
  | { ok: true; response: HandshakeResponse }
  | { ok: false; reason: string };

/** Sends a v2 handshake on `conn` and reads the agent's answer. */
export async function rawHandshake(
  conn: RawConnection,
  timeoutMs: number,
  encodings: Encoding[] = ['json'],
): Promise<HandshakeOutcome> {
  conn.frame(MessageType.HandshakeRequest, handshakeRequestBytes(undefined, encodings));
  const n = await conn.next(timeoutMs);
  if (n.kind === 'timeout')
    return { ok: false, reason: `no handshake answer within ${timeoutMs} ms` };
  if (n.kind === 'closed') {
    return { ok: false, reason: `closed during the handshake${n.error ? `: ${n.error}` : ''}` };
  }
  if (n.frame.type !== MessageType.HandshakeResponse) {
    return {
      ok: false,
      reason: `answered the handshake with frame type 0x${n.frame.type.toString(16)}`,
    };
  }
  try {
    return { ok: true, response: decodeHandshakeResponse(n.frame.payload) };
  } catch (err) {
    return { ok: false, reason: `invalid handshake answer: ${(err as Error).message}` };
  }
}

/** A v1 request's bytes (`{version, event_type, payload}`). */
export function v1RequestBytes(req: V1Request): Uint8Array {
  return encodeV1Request(req);
}
