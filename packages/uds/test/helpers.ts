import * as net from 'node:net';
import { until } from '@picket/compliance';
import { type Frame, FrameDecoder } from '@picket/framing';
import { type AgentHandler, createCapabilities } from '@picket/protocol';

/** A raw socket speaking frames by hand: the test plays proxy or agent byte by byte. */
export class RawPeer {
  readonly frames: Frame[] = [];
  readonly decoder = new FrameDecoder({ acceptType: () => true });
  ended = false;
  private waiters: (() => void)[] = [];

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.decoder.push(chunk))
        this.frames.push({ type: f.type, payload: Buffer.from(f.payload) });
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static connect(path: string): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ path });
      s.once('connect', () => resolve(new RawPeer(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Waits for the n-th frame (0-based) received so far. */
  async frame(index: number, timeoutMs = 3000): Promise<Frame> {
    const end = Date.now() + timeoutMs;
    while (this.frames.length <= index) {
      if (this.ended) throw new Error(`connection closed before frame ${index}`);
      if (Date.now() > end) throw new Error(`no frame ${index} within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return this.frames[index] as Frame;
  }

  /** Waits until the peer closed the connection. */
  async closed(timeoutMs = 3000): Promise<void> {
    await until(() => this.ended, timeoutMs, 'peer to close');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A listener whose connections are handed to the test as RawPeers (a fake agent). */
export async function rawServer(path: string): Promise<{
  server: net.Server;
  peers: RawPeer[];
  next(): Promise<RawPeer>;
  close(): Promise<void>;
}> {
  const peers: RawPeer[] = [];
  let cursor = 0;
  const server = net.createServer((s) => peers.push(new RawPeer(s)));
  await new Promise<void>((r) => server.listen(path, () => r()));
  return {
    server,
    peers,
    /** the next connection not yet handed out */
    async next() {
      await until(() => peers.length > cursor, 3000, 'a connection');
      return peers[cursor++] as RawPeer;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const p of peers) p.destroy();
        server.close(() => r());
      }),
  };
}

/** One frame `[u32 BE 1+len][type][payload]`, built by hand (independent of @picket/framing). */
export function rawFrame(type: number, payload: Uint8Array | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload);
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(body.length + 1, 0);
  out[4] = type;
  body.copy(out, 5);
  return out;
}

/** Capabilities for test agents. */
export function testCapabilities(agentId = 'test-agent') {
  return createCapabilities({ agentId, name: 'Test Agent', version: '1.0.0' });
}

/** A handler with only capabilities plus the given hooks. */
export function handler(
  hooks: Omit<AgentHandler, 'capabilities'> = {},
  agentId = 'test-agent',
): AgentHandler {
  return { capabilities: () => testCapabilities(agentId), ...hooks };
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// golden(id): a spec frame as bytes; requestHeaders(cid, uri): the request of golden V3
export {
  captureLogger,
  goldenFrame as golden,
  goldenPayload,
  goldenRequestHeaders as requestHeaders,
  type LogEntry,
  tempSocket,
  until,
} from '@picket/compliance';
