/**
 * Agent processes the gateway runs (`agents.<name>.command`): a Zentinel agent under a
 * @picket/supervisor Supervisor, ready once its endpoint accepts connections; a prox plugin
 * through @picket/prox's host side (which supervises it and waits for its `ready`), created by
 * the pool's connect factory so its `set_targets` pushes reach `targets_from` upstreams.
 */
import { EventEmitter } from 'node:events';
import type { ConnectFactory } from '@picket/pool';
import { PromWriter } from '@picket/pool/internal';
import { AgentProtocolError, ErrorCode, escapeForLog, type Logger } from '@picket/protocol';
import { ProxPluginTransport, type ProxRouteBinding, type ProxTargetsPush } from '@picket/prox';
import { readyWhenConnectable, Supervisor, type SupervisorState } from '@picket/supervisor';
import type { AgentConfig, AgentProcessConfig } from './config.js';

/** What `/metrics` and `/healthz` show of one agent process. */
export interface AgentProcessStats {
  agent: string;
  /** `agent`: a Zentinel agent; `prox`: a prox plugin */
  kind: 'agent' | 'prox';
  state: SupervisorState;
  pid: number | undefined;
  /** processes started after the first one (crashes, failed ready checks) */
  restarts: number;
}

/** States shown in `picket_gateway_agent_process_state` (one sample each, 0 or 1). */
const STATES: readonly SupervisorState[] = [
  'idle',
  'starting',
  'ready',
  'backoff',
  'stopping',
  'stopped',
];

interface ProxEntry {
  config: AgentConfig;
  /** the transport the pool uses now (its host runs the plugin) */
  current: ProxPluginTransport | undefined;
  /** plugin processes started by transports before the current one */
  restartsBefore: number;
  connects: number;
  /** the latest push per `route:<id>` / `action:<name>`, oldest first */
  pushes: Map<string, ProxTargetsPush>;
  lastError: string | undefined;
}

/** Events: `targets` (agent, push) for every `set_targets` a prox plugin agent sends. */
export interface AgentProcessEvents {
  targets: [agent: string, push: ProxTargetsPush];
}

/** Every agent process of one gateway; `stop()` ends them all within their bounds. */
export class AgentProcesses extends EventEmitter<AgentProcessEvents> {
  readonly #log: Logger;
  readonly #abort = new AbortController();
  readonly #agents = new Map<string, Supervisor>();
  readonly #prox = new Map<string, ProxEntry>();

  constructor(log: Logger) {
    super();
    this.#log = log;
  }

  /** Whether any agent process is configured. */
  get size(): number {
    return this.#agents.size + this.#prox.size;
  }

