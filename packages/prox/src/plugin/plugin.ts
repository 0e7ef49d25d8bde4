/**
 * A Node program as a prox plugin: NDJSON control on stdin/stdout, the hook socket in a private
 * 0700 directory, one sequential read → handle → write loop per hook connection.
 */
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import {
  type AgentHandler,
  AgentProtocolError,
  ErrorCode,
  escapeForLog,
  HANDLER_ERROR_BODY,
  HANDLER_ERROR_STATUS,
  jsonForLog,
  type Logger,
} from '@picket/protocol';
import { listenUnix, type SocketFile } from '@picket/protocol/internal';
import {
  decodeConnInfo,
  decodeDisconnectInfo,
  decodeEnvelope,
  decodeRequestInfo,
  decodeResponsePair,
  encodeAuthorizeResult,
  encodeConnResult,
  encodeResponseModResult,
} from '../wire/codec.js';
import {
  decodeHostLine,
  encodeLogLine,
  encodeReadyLine,
  encodeSetSpeedLine,
  encodeSetTargetsLine,
  OK_LINE,
  type ProxLogLevel,
  type PushTarget,
} from '../wire/control.js';
import { encodeProxFrame, ProxFrameReader } from '../wire/frame.js';
import { HOOK_NAMES, type HookName, HookType, type SpeedLimit } from '../wire/types.js';
import { type AgentHooksOptions, agentHooks } from './agent.js';
import type { ProxHookContext, ProxHooks } from './hooks.js';

/** Options of {@link serveProxPlugin}. */
export interface ProxPluginOptions {
  /** control input; default `process.stdin` */
  stdin?: Readable;
  /** control output, protocol lines only; default `process.stdout` */
  stdout?: Writable;
  /** where the private 0700 socket directory is made; default `os.tmpdir()` */
  socketDir?: string;
  /** the plugin's own log; default {@link stderrLogger} (stdout carries protocol only) */
  logger?: Logger;
  /**
   * Exit the process (code 0) once stdin ends and the socket is removed; also do that cleanup
   * on SIGTERM. Default: true when `stdin` is `process.stdin`.
   */
  exitOnEnd?: boolean;
  /** most hook connections open at once (prox has no cap; picket has); default 1024 */
  maxConnections?: number;
}

/** Longest stdin line kept; prox's are tiny, so a longer one is dropped with a warning. */
const MAX_STDIN_LINE = 1 << 20;
/** Frames queued on one connection before reading from it pauses (prox sends one at a time). */
const MAX_QUEUED_FRAMES = 8;

/** A logger writing `[component] LEVEL message {fields}` lines to stderr, escaped; debug only when `verbose`. */
export function stderrLogger(component = 'prox-plugin', o: { verbose?: boolean } = {}): Logger {
  const write =
    (level: string) =>
    (message: string, fields?: Record<string, unknown>): void => {
      const tail = fields === undefined ? '' : ` ${jsonForLog(fields)}`;
      process.stderr.write(`[${component}] ${level} ${escapeForLog(message)}${tail}\n`);
    };
  return {
    debug: o.verbose ? write('DEBUG') : () => {},
    info: write('INFO'),
    warn: write('WARN'),
    error: write('ERROR'),
  };
}

/** What one hook frame is answered with: bytes, nothing (keep the connection), or a close. */
type Outcome = Uint8Array | 'none' | 'close';

const PLUGIN_ERROR = { allow: false, status: 500, body: 'plugin error' } as const;
const HANDLER_ERROR = { allow: false, status: HANDLER_ERROR_STATUS, body: HANDLER_ERROR_BODY };

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A running prox plugin: its hook socket, its pushes, and its end. */
export class ProxPlugin {
  /** The hook socket prox is told in `ready`; undefined for a plugin without hooks (pushes only). */
  readonly socketPath: string | undefined;
  /** The hooks declared in `ready`, in the SDK's order. */
  readonly hooks: readonly HookName[];
  /** Resolves once the plugin stopped (stdin ended or close()) and its socket is removed. */
  readonly done: Promise<void>;

  private readonly stdin: Readable;
  private readonly stdout: Writable;
  private readonly logger: Logger;
  private readonly sockets = new Set<net.Socket>();
  private connections = 0;
  private closing: Promise<void> | undefined;
  private resolveDone!: () => void;
  private pending = Buffer.alloc(0);
  private dropping = false;
  private stdinListener: ((chunk: Buffer | string) => void) | undefined;

