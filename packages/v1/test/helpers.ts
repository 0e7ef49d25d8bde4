import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { encodeV1Frame, V1FrameDecoder } from '@picket/framing';
import { AgentProtocolError, type RequestHeadersEvent } from '@picket/protocol';
import type { LogFields, Logger } from '../src/index.js';

/** Vector V10a (spec Part B): the v1 AgentRequest frame for `/admin/secret`. */
export const V10A_FRAME_HEX =
  '000001897b2276657273696f6e223a312c226576656e745f74797065223a22726571756573745f68656164657273222c227061796c6f6164223a7b2268656164657273223a7b22686f7374223a5b226578616d706c652e636f6d225d7d2c226d65746164617461223a7b22636c69656e745f6970223a223132372e302e302e31222c22636c69656e745f706f7274223a35343332312c22636f7272656c6174696f6e5f6964223a227265712d31222c2270726f746f636f6c223a22485454502f312e31222c22726571756573745f6964223a227265712d31222c22726f7574655f6964223a2264656661756c74222c227365727665725f6e616d65223a226578616d706c652e636f6d222c2274696d657374616d70223a22323032362d30312d30315430303a30303a30305a222c22746c735f636970686572223a6e756c6c2c22746c735f76657273696f6e223a6e756c6c2c22757073747265616d5f6964223a6e756c6c7d2c226d6574686f64223a22474554222c22757269223a222f61646d696e2f736563726574227d7d';

/** Vector V10b: the DenylistAgent's v1 AgentResponse frame for `/admin/secret`. */
export const V10B_FRAME_HEX =
  '0000017a7b2276657273696f6e223a312c226465636973696f6e223a7b22626c6f636b223a7b22737461747573223a3430332c22626f6479223a22466f7262696464656e2070617468222c2268656164657273223a6e756c6c7d7d2c22726571756573745f68656164657273223a5b5d2c22726573706f6e73655f68656164657273223a5b5d2c22726f7574696e675f6d65746164617461223a7b7d2c226175646974223a7b2274616773223a5b2264656e796c697374222c22626c6f636b65645f70617468225d2c2272756c655f696473223a5b5d2c22636f6e666964656e6365223a6e756c6c2c22726561736f6e5f636f646573223a5b22504154485f424c4f434b4544225d2c22637573746f6d223a7b7d7d2c226e656564735f6d6f7265223a66616c73652c22726571756573745f626f64795f6d75746174696f6e223a6e756c6c2c22726573706f6e73655f626f64795f6d75746174696f6e223a6e756c6c2c22776562736f636b65745f6465636973696f6e223a6e756c6c7d';

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The event vector V10a encodes. */
export function v10aEvent(): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: 'req-1',
      request_id: 'req-1',
      client_ip: '127.0.0.1',
      client_port: 54321,
      server_name: 'example.com',
      protocol: 'HTTP/1.1',
      tls_version: null,
      tls_cipher: null,
      route_id: 'default',
      upstream_id: null,
      timestamp: '2026-01-01T00:00:00Z',
    },
    method: 'GET',
    uri: '/admin/secret',
    headers: { host: ['example.com'] },
  };
}

/** A request-headers event with its own correlation id and path. */
export function headersEvent(correlationId: string, uri = '/'): RequestHeadersEvent {
  const e = v10aEvent();
  e.metadata.correlation_id = correlationId;
  e.metadata.request_id = correlationId;
  e.uri = uri;
  return e;
}

const dirs: string[] = [];

/** A socket path in a fresh private temp dir (removed by `cleanupDirs`). */
export function socketPath(name = 'agent.sock'): string {
  const dir = fs.mkdtempSync(`${os.tmpdir()}/picket-`);
  dirs.push(dir);
  return nodePath.join(dir, name);
}

export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: LogFields | undefined;
}

/** A logger that records every line. */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (message: string, fields?: LogFields): void => {
      lines.push({ level, message, fields });
    };
  return {
    lines,
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
  };
}

/** Waits until `check()` holds (a hang guard, not a timing assertion). */
export async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolves with the AgentProtocolError a promise rejects with. */
export async function rejection(p: Promise<unknown>): Promise<AgentProtocolError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AgentProtocolError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

/** A raw socket peer that reads v1 frames one at a time. */
export class RawPeer {
  private readonly decoder = new V1FrameDecoder();
  private readonly frames: Uint8Array[] = [];
  private waiters: (() => void)[] = [];
  readonly received: Buffer[] = [];
  closed = false;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received.push(chunk);
      for (const f of this.decoder.push(chunk)) this.frames.push(new Uint8Array(f));
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static connect(path: string): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ path });
      s.once('connect', () => resolve(new RawPeer(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The next frame's payload, or undefined when the socket closed first. */
  async next(ms = 5000): Promise<Uint8Array | undefined> {
    const end = Date.now() + ms;
    for (;;) {
      const f = this.frames.shift();
      if (f !== undefined) return f;
      if (this.closed) return undefined;
      if (Date.now() > end) throw new Error('timed out waiting for a frame');
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async nextJson(ms?: number): Promise<Record<string, unknown>> {
    const f = await this.next(ms);
    if (f === undefined) throw new Error('socket closed before a frame arrived');
    return JSON.parse(Buffer.from(f).toString('utf8')) as Record<string, unknown>;
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  writeJson(value: unknown): void {
    this.socket.write(encodeV1Frame(utf8(JSON.stringify(value))));
  }

  /** Resolves once the other side has closed. */
  async waitClosed(ms = 5000): Promise<void> {
    await until(() => this.closed, 'the connection to close', ms);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A fake agent: a plain Unix-socket server handing each connection to `onPeer`. */
export async function rawAgent(
  path: string,
  onPeer: (peer: RawPeer) => void,
): Promise<{ peers: RawPeer[]; close(): Promise<void> }> {
  const peers: RawPeer[] = [];
  const server = net.createServer((s) => {
    const p = new RawPeer(s);
    peers.push(p);
    onPeer(p);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    peers,
    close: async () => {
      for (const p of peers) p.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A minimal valid v1 response with the given version. */
export function responseJson(version: number, tag = 'ok'): Record<string, unknown> {
  return { version, decision: 'allow', audit: { tags: [tag] } };
}
