/**
 * A scripted HAProxy side over a real TCP socket: sends the frames a test
 * chooses (well-formed or not) and reads back what the agent writes.
 */
import * as net from 'node:net';
import {
  decodeActions,
  decodeFrame,
  decodeKvList,
  encodeFrame,
  encodeKvList,
  encodeMessages,
  type SpopAction,
  type SpopFrame,
  SpopFrameType,
  type SpopKv,
  type SpopValue,
} from '../src/index.js';

export const str = (value: string): SpopValue => ({ type: 'string', value });
export const u32 = (value: number): SpopValue => ({ type: 'uint32', value });

/** The HAPROXY-HELLO HAProxy 2.6 sends (items as in SPOE.txt 3.2.4). */
export function helloItems(o: { maxFrameSize?: number; healthcheck?: boolean } = {}): SpopKv[] {
  const items: SpopKv[] = [
    ['supported-versions', str('2.0')],
    ['max-frame-size', u32(o.maxFrameSize ?? 16380)],
    ['capabilities', str('pipelining,async')],
    ['engine-id', str('0B4C8E7A-test')],
  ];
  if (o.healthcheck) items.push(['healthcheck', { type: 'bool', value: true }]);
  return items;
}

export function helloFrame(items: SpopKv[] = helloItems()): Uint8Array {
  return encodeFrame({ type: SpopFrameType.HaproxyHello, payload: encodeKvList(items) });
}

/** A NOTIFY carrying the `picket` message with these arguments. */
export function notifyFrame(
  streamId: number,
  frameId: number,
  args: SpopKv[],
  o: { message?: string; flags?: number } = {},
): Uint8Array {
  return encodeFrame({
    type: SpopFrameType.Notify,
    streamId,
    frameId,
    ...(o.flags !== undefined && { flags: o.flags }),
    payload: encodeMessages([{ name: o.message ?? 'picket', args }]),
  });
}

export function requestArgs(path: string, extra: SpopKv[] = []): SpopKv[] {
  return [
    ['method', str('GET')],
    ['path', str(path)],
    ['ip', { type: 'ipv4', value: '10.1.2.3' }],
    ...extra,
  ];
}

/** A test connection to the agent. */
export class Peer {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  private readonly frames: SpopFrame[] = [];
  private waiters: (() => void)[] = [];
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      while (this.buf.length >= 4) {
        const n = this.buf.readUInt32BE(0);
        if (this.buf.length < 4 + n) break;
        this.frames.push(decodeFrame(this.buf.subarray(4, 4 + n)));
        this.buf = this.buf.subarray(4 + n);
      }
      this.wake();
    });
    socket.on('error', () => undefined);
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
  }

  static async connect(port: number): Promise<Peer> {
    const s = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    return new Peer(s);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(bytes: Uint8Array | string): void {
    this.socket.write(bytes);
  }

  /** The next frame the agent wrote; rejects if the connection closes first. */
  async next(): Promise<SpopFrame> {
    for (;;) {
      const f = this.frames.shift();
      if (f) return f;
      if (this.closed) throw new Error('connection closed before a frame arrived');
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** Completes the handshake and returns the AGENT-HELLO items. */
  async hello(items?: SpopKv[]): Promise<Map<string, SpopValue>> {
    this.send(helloFrame(items));
    const f = await this.next();
    if (f.type !== SpopFrameType.AgentHello) throw new Error(`expected AGENT-HELLO, got ${f.type}`);
    return new Map(decodeKvList(f.payload));
  }

  /** The next frame, which must be an AGENT-DISCONNECT: its status and message. */
  async disconnect(): Promise<{ status: number; message: string }> {
    const f = await this.next();
    if (f.type !== SpopFrameType.AgentDisconnect) {
      throw new Error(`expected AGENT-DISCONNECT, got frame type ${f.type}`);
    }
    const kv = new Map(decodeKvList(f.payload));
    const s = kv.get('status-code');
    const m = kv.get('message');
    return {
      status: s?.type === 'uint32' ? s.value : -1,
      message: m?.type === 'string' ? m.value : '',
    };
  }

  /** The next frame, which must be an ACK: its ids and actions. */
  async ack(): Promise<{ streamId: number; frameId: number; vars: Map<string, SpopValue> }> {
    const f = await this.next();
    if (f.type !== SpopFrameType.Ack) throw new Error(`expected ACK, got frame type ${f.type}`);
    const vars = new Map<string, SpopValue>();
    for (const a of decodeActions(f.payload) as SpopAction[]) {
      if (a.type === 'set-var') vars.set(a.name, a.value);
    }
    return { streamId: f.streamId, frameId: f.frameId, vars };
  }

  close(): void {
    this.socket.destroy();
  }
}