  private constructor(
    private readonly impl: ProxHooks,
    hooks: HookName[],
    private readonly server: net.Server | undefined,
    private readonly socketFile: SocketFile | undefined,
    private readonly socketDirPath: string | undefined,
    options: ProxPluginOptions,
  ) {
    this.hooks = hooks;
    this.socketPath = socketFile?.path;
    this.stdin = options.stdin ?? process.stdin;
    this.stdout = options.stdout ?? process.stdout;
    this.logger = options.logger ?? stderrLogger();
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    // prox gone: writes fail with EPIPE; stdin's end follows and stops the plugin.
    this.stdout.on('error', (err) => this.logger.warn('stdout failed', { error: message(err) }));
    server?.on('connection', (socket) => this.onConnection(socket));
  }

  /** Opens the hook socket (when there are hooks), then reads stdin. See {@link serveProxPlugin}. */
  static async start(impl: ProxHooks, options: ProxPluginOptions = {}): Promise<ProxPlugin> {
    const logger = options.logger ?? stderrLogger();
    const hooks = (
      [
        ['on_request', impl.onRequest],
        ['on_response', impl.onResponse],
        ['on_connect', impl.onConnect],
        ['on_disconnect', impl.onDisconnect],
      ] as const
    )
      .filter(([, fn]) => typeof fn === 'function')
      .map(([name]) => name);
    let server: net.Server | undefined;
    let file: SocketFile | undefined;
    let dir: string | undefined;
    if (hooks.length > 0) {
      // As the SDK, the socket exists before stdin is read; unlike it, in a private directory.
      dir = await fsp.mkdtemp(join(options.socketDir ?? tmpdir(), 'prox-p-'));
      server = net.createServer();
      server.maxConnections = options.maxConnections ?? 1024;
      try {
        file = await listenUnix(server, join(dir, 'hooks.sock'), { mode: 0o600, logger });
      } catch (err) {
        await fsp.rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
    const plugin = new ProxPlugin(impl, hooks, server, file, dir, { ...options, logger });
    plugin.readStdin();
    return plugin;
  }

  // ------------------------------------------------------------- control plane

  private readStdin(): void {
    const onData = (chunk: Buffer | string): void => {
      let buf = Buffer.concat([
        this.pending,
        typeof chunk === 'string' ? Buffer.from(chunk) : chunk,
      ]);
      for (let nl = buf.indexOf(0x0a); nl >= 0; nl = buf.indexOf(0x0a)) {
        const line = buf.subarray(0, nl);
        buf = buf.subarray(nl + 1);
        if (this.dropping) this.dropping = false;
        else this.onLine(line.toString('utf8'));
      }
      if (buf.length > MAX_STDIN_LINE) {
        if (!this.dropping) this.logger.warn(`stdin line over ${MAX_STDIN_LINE} bytes dropped`);
        this.dropping = true;
        buf = Buffer.alloc(0);
      }
      this.pending = Buffer.from(buf);
    };
    const onEnd = (): void => {
      if (this.pending.length > 0 && !this.dropping) this.onLine(this.pending.toString('utf8'));
      this.pending = Buffer.alloc(0);
      void this.close();
    };
    this.stdinListener = onData;
    this.stdin.on('data', onData);
    this.stdin.once('end', onEnd);
    this.stdin.once('error', (err) => {
      this.logger.warn('stdin failed; stopping', { error: message(err) });
      void this.close();
    });
  }

  private onLine(text: string): void {
    const line = decodeHostLine(text);
    switch (line.kind) {
      case 'empty':
        return;
      case 'invalid':
        this.logger.warn('ignoring a control line', { reason: line.reason });
        return;
      case 'unknown':
        this.logger.warn('ignoring an unknown control method', { method: line.method });
        return;
      case 'configure': {
        // The acknowledgement first, then ready — only when there is a hook socket.
        this.write(OK_LINE);
        if (this.socketPath !== undefined) this.write(encodeReadyLine(this.socketPath, this.hooks));
        const ctx = this.context('control', new AbortController().signal);
        Promise.resolve()
          .then(() => this.impl.onConfigure?.(line.params, ctx))
          .catch((err: unknown) =>
            this.logger.warn('onConfigure failed', {
              routeId: line.params.routeId,
              error: message(err),
            }),
          );
      }
    }
  }

  private write(text: string): void {
    if (this.closing !== undefined || this.stdout.destroyed) return;
    this.stdout.write(text);
  }

  private target(target: string | PushTarget): PushTarget {
    return typeof target === 'string' ? { routeId: target } : target;
  }

  /**
   * `set_targets`: replaces the targets of a route (`"*"`: every route with a balancer), or with
   * `{ action }` of every route of an action; an object of key → list sets grouped targets.
   */
  setTargets(
    target: string | PushTarget,
    targets: readonly string[] | Readonly<Record<string, readonly string[]>>,
  ): void {
    this.write(encodeSetTargetsLine(this.target(target), targets));
  }

  /** `set_speed` (newer prox): a speed limit for a route (`"*"`: all) or `{ action }`. */
  setSpeedLimit(target: string | PushTarget, limit: Partial<SpeedLimit>): void {
    this.write(encodeSetSpeedLine(this.target(target), limit));
  }

  /** `log` (newer prox): a line in prox's own log; `args` are key, value pairs. */
  log(level: ProxLogLevel, text: string, ...args: unknown[]): void {
    this.write(encodeLogLine(level, text, args));
  }

  /** A Logger whose lines go to prox's log through `log` pushes (fields become key, value args). */
  proxLogger(): Logger {
    const at =
      (level: ProxLogLevel) =>
      (text: string, fields?: Record<string, unknown>): void => {
        const args = Object.entries(fields ?? {}).flat();
        try {
          this.log(level, text, ...args);
        } catch (err) {
          this.logger.warn('log push failed', { error: message(err) });
        }
      };
    return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  }

  // ------------------------------------------------------------- data plane

  private context(connectionId: string, signal: AbortSignal): ProxHookContext {
    return { connectionId, signal, logger: this.logger };
  }

  private onConnection(socket: net.Socket): void {
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    const id = `hook-${++this.connections}`;
    this.sockets.add(socket);
    const reader = new ProxFrameReader();
    const queue: Uint8Array[] = [];
    const abort = new AbortController();
    const ctx = this.context(id, abort.signal);
    let busy = false;

    const drop = (why: string, err?: unknown): void => {
      this.logger.warn(`closing hook connection: ${why}`, {
        connectionId: id,
        ...(err === undefined ? {} : { error: message(err) }),
      });
      queue.length = 0;
      socket.destroy();
    };

    const pump = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      try {
        for (let payload = queue.shift(); payload !== undefined; payload = queue.shift()) {
          const outcome = await this.handle(payload, ctx);
          if (socket.destroyed) return;
          if (outcome === 'close') return drop('bad envelope');
          if (outcome !== 'none' && !socket.write(encodeProxFrame(outcome))) {
            // A peer that sends without reading: stop handling its frames until it reads.
            await new Promise<void>((resolve) => {
              const done = (): void => {
                socket.off('drain', done);
                socket.off('close', done);
                resolve();
              };
              socket.on('drain', done);
              socket.on('close', done);
            });
          }
        }
        if (socket.isPaused()) socket.resume();
      } catch (err) {
        drop('internal error', err);
      } finally {
        busy = false;
      }
    };

    socket.on('data', (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        return drop('bad frame', err);
      }
      queue.push(...frames);
      if (queue.length >= MAX_QUEUED_FRAMES) socket.pause();
      void pump();
    });
    socket.on('end', () => {
      try {
        reader.end();
      } catch (err) {
        drop('truncated frame', err);
      }
    });
    socket.on('error', (err) =>
      this.logger.debug('hook connection error', { connectionId: id, error: message(err) }),
    );
    socket.on('close', () => {
      this.sockets.delete(socket);
      abort.abort(new AgentProtocolError(ErrorCode.ConnectionClosed, 'hook connection closed'));
    });
  }

