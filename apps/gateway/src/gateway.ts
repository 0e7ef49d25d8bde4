/**
 * The gateway server: an HTTP/1.1 listener (node:http), one undici pool per
 * upstream, the agent pool, and the admin endpoints (`/metrics`, `/healthz`).
 */
import { EventEmitter } from 'node:events';
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerOptions,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { type EngineRoute, type ExchangeSummary, HttpEngine } from '@picket/http';
import type { AgentPool } from '@picket/pool';
import { escapeForLog, jsonForLog } from '@picket/protocol';
import type { ProxTargetsPush } from '@picket/prox';
import type { AgentProcesses } from './agent-processes.js';
import type { AgentConfig, GatewayConfig, RouteConfig, ServerConfig } from './config.js';
import { parseListen } from './config.js';
import { upstreamHop } from './exchange-upstream.js';
import { GatewayMetrics } from './metrics.js';
import { routeRequest } from './routes.js';
import { pushIsFor, Upstream } from './upstream-targets.js';

export { Upstream } from './upstream-targets.js';

/** Where log lines go. */
export interface GatewayLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** Logs to stderr; control characters a peer smuggled into a line are escaped here, at the sink. */
export const stderrLogger: GatewayLogger = {
  debug: () => {},
  info: (m) => console.error(escapeForLog(m)),
  warn: (m) => console.error(`warn: ${escapeForLog(m)}`),
  error: (m) => console.error(`error: ${escapeForLog(m)}`),
};

export interface GatewayOptions {
  /** the agent pool with every configured agent added */
  pool: AgentPool;
  /** describes where each agent is (for `/healthz`), by agent name */
  agentTransports?: ReadonlyMap<string, string>;
  /** the agent processes (`command`, prox plugins): metrics, health and `targets_from` pushes */
  processes?: AgentProcesses;
  logger?: GatewayLogger;
}

/** Health of the agents as `/healthz` reports it. */
export interface HealthReport {
  status: 'ok' | 'unhealthy';
  listening: boolean;
  healthy_agents: number;
  min_healthy_agents: number;
  agents: Record<
    string,
    {
      healthy: boolean;
      transport: string;
      connections: number;
      healthy_connections: number;
      circuit_state: string;
      /** the agent's process, when the gateway runs it */
      process?: { kind: 'agent' | 'prox'; state: string; pid: number | null; restarts: number };
    }
  >;
}

/** Events: `exchange` (an {@link ExchangeSummary} per finished request). */
export interface GatewayEventMap {
  exchange: [summary: ExchangeSummary];
}

/** Bound address of a listener. */
export interface BoundAddress {
  host: string;
  port: number;
}

/**
 * The reverse proxy. `await new Gateway(config, { pool }).listen()`, then
 * `close()`. Emits `exchange` with a summary of every finished request.
 */
export class Gateway extends EventEmitter<GatewayEventMap> {
  readonly metrics = new GatewayMetrics();
  readonly upstreams = new Map<string, Upstream>();
  readonly pool: AgentPool;
  readonly log: GatewayLogger;
  /** runs each proxied request (@picket/http) */
  private readonly engine: HttpEngine;
  private readonly server: Server;
  private adminServer: Server | undefined;
  private readonly transports: ReadonlyMap<string, string>;
  private readonly processes: AgentProcesses | undefined;
  private readonly stopFollowingTargets: () => void = () => {};
  private listening = false;

  constructor(
    readonly config: GatewayConfig,
    options: GatewayOptions,
  ) {
    super();
    this.pool = options.pool;
    this.log = options.logger ?? stderrLogger;
    this.transports = options.agentTransports ?? new Map();
    this.processes = options.processes;
    for (const u of config.upstreams.values()) this.upstreams.set(u.name, new Upstream(u));
    this.engine = this.createEngine();
    const processes = this.processes;
    if (processes && [...this.upstreams.values()].some((u) => u.config.targetsFrom)) {
      const onTargets = (agent: string, push: ProxTargetsPush) => this.applyTargets(agent, push);
      // pushes made while the agents started, then every new one
      for (const agent of config.agents.keys()) {
        for (const push of processes.pushes(agent)) this.applyTargets(agent, push);
      }
      processes.on('targets', onTargets);
      this.stopFollowingTargets = () => processes.off('targets', onTargets);
    }
    this.server = createServer(serverOptions(config.server), (req, res) =>
      this.handle(req, res, false),
    );
    // Beyond the cap Node closes the new socket at accept and emits 'drop'.
    this.server.maxConnections = config.server.maxConnections;
    this.server.on('drop', () => {
      this.metrics.refusedConnections++;
    });
    this.server.on('connection', (socket) => {
      this.metrics.openConnections++;
      socket.once('close', () => {
        this.metrics.openConnections--;
      });
    });
  }

