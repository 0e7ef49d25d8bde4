/**
 * Where the wire-level checks get their fresh raw connections: dialled (UDS, v1) or, for a
 * reverse endpoint, accepted from the agent on a listener of our own that answers its
 * registration as a proxy does.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { decodeRegistrationRequest, encodeRegistrationResponse } from '@picket/codec';
import { type Encoding, MessageType, type RegistrationRequest } from '@picket/protocol';
import type { ParsedEndpoint } from '@picket/transport';
import { RawConnection, rawHandshake, type WireKind } from './wire.js';

/** A fresh connection, ready for events (`encoding` set) or not yet (`encoding` undefined). */
export type Opened = { conn: RawConnection; encoding: Encoding | undefined } | string;

export interface RawTarget {
  readonly kind: WireKind;
  /** true when the agent dials us (reverse): it speaks first, with its registration */
  readonly dialsIn: boolean;
  /**
   * A fresh connection. With `encodings`, the handshake (v2: offering them; reverse: the
   * registration, answered with success) is done; without, nothing was sent or answered yet
   * (reverse: the agent's registration was read and left unanswered). A string says why not.
   */
  open(encodings: Encoding[] | undefined): Promise<Opened>;
  close(): Promise<void>;
}

interface Limits {
  timeoutMs: number;
  connectTimeoutMs: number;
}

/** UDS and v1 agents: we dial their socket. */
class DialTarget implements RawTarget {
  readonly dialsIn = false;
  constructor(
    private readonly path: string,
    readonly kind: WireKind,
    private readonly limits: Limits,
  ) {}

  async open(encodings: Encoding[] | undefined): Promise<Opened> {
    let conn: RawConnection;
    try {
      conn = await RawConnection.open(this.path, this.kind, this.limits.connectTimeoutMs);
    } catch (err) {
      return `cannot connect: ${(err as Error).message}`;
    }
    if (encodings === undefined) return { conn, encoding: undefined };
    if (this.kind === 'v1') return { conn, encoding: 'json' };
    const h = await rawHandshake(conn, this.limits.timeoutMs, encodings);
    if (!h.ok) {
      conn.close();
      return `handshake: ${h.reason}`;
    }
    return { conn, encoding: h.response.encoding };
  }

  async close(): Promise<void> {}
}

/** Reverse agents: they dial our listener and register; each probe takes the next connection. */
class ReverseTarget implements RawTarget {
  readonly kind = 'v2' as const;
  readonly dialsIn = true;
  private readonly waiting: Socket[] = [];
  private wake: (() => void) | undefined;
  private seq = 0;

  constructor(
    private readonly server: Server,
    private readonly agentId: string,
    private readonly limits: Limits,
  ) {
    // a queued socket that breaks is dropped when its turn comes (it is destroyed by then)
    server.on('error', () => {});
    server.on('connection', (socket: Socket) => {
      socket.on('error', () => socket.destroy());
      this.waiting.push(socket);
      this.wake?.();
    });
  }

  private async accept(): Promise<Socket | undefined> {
    const end = Date.now() + this.limits.connectTimeoutMs;
    for (;;) {
      const s = this.waiting.shift();
      if (s !== undefined && !s.destroyed) return s;
      if (s !== undefined) continue;
      const left = end - Date.now();
      if (left <= 0) return undefined;
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

  async open(encodings: Encoding[] | undefined): Promise<Opened> {
    const socket = await this.accept();
    if (socket === undefined) {
      return `the agent did not dial in within ${this.limits.connectTimeoutMs} ms`;
    }
    const conn = RawConnection.accepted(socket);
    const n = await conn.next(this.limits.timeoutMs);
    if (n.kind !== 'frame' || n.frame.type !== MessageType.HandshakeRequest) {
      conn.close();
      return `the agent sent no registration (${n.kind === 'frame' ? `frame type 0x${n.frame.type.toString(16)}` : n.kind})`;
    }
    let reg: RegistrationRequest;
    try {
      reg = decodeRegistrationRequest(n.frame.payload);
    } catch (err) {
      conn.close();
      return `invalid registration: ${(err as Error).message}`;
    }
    if (reg.agent_id !== this.agentId) {
      conn.close();
      return `an agent registered as "${reg.agent_id}", not "${this.agentId}"`;
    }
    if (encodings === undefined) return { conn, encoding: undefined };
    conn.frame(
      MessageType.HandshakeResponse,
      encodeRegistrationResponse({
        success: true,
        error: null,
        proxy_id: 'picket-conform',
        proxy_version: '1',
        connection_id: `${this.agentId}-conform-${++this.seq}`,
      }),
    );
    // reverse connections speak JSON only (spec 3)
    return { conn, encoding: 'json' };
  }

  async close(): Promise<void> {
    for (const s of this.waiting.splice(0)) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * The raw target of `ep`, or why it has none. A reverse target binds its listener here: call
 * it once the facade's own listener on that address is closed.
 */
export async function rawTarget(
  ep: ParsedEndpoint,
  agentId: string,
  limits: Limits,
): Promise<RawTarget | string> {
  if (ep.kind === 'uds') return new DialTarget(ep.path, 'v2', limits);
  if (ep.kind === 'v1') return new DialTarget(ep.path, 'v1', limits);
  if (ep.kind !== 'reverse') {
    return `needs a socket the agent listens on (unix:, v1+unix:) or a reverse listener, not ${ep.kind}`;
  }
  if (ep.tls)
    return 'raw bytes on reverse+tls:// are not supported; use reverse+tcp:// or reverse+unix:';
  const server = createServer();
  const listen = ep.listen;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (listen.transport === 'uds') server.listen(listen.path, resolve);
      else server.listen(listen.port, listen.host, resolve);
    });
  } catch (err) {
    return `cannot listen on ${ep.endpoint}: ${(err as Error).message}`;
  }
  return new ReverseTarget(server, agentId, limits);
}