  /** Answers one envelope. Never allows what it cannot decode or what failed. */
  private async handle(payload: Uint8Array, ctx: ProxHookContext): Promise<Outcome> {
    let env: { hook: number; data: Uint8Array };
    try {
      env = decodeEnvelope(payload);
    } catch (err) {
      this.logger.warn('undecodable envelope', {
        connectionId: ctx.connectionId,
        error: message(err),
      });
      return 'close';
    }
    const name = HOOK_NAMES[env.hook as HookType] as HookName | undefined;
    if (name === undefined || !this.hooks.includes(name)) {
      // As the SDK: logged, not answered (prox times out and fails closed). Never an allow.
      this.logger.warn('hook not served; not answered', {
        connectionId: ctx.connectionId,
        hook: env.hook,
      });
      return 'none';
    }
    const impl = this.impl;
    switch (env.hook) {
      case HookType.Request: {
        let req: ReturnType<typeof decodeRequestInfo>;
        try {
          req = decodeRequestInfo(env.data);
        } catch (err) {
          this.logger.warn('undecodable on_request payload; deny 500', { error: message(err) });
          return encodeAuthorizeResult(PLUGIN_ERROR);
        }
        return this.answer(
          'on_request',
          ctx,
          encodeAuthorizeResult,
          HANDLER_ERROR,
          async () => (await impl.onRequest?.(req, ctx)) ?? { allow: true },
        );
      }
      case HookType.Response: {
        let pair: ReturnType<typeof decodeResponsePair>;
        try {
          pair = decodeResponsePair(env.data);
        } catch (err) {
          this.logger.warn('undecodable on_response payload; no change', { error: message(err) });
          return encodeResponseModResult({});
        }
        return this.answer(
          'on_response',
          ctx,
          encodeResponseModResult,
          { status: 500 },
          async () => (await impl.onResponse?.(pair.req, pair.resp, ctx)) ?? {},
        );
      }
      case HookType.Connect: {
        let conn: ReturnType<typeof decodeConnInfo>;
        try {
          conn = decodeConnInfo(env.data);
        } catch (err) {
          this.logger.warn('undecodable on_connect payload; deny', { error: message(err) });
          return encodeConnResult({ allow: false });
        }
        return this.answer(
          'on_connect',
          ctx,
          encodeConnResult,
          { allow: false },
          async () => (await impl.onConnect?.(conn, ctx)) ?? { allow: true },
        );
      }
      default: {
        // on_disconnect: fire-and-forget. Any reply would corrupt the next call on this connection.
        try {
          const info = decodeDisconnectInfo(env.data);
          await impl.onDisconnect?.(info, ctx);
        } catch (err) {
          this.logger.warn('on_disconnect failed', { error: message(err) });
        }
        return 'none';
      }
    }
  }

