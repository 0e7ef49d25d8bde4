import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { goldenFrame, goldenRequestHeaders } from '@picket/compliance';
import { encodeV1Frame, V1FrameDecoder } from '@picket/framing';
import { type AgentHandler, AgentProtocolError, type RequestHeadersEvent } from '@picket/protocol';
import { AgentServer, type AgentServerOptions, type LogFields, type Logger } from '../src/index.js';

/** Vector V10a (spec Part B): the v1 AgentRequest frame for `/admin/secret`, as hex. */
export const V10A_FRAME_HEX = goldenFrame('V10a').toString('hex');

/** Vector V10b: the DenylistAgent's v1 AgentResponse frame for `/admin/secret`, as hex. */
export const V10B_FRAME_HEX = goldenFrame('V10b').toString('hex');

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The event vector V10a encodes. */
export function v10aEvent(): RequestHeadersEvent {
  return goldenRequestHeaders();
}

/** A request-headers event with its own correlation id and path. */
export function headersEvent(correlationId: string, uri = '/'): RequestHeadersEvent {
  return goldenRequestHeaders(correlationId, uri);
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

const closers: (() => Promise<void>)[] = [];

/** Registers cleanup for the running test; {@link closeAll} (each file's afterEach) runs it. */
export function onClose(close: () => Promise<void>): void {
  closers.push(close);
}

/** Runs the registered cleanups, newest first, and removes the temp dirs. */
export async function closeAll(): Promise<void> {
  for (const c of closers.splice(0).reverse()) await c();
  cleanupDirs();
}

/** A v1 AgentServer `srv` on a fresh socket path with a capturing logger, closed after the test; not started. */
export function makeServer(handler: AgentHandler, options: AgentServerOptions = {}) {
  const path = socketPath();
  const log = captureLogger();
  const server = new AgentServer('srv', path, handler, { logger: log.logger, ...options });
  onClose(() => server.close());
  return { path, server, log };
}

/** {@link makeServer}, running. */
export async function startServer(handler: AgentHandler, options: AgentServerOptions = {}) {
  const made = makeServer(handler, options);
  await made.server.run();
  return made;
}

/** A raw v1 peer connected to `path`, destroyed after the test. */
export async function connectPeer(path: string): Promise<RawPeer> {
  const p = await RawPeer.connect(path);
  onClose(async () => p.destroy());
  return p;
}
