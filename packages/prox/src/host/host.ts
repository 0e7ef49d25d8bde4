/**
 * One prox plugin process run for picket: spawned and restarted by a @picket/supervisor
 * Supervisor, told `configure` for each route binding on every start, ready when it answers
 * `ready{socket, hooks}`, and called through a {@link PluginCaller} on that socket. Every new
 * `ready` replaces the caller (the old one finishes its calls and closes). The plugin's pushes
 * (`set_targets`, `set_speed`, `log`) become typed events.
 */
import { EventEmitter } from 'node:events';
import { lstatSync, type Stats } from 'node:fs';
import { isAbsolute } from 'node:path';
import {
  AgentProtocolError,
  createConsoleLogger,
  ErrorCode,
  escapeForLog,
  jsonForLog,
  type Logger,
} from '@picket/protocol';
import { checkSocketPathLength, describeNodeError } from '@picket/protocol/internal';
import {
  type ReadyCheck,
  type SupervisedChild,
  Supervisor,
  type SupervisorBackoff,
  type SupervisorStats,
} from '@picket/supervisor';
import {
  decodeAuthorizeResult,
  decodeConnResult,
  decodeResponseModResult,
  encodeConnInfo,
  encodeDisconnectInfo,
  encodeEnvelope,
  encodeRequestInfo,
  encodeResponsePair,
} from '../wire/codec.js';
import { decodePluginLine, encodeConfigureLine } from '../wire/control.js';
import {
  type AuthorizeResult,
  type ConnInfoInput,
  type ConnResult,
  type DisconnectInfoInput,
  HOOK_TYPES,
  type HookName,
  type RequestInfoInput,
  type ResponseModResult,
  type ResponsePairInput,
} from '../wire/types.js';
import { PluginCaller, type PluginCallerStats, type PluginCallOptions } from './caller.js';

/** One route the plugin is bound to: what `configure` tells it. */
export interface ProxRouteBinding {
  /** `route_id` (prox: `service:index`); `""` for an autostart plugin */
  routeId: string;
  /** the route's match; absent for autostart (no `match` is sent) */
  match?: { domain?: string; path?: string };
}

/** Settings of a {@link ProxPluginHost}. */
export interface ProxPluginHostOptions {
  /** names the plugin in logs, errors and the supervisor's metrics */
  name: string;
  /** argv of the plugin (`command[0]` is the program) */
  command: readonly string[];
  /** merged over `process.env`; `undefined` removes a variable */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /**
   * One `configure` per binding, on every start of the plugin (default one binding with
   * route id `""` and no match, as prox configures an autostart plugin).
   */
  routes?: readonly ProxRouteBinding[];
  /**
   * The plugin must send `ready` this long (ms) after it was spawned (default 10 000);
   * otherwise it is killed and restarted, and {@link ProxPluginHost.start} rejects.
   */
  readyTimeoutMs?: number;
  /**
   * The plugin only pushes targets and never sends `ready` (prox's SDK sends none when no
   * hook is registered): it counts as ready once its `configure` lines are written, and
   * every event is answered allow without a call.
   */
  targetsOnly?: boolean;
  /** deadline of one hook call in ms (default 5 000, prox's) */
  callTimeoutMs?: number;
  /** idle socket connections kept (default 16, prox's) */
  maxIdleConnections?: number;
  /** socket connections open at once (default 64); more calls wait in a FIFO queue */
  maxConnections?: number;
  /** stop escalation step of the supervisor (ms, default 5 000) */
  stopGraceMs?: number;
  /** restart delays of the supervisor (never gives up) */
  backoff?: SupervisorBackoff;
  /** longest stdout line (bytes; the supervisor's, default 1 MiB): longer kills and restarts the plugin */
  stdoutLineLimit?: number;
  /** where the plugin's stderr, its `log` pushes and problems go (default: console, warnings and errors) */
  logger?: Logger;
  /** the owner's lifetime: aborting stops the plugin */
  signal?: AbortSignal;
}

/** What a `ready` declared. */
export interface ProxReadyInfo {
  socket: string;
  /** the hooks the host will call (names it does not know are left out) */
  hooks: HookName[];
  /** the plugin's pid and supervisor generation */
  pid: number;
  generation: number;
}