  /** Runs a hook and encodes its answer; a throw or an unencodable answer becomes `failure`. */
  private async answer<T>(
    hook: HookName,
    ctx: ProxHookContext,
    encode: (v: T) => Uint8Array,
    failure: T,
    run: () => Promise<T>,
  ): Promise<Uint8Array> {
    try {
      return encode(await run());
    } catch (err) {
      this.logger.warn(`${hook} hook failed; answering deny`, {
        connectionId: ctx.connectionId,
        error: message(err),
      });
      return encode(failure);
    }
  }

  /**
   * Stops: no more stdin, the socket file removed (only while it is still ours), the hook
   * connections closed, the private directory deleted. Idempotent; resolves with `done`.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.stdinListener !== undefined) this.stdin.off('data', this.stdinListener);
      this.stdin.pause();
      await this.socketFile?.remove();
      for (const s of this.sockets) s.destroy();
      if (this.server !== undefined) {
        const server = this.server;
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      if (this.socketDirPath !== undefined) {
        await fsp.rm(this.socketDirPath, { recursive: true, force: true });
      }
      this.resolveDone();
    })();
    return this.closing;
  }
}

/**
 * Runs `hooks` as a prox plugin: opens the hook socket (when there is at least one hook) in a
 * fresh 0700 directory, then answers each `configure` on stdin with `{"result":"ok"}` and
 * `ready{socket, hooks}`, serves the hook socket, and stops when stdin ends (by default also
 * exiting the process). Resolves once the socket listens.
 */
export async function serveProxPlugin(
  hooks: ProxHooks,
  options: ProxPluginOptions = {},
): Promise<ProxPlugin> {
  const plugin = await ProxPlugin.start(hooks, options);
  const stdin = options.stdin ?? process.stdin;
  if (options.exitOnEnd ?? stdin === process.stdin) {
    const stop = (): void => {
      void plugin.close();
    };
    process.once('SIGTERM', stop);
    void plugin.done.then(() => {
      const stdout = options.stdout ?? process.stdout;
      // Flush what is queued on stdout, then go: prox waits for the exit with no timeout.
      if (stdout.writable) stdout.write('', () => process.exit(0));
      else process.exit(0);
    });
  }
  return plugin;
}

/** Runs any picket AgentHandler as a prox plugin through the mapping of {@link agentHooks}. */
export function serveAgentAsProxPlugin(
  handler: AgentHandler,
  options: ProxPluginOptions & AgentHooksOptions = {},
): Promise<ProxPlugin> {
  return serveProxPlugin(agentHooks(handler, options), options);
}
