/**
 * The test side playing prox: spawns a plugin, talks NDJSON on its stdio and frames on its
 * hook socket, as the spec describes (one request per connection at a time).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import { decodePluginLine, type PluginLine, ProxFrameReader } from '../src/index.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/plugin.ts', import.meta.url));

/** A plugin child process and its stdout lines. */
export class PluginChild {
  readonly child: ChildProcess;
  readonly lines: PluginLine[] = [];
  readonly raw: string[] = [];
  stderr = '';
  private waiters: (() => void)[] = [];
  readonly exited: Promise<number | null>;

  constructor(args: string[], program = FIXTURE, env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, ['--import', 'tsx', program, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let buf = '';
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const text = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.raw.push(text);
        this.lines.push(decodePluginLine(text));
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      for (const w of this.waiters.splice(0)) w();
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  send(text: string): void {
    this.child.stdin?.write(text);
  }

  /** Waits until `check` holds over what the child wrote so far. */
  async until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${what}; stdout: ${this.raw.join(' | ')}; stderr: ${this.stderr}`,
        );
      }
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  /** Sends configure and resolves with the `ready` line that follows its ack. */
  async configure(line: string): Promise<Extract<PluginLine, { kind: 'ready' }>> {
    const from = this.lines.length;
    this.send(line);
    await this.until(() => this.lines.length >= from + 2, 'ok + ready');
    const [ack, ready] = this.lines.slice(from, from + 2);
    if (ack?.kind !== 'ack' || ack.result !== 'ok')
      throw new Error(`expected the ack, got ${this.raw[from]}`);
    if (ready?.kind !== 'ready') throw new Error(`expected ready, got ${this.raw[from + 1]}`);
    return ready;
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/** One hook socket connection, as prox's Caller uses it. */
export class HookConn {
  readonly socket: net.Socket;
  readonly frames: Uint8Array[] = [];
  closed = false;
  private readonly reader = new ProxFrameReader();
  private waiters: (() => void)[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk) => {
      this.frames.push(...this.reader.push(chunk));
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('error', () => {});
  }

  static open(path: string): Promise<HookConn> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ path });
      s.once('connect', () => resolve(new HookConn(s)));
      s.once('error', reject);
    });
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Writes a frame and resolves with the next answer frame. */
  async call(frame: Uint8Array, timeoutMs = 20_000): Promise<Uint8Array> {
    const from = this.frames.length;
    this.write(frame);
    await this.wait(() => this.frames.length > from || this.closed, timeoutMs);
    const answer = this.frames[from];
    if (answer === undefined) throw new Error('hook connection closed without an answer');
    return answer;
  }

  /** Resolves true when the connection closed within `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    await this.wait(() => this.closed, ms).catch(() => undefined);
    return this.closed;
  }

  /** Resolves once `check` holds; rejects after `ms`. */
  waitFor(check: () => boolean, ms = 20_000): Promise<void> {
    return this.wait(check, ms);
  }

  private async wait(check: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