  /** Starts listening on `config.listen` (and `admin.listen`); resolves with the bound address. */
  async listen(): Promise<BoundAddress> {
    const bound = await listenOn(this.server, this.config.listen);
    if (this.config.admin.listen) {
      // same timeouts, but not the cap: /metrics stays reachable while the gateway port is full
      this.adminServer = createServer(serverOptions(this.config.server), (req, res) =>
        this.handle(req, res, true),
      );
      await listenOn(this.adminServer, this.config.admin.listen);
    }
    this.listening = true;
    return bound;
  }

  /** Address of the gateway listener. */
  get address(): BoundAddress | undefined {
    return addressOf(this.server);
  }

  /** Address of the admin listener, when one is configured. */
  get adminAddress(): BoundAddress | undefined {
    return this.adminServer && addressOf(this.adminServer);
  }

  /** Stops accepting, closes idle and then all client connections, and the upstream pools. */
  async close(): Promise<void> {
    this.listening = false;
    const stop = (s: Server | undefined) =>
      new Promise<void>((resolve) => {
        if (!s?.listening) return resolve();
        s.close(() => resolve());
        s.closeIdleConnections();
        setTimeout(() => s.closeAllConnections(), 1_000).unref();
      });
    this.stopFollowingTargets();
    await Promise.all([stop(this.server), stop(this.adminServer)]);
    await Promise.allSettled([...this.upstreams.values()].map((u) => u.close()));
  }

  /** A prox plugin's `set_targets`: replaces the servers of each upstream it is for. */
  private applyTargets(agent: string, push: ProxTargetsPush): void {
    let used = false;
    for (const u of this.upstreams.values()) {
      if (u.config.targetsFrom !== agent || !pushIsFor(push, u.config.name, this.config.routes)) {
        continue;
      }
      used = true;
      const what = `set_targets from agent "${agent}" for upstream "${u.config.name}"`;
      if (push.targets.length === 0 && Object.keys(push.groups).length > 0) {
        this.log.warn(
          `${what}: grouped targets need a keyed balancer, which the gateway has not; ignored`,
        );
        continue;
      }
      try {
        u.setTargets(push.targets);
        this.log.info(`${what}: ${u.targets.join(', ') || '(none)'}`);
      } catch (e) {
        this.log.warn(`${what} refused, the servers stay as they were: ${(e as Error).message}`);
      }
    }
    if (!used) {
      const to =
        push.action !== ''
          ? `action ${jsonForLog(push.action)}`
          : `route_id ${jsonForLog(push.routeId)}`;
      this.log.info(`set_targets from agent "${agent}" for ${to} ignored: no upstream takes it`);
    }
  }

  /** Agent health, as `/healthz` reports it. */
  health(): HealthReport {
    const agents: HealthReport['agents'] = {};
    let healthy = 0;
    for (const name of this.config.agents.keys()) {
      const s = this.pool.agentStats(name);
      // An open circuit means calls are refused, whatever the connections say.
      const ok = s?.isHealthy === true && s.circuitState !== 'open';
      if (ok) healthy++;
      agents[name] = {
        healthy: ok,
        transport: this.transports.get(name) ?? 'unknown',
        connections: s?.activeConnections ?? 0,
        healthy_connections: s?.healthyConnections ?? 0,
        circuit_state: s?.circuitState ?? 'unknown',
      };
    }
    for (const p of this.processes?.stats() ?? []) {
      const a = agents[p.agent];
      if (a) {
        a.process = { kind: p.kind, state: p.state, pid: p.pid ?? null, restarts: p.restarts };
      }
    }
    const min =
      this.config.admin.minHealthyAgents === 'all'
        ? this.config.agents.size
        : this.config.admin.minHealthyAgents;
    return {
      status: this.listening && healthy >= min ? 'ok' : 'unhealthy',
      listening: this.listening,
      healthy_agents: healthy,
      min_healthy_agents: min,
      agents,
    };
  }