/** A `set_targets` push: a full replacement for a route (`"*"`: every route) or an action. */
export interface ProxTargetsPush {
  /** `route_id` (`""` when the push names an action) */
  routeId: string;
  /** `action` (`""` when the push names a route) */
  action: string;
  /** the targets (`host:port`), when not grouped */
  targets: string[];
  /** grouped targets (key → list), for keyed balancers */
  groups: Record<string, string[]>;
}

/** A `set_speed` push. */
export interface ProxSpeedPush {
  routeId: string;
  action: string;
  downloadMbps: number;
  uploadMbps: number;
  groupKey: string;
}

/** A `log` push (also written to the logger, escaped). */
export interface ProxLogPush {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  args: unknown[];
}

/** Events of a {@link ProxPluginHost}. */
export interface ProxHostEventMap {
  /** the plugin sent `ready`: calls go to this socket now */
  ready: [info: ProxReadyInfo];
  /** the plugin is gone (exited, or stopped): calls fail until the next `ready` */
  unready: [reason: string];
  targets: [push: ProxTargetsPush];
  speed: [push: ProxSpeedPush];
  log: [push: ProxLogPush];
  /** the supervisor stopped for good (stop(), or the owner's signal): the host is finished */
  stopped: [];
}

/** Numbers of a {@link ProxPluginHost}. */
export interface ProxPluginHostStats {
  supervisor: SupervisorStats;
  /** the current socket pool, when ready */
  connections?: PluginCallerStats;
  /** `ready` lines received (each replaces the connection pool) */
  readies: number;
}

const KNOWN_HOOKS = new Set<string>(Object.keys(HOOK_TYPES));
const LOG_LEVELS = new Set(['debug', 'info', 'warn', 'error']);
const DEFAULT_READY_TIMEOUT_MS = 10_000;
const DEFAULT_CALL_TIMEOUT_MS = 5_000;

/** The plugin process, its control lines and its socket pool. */
export class ProxPluginHost extends EventEmitter<ProxHostEventMap> {
  readonly name: string;
  readonly command: readonly string[];
  readonly supervisor: Supervisor;
  readonly readyTimeoutMs: number;
  readonly #o: ProxPluginHostOptions;
  readonly #log: Logger;
  #routes: readonly ProxRouteBinding[];
  #child: SupervisedChild | undefined;
  #caller: PluginCaller | undefined;
  #hooks: ReadonlySet<HookName> = new Set();
  #ready: ProxReadyInfo | undefined;
  #readies = 0;
  /** what kept the latest child from becoming ready, for the start() error */
  #lastProblem: string | undefined;
  /** an unusable `ready` of a child still running */
  #readyProblem: { child: SupervisedChild; text: string } | undefined;
  #lastTargets = new Map<string, ProxTargetsPush>();
  #starting: Promise<void> | undefined;
  #stopped = false;

