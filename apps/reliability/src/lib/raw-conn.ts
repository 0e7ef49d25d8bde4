/**
 * A raw socket peer that writes arbitrary bytes and collects the v2 (or v1) frames the
 * other side answers, for driving servers with junk and for playing a fake agent.
 */
import * as net from 'node:net';
import { type Frame, FrameDecoder, V1FrameDecoder } from '@picket/framing';

/** Thrown when something the harness waits for does not happen within its hang guard. */
export class HangError extends Error {
  override name = 'HangError';
}

/** Resolves with `promise`, or rejects {@link HangError} after `ms` (a hang guard, not a timing assertion). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HangError(`hung: ${what} (no progress within ${ms} ms)`)),
      ms,
    );
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

/** Lets pending I/O callbacks run. */
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Who ended a raw connection first. */
export type ClosedBy = 'peer' | 'us' | undefined;

/** One raw connection. */
export class RawConn {
  readonly socket: net.Socket;
  /** v2 frames received (v1 mode: type 0, payload = the JSON) */
  readonly frames: Frame[] = [];
  /** set when the peer sent bytes we could not frame */
  decodeError: Error | undefined;
  /** who closed first */
  closedBy: ClosedBy;
  private readonly waiters: (() => void)[] = [];
  private readonly decoder: FrameDecoder | V1FrameDecoder;
  private readonly closedPromise: Promise<void>;
  private weEnded = false;
  private isClosed = false;

  constructor(socket: net.Socket, mode: 'v2' | 'v1' = 'v2') {
    this.socket = socket;
    this.decoder =
      mode === 'v2'
        ? new FrameDecoder({ maxFrameLength: 64 * 1024 * 1024, acceptType: () => true })
        : new V1FrameDecoder({ maxMessageSize: 64 * 1024 * 1024 });
    socket.on('data', (chunk: Buffer) => {
      if (this.decodeError !== undefined) return;
      try {
        const out = this.decoder.push(chunk);
        for (const f of out) {
          this.frames.push(f instanceof Uint8Array ? { type: 0, payload: f } : f);
        }
      } catch (err) {
        this.decodeError = err as Error;
      }
      this.wake();
    });
    socket.on('error', () => {
      // ECONNRESET / EPIPE when the peer drops us: the close event tells the story
    });
    this.closedPromise = new Promise((resolve) => {
      socket.once('close', () => {
        this.isClosed = true;
        resolve();
        this.wake();
      });
    });
    socket.once('end', () => {
      if (this.closedBy === undefined) this.closedBy = this.weEnded ? 'us' : 'peer';
      this.wake();
    });
  }

  /** Connects to a Unix socket path or a TCP port on 127.0.0.1. */
  static connect(target: string | number, mode: 'v2' | 'v1' = 'v2'): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const socket =
        typeof target === 'number'
          ? net.createConnection({ host: '127.0.0.1', port: target })
          : net.createConnection({ path: target });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawConn(socket, mode));
      });
    });
  }

  /** True once the socket closed. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** True once the peer ended or reset the connection before we ended it. */
  get peerClosed(): boolean {
    return this.closedBy === 'peer' || (this.isClosed && !this.weEnded);
  }

  /** Writes bytes (ignored after close). */
  write(bytes: Uint8Array): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  /** Resolves once `check()` holds, or the socket closed (then `check()` decides). */
  async until(check: () => boolean, ms: number, what: string): Promise<boolean> {
    await within(
      new Promise<void>((resolve) => {
        const test = (): void => {
          if (check() || this.isClosed) resolve();
          else this.waiters.push(test);
        };
        test();
      }),
      ms,
      what,
    );
    return check();
  }

  /** Resolves once the socket has closed. */
  whenClosed(ms: number, what: string): Promise<void> {
    return within(this.closedPromise, ms, what);
  }

  /** Half-closes our side (the peer sees EOF). */
  end(): void {
    if (this.closedBy === undefined && !this.isClosed) this.weEnded = true;
    if (!this.socket.destroyed) this.socket.end();
  }

  /** Drops the connection. */
  destroy(): void {
    if (this.closedBy === undefined && !this.isClosed) this.weEnded = true;
    this.socket.destroy();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** Writes `chunks` one by one, sometimes letting the event loop turn in between (split reads). */
export async function writeSplit(
  conn: RawConn | net.Socket,
  bytes: Buffer,
  pieces: number,
  pick: (max: number) => number,
): Promise<void> {
  const write = (b: Buffer): void => {
    if (conn instanceof RawConn) conn.write(b);
    else if (!conn.destroyed && conn.writable) conn.write(b);
  };
  if (pieces <= 1 || bytes.length < 2) {
    write(bytes);
    return;
  }
  const cuts = new Set<number>();
  for (let i = 1; i < pieces; i++) cuts.add(1 + pick(bytes.length - 2));
  let from = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    write(bytes.subarray(from, cut));
    from = cut;
    await tick();
  }
  write(bytes.subarray(from));
}