  /**
   * Starts a Zentinel agent's command and resolves once its endpoint accepts connections.
   * Rejects (the process is stopped) when it is not ready within its `ready_timeout_ms`.
   */
  async startAgent(a: AgentConfig): Promise<void> {
    const p = a.process as AgentProcessConfig;
    const s = new Supervisor({
      name: a.name,
      command: p.command,
      env: p.env,
      cwd: p.cwd,
      ready: readyWhenConnectable(a.endpoint),
      readyTimeoutMs: p.readyTimeoutMs,
      stopGraceMs: p.stopGraceMs,
      logger: this.#log,
      signal: this.#abort.signal,
    });
    this.#agents.set(a.name, s);
    // stdout is the agent's own ("listening on …"): into the log, tagged like stderr
    s.on('spawn', (child) => {
      child.onStdoutLine((line) => this.#log.info(`[${a.name}] ${escapeForLog(line)}`));
    });
    s.on('state', (state, prev) => {
      if (state === 'ready' || prev === 'ready') {
        this.#log.info(`agent "${a.name}" process: ${prev} → ${state}`);
      }
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const last = s.stats().lastExit;
        const why = last
          ? ` (it ${last.signal ? `was killed by ${last.signal}` : `exited with code ${last.code}`})`
          : '';
        reject(
          new AgentProtocolError(
            ErrorCode.Timeout,
            `agent process "${p.command.join(' ')}" was not accepting connections on ${a.endpoint} within ${p.readyTimeoutMs} ms${why}`,
          ),
        );
      }, p.readyTimeoutMs);
    });
    try {
      await Promise.race([s.start(), late]);
    } catch (e) {
      await s.stop();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The pool's connect factory for a prox plugin agent: each call starts the plugin (through a
   * new `ProxPluginTransport`, which restarts it whenever it dies) and resolves once it sent
   * `ready`. Its pushes are followed from then on, including those made before `ready`.
   */
  proxFactory(a: AgentConfig, routes: readonly ProxRouteBinding[]): ConnectFactory {
    const p = a.process as AgentProcessConfig;
    const e: ProxEntry = {
      config: a,
      current: undefined,
      restartsBefore: 0,
      connects: 0,
      pushes: new Map(),
      lastError: undefined,
    };
    this.#prox.set(a.name, e);
    return async () => {
      if (e.current) {
        e.restartsBefore += e.current.host.supervisor.restarts;
        e.current = undefined;
      }
      e.connects++;
      let t: ProxPluginTransport;
      try {
        t = await ProxPluginTransport.connect(a.name, p.command, {
          routes: routes.length > 0 ? routes : [{ routeId: '' }],
          env: p.env,
          cwd: p.cwd,
          readyTimeoutMs: p.readyTimeoutMs,
          stopGraceMs: p.stopGraceMs,
          targetsOnly: a.prox?.targetsOnly === true,
          timeoutMs: a.timeoutMs,
          // prox's own behaviour: on_request sees the body (≤ 64 KiB) when the agent gets it
          requestBody: a.events.has('request_body') ? 'capture' : 'headers',
          ...(a.connections !== undefined && { maxConnections: a.connections }),
          logger: this.#log,
          signal: this.#abort.signal,
        });
      } catch (err) {
        e.lastError = (err as Error).message;
        throw err;
      }
      e.lastError = undefined;
      e.current = t;
      for (const push of t.host.lastTargets.values()) this.#push(e, push);
      t.on('targets', (push) => this.#push(e, push));
      return t;
    };
  }

  /** Why a prox plugin agent has no transport (its last connect error). */
  proxError(agent: string): string | undefined {
    return this.#prox.get(agent)?.lastError;
  }

  /** The latest `set_targets` pushes of a prox plugin agent, oldest first. */
  pushes(agent: string): ProxTargetsPush[] {
    return [...(this.#prox.get(agent)?.pushes.values() ?? [])];
  }

  stats(): AgentProcessStats[] {
    const out: AgentProcessStats[] = [];
    for (const [agent, s] of this.#agents) {
      const st = s.stats();
      out.push({ agent, kind: 'agent', state: st.state, pid: st.pid, restarts: st.restarts });
    }
    for (const [agent, e] of this.#prox) {
      const st = e.current?.host.supervisor.stats();
      out.push({
        agent,
        kind: 'prox',
        // between two transports (a connect under way or failed) the plugin is starting
        state: st?.state ?? (this.#abort.signal.aborted ? 'stopped' : 'starting'),
        pid: st?.pid,
        restarts: e.restartsBefore + Math.max(0, e.connects - 1) + (st?.restarts ?? 0),
      });
    }
    return out.sort((x, y) => (x.agent < y.agent ? -1 : x.agent > y.agent ? 1 : 0));
  }

  /** Prometheus text of the process families (empty when no agent process is configured). */
  renderMetrics(): string {
    if (this.size === 0) return '';
    const w = new PromWriter();
    const stats = this.stats();
    w.family(
      'picket_gateway_agent_process_up',
      'gauge',
      'Agent processes the gateway runs: 1 while ready (accepting connections, or prox ready).',
    );
    for (const s of stats) {
      w.sample(
        'picket_gateway_agent_process_up',
        [['agent', s.agent]],
        s.state === 'ready' ? 1 : 0,
      );
    }
    w.family(
      'picket_gateway_agent_process_state',
      'gauge',
      'Supervisor state of each agent process (1 for the current state).',
    );
    for (const s of stats) {
      for (const state of STATES) {
        w.sample(
          'picket_gateway_agent_process_state',
          [
            ['agent', s.agent],
            ['state', state],
          ],
          s.state === state ? 1 : 0,
        );
      }
    }
    w.family(
      'picket_gateway_agent_process_restarts_total',
      'counter',
      'Agent processes started again after the first (crash, failed ready check).',
    );
    for (const s of stats) {
      w.sample('picket_gateway_agent_process_restarts_total', [['agent', s.agent]], s.restarts);
    }
    return w.toString();
  }

  /**
   * Stops every agent process (each within its `2 × stop_grace_ms + 1 s`). Close the pool
   * first: prox plugins are stopped by their transports then, and nothing redials.
   */
  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.allSettled([
      ...[...this.#agents.values()].map((s) => s.stop()),
      ...[...this.#prox.values()].map((e) => e.current?.host.stop()),
    ]);
  }

  #push(e: ProxEntry, push: ProxTargetsPush): void {
    const key = push.action !== '' ? `action:${push.action}` : `route:${push.routeId}`;
    e.pushes.delete(key);
    e.pushes.set(key, push);
    this.emit('targets', e.config.name, push);
  }
}