  /** `/metrics`: the gateway's families, then the pool's. */
  renderMetrics(): string {
    const targets: [string, number][] = [];
    for (const u of this.upstreams.values()) {
      if (u.config.targetsFrom !== undefined) targets.push([u.config.name, u.targets.length]);
    }
    return (
      this.metrics.render(targets) + (this.processes?.renderMetrics() ?? '') + this.pool.metrics()
    );
  }

  /**
   * The engine with the gateway's routes (each config route with its agent chain and
   * its upstream as the next hop, resolved once) and metrics.
   */
  private createEngine(): HttpEngine {
    const routes = this.config.routes.map((r): RouteConfig & EngineRoute => ({
      ...r,
      upstreamId: r.upstream,
      chain: r.agents.map((n) => this.config.agents.get(n) as AgentConfig),
      nextHop: upstreamHop(this.upstreams.get(r.upstream) as Upstream, this.metrics),
    }));
    const m = this.metrics;
    return new HttpEngine({
      pool: this.pool,
      router: (host, target) => routeRequest(routes, host, target),
      clientIpHeader: this.config.clientIpHeader,
      log: this.log,
      hooks: {
        exchangeStarted: () => {
          m.inFlight++;
        },
        agentDecision: (agent, event, decision) => m.agentDecision(agent, event, decision),
        nextHopError: (upstream, kind) => m.upstreamError(upstream, kind),
        exchangeFinished: (s) => {
          m.inFlight--;
          m.request(s.route ?? '', s.status, s.outcome, s.durationMs / 1000);
          this.emit('exchange', s);
        },
      },
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse, adminOnly: boolean): void {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    if (adminOnly || !this.config.admin.listen) {
      const prefix = adminOnly ? '' : this.config.admin.prefix;
      if (path === `${prefix}/metrics`) {
        this.serveMetrics(req, res);
        return;
      }
      if (path === `${prefix}/healthz`) {
        this.serveHealth(req, res);
        return;
      }
      if (adminOnly) {
        plain(res, 404, 'Not Found\n');
        return;
      }
    }
    void this.engine.handle(req, res);
  }

  private serveMetrics(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const body = this.renderMetrics();
    res.writeHead(200, {
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private serveHealth(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const report = this.health();
    const body = `${JSON.stringify(report, null, 2)}\n`;
    res.writeHead(report.status === 'ok' ? 200 : 503, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(body),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}

/**
 * How often node:http looks for connections past `headersTimeout` / `requestTimeout`.
 * It only checks every `connectionsCheckingInterval` (default 30 s), so a 30 s bound
 * let a slowloris client stay up to ~60 s. A tenth of the smaller bound, between 50 ms
 * and 1 s, keeps the overshoot small; each pass walks only the connections with a
 * request in progress, so it stays cheap with thousands open. (Per-socket timers
 * would duplicate what Node already tracks per parser.)
 */
export function connectionsCheckingIntervalMs(s: ServerConfig): number {
  const smallest = Math.min(s.headersTimeoutMs, s.requestTimeoutMs);
  return Math.min(1_000, Math.max(50, Math.floor(smallest / 10)));
}

/** node:http options that make `server.*_timeout_ms` hold (Node answers 408 and closes). */
function serverOptions(s: ServerConfig): ServerOptions {
  return {
    headersTimeout: s.headersTimeoutMs,
    requestTimeout: s.requestTimeoutMs,
    // an idle keep-alive socket's own timer; Node adds 1 s so clients that honour
    // the `Keep-Alive: timeout=` hint close first
    keepAliveTimeout: s.keepAliveTimeoutMs,
    connectionsCheckingInterval: connectionsCheckingIntervalMs(s),
  };
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function addressOf(s: Server): BoundAddress | undefined {
  const a = s.address() as AddressInfo | null;
  return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
}

function listenOn(server: Server, address: string): Promise<BoundAddress> {
  const { host, port } = parseListen(address);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(addressOf(server) as BoundAddress);
    });
  });
}