  constructor(o: ProxPluginHostOptions) {
    super();
    if (!Array.isArray(o.command) || o.command.length === 0 || typeof o.command[0] !== 'string') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `prox plugin "${o.name}": command must be a non-empty argv array`,
      );
    }
    this.name = o.name;
    this.command = [...o.command];
    this.#o = o;
    this.#log = o.logger ?? createConsoleLogger(`prox ${o.name}`);
    this.#routes = checkRoutes(o.routes ?? [{ routeId: '' }], o.name);
    this.readyTimeoutMs = o.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    this.supervisor = new Supervisor({
      name: o.name,
      command: this.command,
      ...(o.env !== undefined && { env: o.env }),
      ...(o.cwd !== undefined && { cwd: o.cwd }),
      ready: this.#readyCheck,
      readyTimeoutMs: this.readyTimeoutMs,
      ...(o.stopGraceMs !== undefined && { stopGraceMs: o.stopGraceMs }),
      ...(o.backoff !== undefined && { backoff: o.backoff }),
      ...(o.stdoutLineLimit !== undefined && { stdoutLineLimit: o.stdoutLineLimit }),
      logger: this.#log,
      ...(o.signal !== undefined && { signal: o.signal }),
    });
    this.supervisor.on('state', (state) => {
      if (state !== 'stopped') return;
      if (!this.#stopped) {
        this.#stopped = true;
        this.#unready('stopped');
      }
      this.emit('stopped');
    });
    this.supervisor.on('exit', (child, exit) => {
      const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
      // a bad ready got it killed: that is the news, the kill is the consequence
      const earlier = this.#readyProblem?.child === child ? this.#readyProblem.text : undefined;
      this.#lastProblem = earlier ?? `the plugin ${how}`;
      this.#childGone(child, `pid ${child.pid} ${how}`);
    });
  }

  /** The deadline of one hook call in ms. */
  get callTimeoutMs(): number {
    return this.#o.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  }

  /** True while a `ready` socket is in use (or the plugin is targets-only and running). */
  get ready(): boolean {
    return this.#ready !== undefined;
  }

  /** What the latest `ready` declared; undefined while not ready. */
  get readyInfo(): ProxReadyInfo | undefined {
    return this.#ready;
  }

  /** The hooks the latest `ready` declared (kept while the plugin restarts). */
  get hooks(): ReadonlySet<HookName> {
    return this.#hooks;
  }

  /** Whether the plugin declared `hook`. */
  has(hook: HookName): boolean {
    return this.#hooks.has(hook);
  }

  /** The route bindings `configure` tells the plugin. */
  get routes(): readonly ProxRouteBinding[] {
    return this.#routes;
  }

  /** The latest `set_targets` push for each route id (`route:<id>`) and action (`action:<name>`). */
  get lastTargets(): ReadonlyMap<string, ProxTargetsPush> {
    return this.#lastTargets;
  }

  /**
   * Starts the plugin and resolves once it sent `ready`. Rejects TIMEOUT (and stops the
   * plugin) when no `ready` came within `readyTimeoutMs`, naming what went wrong meanwhile
   * (an exit, a bad `ready`); rejects when stopped first. Idempotent.
   */
  start(): Promise<void> {
    this.#starting ??= new Promise<void>((resolve, reject) => {
      const ms = this.readyTimeoutMs;
      const timer = setTimeout(() => {
        const why = this.#lastProblem === undefined ? '' : ` (${this.#lastProblem})`;
        reject(
          new AgentProtocolError(
            ErrorCode.Timeout,
            `prox plugin "${this.name}" (${this.command.join(' ')}) did not send ready within ${ms} ms after configure${why}`,
          ),
        );
        void this.stop();
      }, ms);
      this.supervisor.start().then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
    return this.#starting;
  }

  /** Stops the plugin (the supervisor's bounded stop) and closes the socket pool. Idempotent. */
  async stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#unready('stopped');
    }
    await this.supervisor.stop();
  }

  /** New route bindings: each gets a `configure` now and on every restart (prox's reload). */
  configure(routes: readonly ProxRouteBinding[]): void {
    this.#routes = checkRoutes(routes, this.name);
    const child = this.#child;
    if (child) this.#writeConfigure(child);
  }

  stats(): ProxPluginHostStats {
    const s: ProxPluginHostStats = { supervisor: this.supervisor.stats(), readies: this.#readies };
    if (this.#caller) s.connections = this.#caller.stats();
    return s;
  }

  /** `on_request`. Rejects when the plugin is not ready, did not declare it, or the call failed. */
  onRequest(info: RequestInfoInput, o?: PluginCallOptions): Promise<AuthorizeResult> {
    return this.#call('on_request', encodeRequestInfo(info), decodeAuthorizeResult, o);
  }

  /** `on_response`. */
  onResponse(pair: ResponsePairInput, o?: PluginCallOptions): Promise<ResponseModResult> {
    return this.#call('on_response', encodeResponsePair(pair), decodeResponseModResult, o);
  }

  /** `on_connect` (L4: picket has no event for it; call it directly). */
  onConnect(info: ConnInfoInput, o?: PluginCallOptions): Promise<ConnResult> {
    return this.#call('on_connect', encodeConnInfo(info), decodeConnResult, o);
  }

  /** `on_disconnect`: fire-and-forget; dropped when the plugin is not ready or did not declare it. */
  onDisconnect(info: DisconnectInfoInput): void {
    const caller = this.#caller;
    if (!caller || !this.#hooks.has('on_disconnect')) return;
    caller.fire(
      'on_disconnect',
      encodeEnvelope(HOOK_TYPES.on_disconnect, encodeDisconnectInfo(info)),
    );
  }

  #call<T>(
    hook: HookName,
    payload: Uint8Array,
    decode: (b: Uint8Array) => T,
    o?: PluginCallOptions,
  ): Promise<T> {
    const caller = this.#caller;
    if (!caller) {
      const why = this.#stopped
        ? 'is stopped'
        : `is not ready${this.#lastProblem ? ` (${this.#lastProblem})` : ''}`;
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.Unavailable,
          `prox plugin "${this.name}" ${why}: ${hook} not sent`,
          {
            sent: false,
          },
        ),
      );
    }
    if (!this.#hooks.has(hook)) {
      return Promise.reject(
        new AgentProtocolError(
          ErrorCode.Unsupported,
          `prox plugin "${this.name}" did not declare ${hook} in its ready`,
          { sent: false },
        ),
      );
    }
    const frame = encodeEnvelope(HOOK_TYPES[hook], payload);
    const started = performance.now();
    return caller.call(hook, frame, decode, o).catch((err: unknown) => {
      // A newer ready replaced the pool while the call waited for a connection: it was never
      // sent, so it moves to the new pool once, with what is left of its deadline.
      const next = this.#caller;
      const e = err as AgentProtocolError;
      if (
        next === undefined ||
        next === caller ||
        e.code !== ErrorCode.Unavailable ||
        e.sent !== false
      ) {
        throw err;
      }
      const left = (o?.timeoutMs ?? caller.timeoutMs) - (performance.now() - started);
      return next.call(hook, frame, decode, { ...o, timeoutMs: Math.max(1, left) });
    });
  }

  /** The supervisor's ready check: configure, then wait for `ready`; the lines keep flowing after it. */
  readonly #readyCheck: ReadyCheck = (child, signal) =>
    new Promise<void>((resolve, reject) => {
      this.#child = child;
      let settled = false;
      const done = (err?: Error): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = (): void =>
        done(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
      signal.addEventListener('abort', onAbort, { once: true });
      const off = child.onStdoutLine((line) => {
        const problem = this.#onLine(child, line);
        if (problem === 'ready') done();
        else if (problem !== undefined && !settled) {
          this.#lastProblem = problem;
          this.#readyProblem = { child, text: problem };
          done(new Error(problem));
        }
      });
      void child.exited.then(off);
      this.#writeConfigure(child);
      if (this.#o.targetsOnly) {
        this.#becomeReady(child, undefined);
        done();
      }
    });

  #writeConfigure(child: SupervisedChild): void {
    for (const r of this.#routes) {
      const params: { routeId: string; match?: { domain: string; path: string } } = {
        routeId: r.routeId,
      };
      if (r.match !== undefined)
        params.match = { domain: r.match.domain ?? '', path: r.match.path ?? '' };
      child.stdin.write(encodeConfigureLine(params));
    }
  }

  /**
   * One stdout line of `child`. Returns `'ready'` after a usable `ready`, a problem text after a
   * `ready` that cannot be used, undefined otherwise.
   */
  #onLine(child: SupervisedChild, text: string): string | undefined {
    if (child !== this.#child) return undefined; // an old generation's last words
    const line = decodePluginLine(text);
    switch (line.kind) {
      case 'ready': {
        const problem = readyProblem(line.socket);
        if (problem !== undefined) {
          this.#log.error(`prox plugin "${this.name}": unusable ready: ${escapeForLog(problem)}`);
          return problem;
        }
        const hooks: HookName[] = [];
        for (const h of line.hooks) {
          if (KNOWN_HOOKS.has(h)) {
            if (!hooks.includes(h as HookName)) hooks.push(h as HookName);
          } else
            this.#log.warn(
              `prox plugin "${this.name}": unknown hook ${jsonForLog(h)} in ready ignored`,
            );
        }
        this.#becomeReady(child, { socket: line.socket, hooks });
        return 'ready';
      }
      case 'set_targets': {
        const push: ProxTargetsPush = {
          routeId: line.routeId,
          action: line.action,
          targets: line.targets,
          groups: line.groups,
        };
        if (push.routeId === '' && push.action === '') {
          this.#log.warn(
            `prox plugin "${this.name}": set_targets names neither route_id nor action: ignored`,
          );
          return undefined;
        }
        this.#lastTargets.set(
          push.action !== '' ? `action:${push.action}` : `route:${push.routeId}`,
          push,
        );
        this.emit('targets', push);
        return undefined;
      }
      case 'set_speed':
        this.emit('speed', {
          routeId: line.routeId,
          action: line.action,
          downloadMbps: line.downloadMbps,
          uploadMbps: line.uploadMbps,
          groupKey: line.groupKey,
        });
        return undefined;
      case 'log': {
        const level = LOG_LEVELS.has(line.level) ? (line.level as ProxLogPush['level']) : 'info';
        const message = `[${escapeForLog(this.name)}] ${escapeForLog(line.message)}`;
        if (line.args.length > 0) this.#log[level](message, { args: jsonForLog(line.args) });
        else this.#log[level](message);
        this.emit('log', { level, message: line.message, args: line.args });
        return undefined;
      }
      case 'ack':
        if (line.error !== '') {
          this.#log.warn(
            `prox plugin "${this.name}" answered configure with an error: ${escapeForLog(line.error)}`,
          );
        }
        return undefined;
      case 'unknown':
        this.#log.debug(
          `prox plugin "${this.name}": unknown method ${jsonForLog(line.method)} ignored`,
        );
        return undefined;
      case 'invalid':
        this.#log.warn(
          `prox plugin "${this.name}": invalid control line ignored: ${escapeForLog(line.reason)}`,
        );
        return undefined;
      case 'empty':
        return undefined;
    }
  }

  /** A usable `ready` (or a targets-only start): a new socket pool replaces the old one. */
  #becomeReady(child: SupervisedChild, r: { socket: string; hooks: HookName[] } | undefined): void {
    const old = this.#caller;
    this.#caller = undefined;
    old?.retire();
    this.#readies++;
    this.#lastProblem = undefined;
    this.#hooks = new Set(r?.hooks ?? []);
    if (r !== undefined) {
      this.#caller = new PluginCaller({
        socketPath: r.socket,
        name: `prox plugin "${this.name}"`,
        logger: this.#log,
        ...(this.#o.callTimeoutMs !== undefined && { timeoutMs: this.#o.callTimeoutMs }),
        ...(this.#o.maxIdleConnections !== undefined && { maxIdle: this.#o.maxIdleConnections }),
        ...(this.#o.maxConnections !== undefined && { maxConnections: this.#o.maxConnections }),
      });
    }
    this.#ready = {
      socket: r?.socket ?? '',
      hooks: [...this.#hooks],
      pid: child.pid,
      generation: child.generation,
    };
    this.#log.info(
      `prox plugin "${this.name}" ready: socket ${jsonForLog(this.#ready.socket)}, hooks [${this.#ready.hooks.join(', ')}]`,
    );
    this.emit('ready', this.#ready);
  }

  #childGone(child: SupervisedChild, why: string): void {
    if (child !== this.#child) return;
    this.#child = undefined;
    this.#unready(why);
  }

  #unready(why: string): void {
    const caller = this.#caller;
    const was = this.#ready !== undefined;
    this.#caller = undefined;
    this.#ready = undefined;
    caller?.close(`the plugin is gone (${why})`);
    if (was) this.emit('unready', why);
  }
}

function readyProblem(socket: string): string | undefined {
  if (socket === '') return 'ready without a socket path';
  if (!isAbsolute(socket)) return `ready socket ${JSON.stringify(socket)} is not an absolute path`;
  try {
    checkSocketPathLength(socket);
  } catch (err) {
    return (err as Error).message;
  }
  // The plugin runs as this user and has bound its socket before it says ready. Anything else
  // there (a file, another user's socket squatting a predictable /tmp path) is not its socket.
  let st: Stats;
  try {
    st = lstatSync(socket);
  } catch (err) {
    return `ready socket ${JSON.stringify(socket)} cannot be used: ${describeNodeError(err)}`;
  }
  if (!st.isSocket()) return `ready socket ${JSON.stringify(socket)} is not a Unix socket`;
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    return `ready socket ${JSON.stringify(socket)} belongs to uid ${st.uid}, not to this process's uid ${uid}`;
  }
  return undefined;
}

function checkRoutes(
  routes: readonly ProxRouteBinding[],
  name: string,
): readonly ProxRouteBinding[] {
  if (!Array.isArray(routes) || routes.length === 0) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `prox plugin "${name}": routes must list at least one binding (default [{ routeId: "" }])`,
    );
  }
  for (const r of routes) {
    if (typeof r?.routeId !== 'string') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `prox plugin "${name}": a route binding needs a string routeId`,
      );
    }
  }
  return routes.map((r) => ({ ...r }));
}
