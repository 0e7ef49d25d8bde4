/**
 * The gateway's agents: one transport pool (`@picket/transport`), every
 * configured agent added to it by endpoint string.
 */
import type { AgentPool } from '@picket/pool';
import { jsonForLog, type Logger } from '@picket/protocol';
import { createPool, detectTransport, type TransportAgentOptions } from '@picket/transport';
import { AgentProcesses } from './agent-processes.js';
import type { AgentConfig, GatewayConfig } from './config.js';
import { proxBindings } from './config-process.js';
import type { GatewayLogger } from './gateway.js';

/** The pool plus what the gateway shows about each agent. */
export interface AgentLayer {
  readonly pool: AgentPool;
  /** transport per agent name (`uds`, `grpc`, `reverse`, `v1`) */
  readonly transports: ReadonlyMap<string, string>;
  /** reverse listeners by address (`reverse+unix:/p` → bound address) */
  readonly reverseListeners: () => { endpoint: string; address: string; agents: string[] }[];
  /** the agent processes the gateway runs (`command`, prox plugins) */
  readonly processes: AgentProcesses;
  /** closes the pool, then stops the agent processes */
  close(): Promise<void>;
}

/** Pool and transport settings of one configured agent. */
export function agentOptions(a: AgentConfig): TransportAgentOptions {
  const o: TransportAgentOptions = {
    failureMode: a.failureMode,
    requestTimeoutMs: a.timeoutMs,
    timeoutMs: a.timeoutMs,
    // an agent that comes back should be used again within seconds
    reconnect: { initialDelayMs: 100, maxDelayMs: 2_000, multiplier: 2, jitter: 0.5 },
    healthCheckIntervalMs: 5_000,
    pingTimeoutMs: 2_000,
    // picket agents understand msgpack; JSON stays the fallback a Rust agent picks
    encodings: ['msgpack', 'json'],
  };
  if (a.connections !== undefined) o.connectionsPerAgent = a.connections;
  if (a.authToken !== undefined) o.reverse = { tokens: [a.authToken] };
  return o;
}

/**
 * Opens the pool and adds every agent. An unreachable agent stays registered
 * and is redialled (its calls get its failure mode meanwhile); a reverse agent
 * is waited for on its listener; an agent with a command is started and waited
 * for (see agent-processes.ts). Rejects for an endpoint the transports do not
 * understand or an agent process not ready in time, naming the agent, and when
 * `signal` aborts first (every process started is stopped then).
 */
export async function createAgentLayer(
  config: GatewayConfig,
  log?: GatewayLogger,
  signal?: AbortSignal,
): Promise<AgentLayer> {
  const line = (m: string, f?: Record<string, unknown>) => (f ? `${m} ${jsonForLog(f)}` : m);
  const logger: Logger | undefined = log && {
    debug: (m, f) => log.debug(line(m, f)),
    info: (m, f) => log.info(line(m, f)),
    warn: (m, f) => log.warn(line(m, f)),
    error: (m, f) => log.error(line(m, f)),
  };
  const pool = createPool({
    connectionsPerAgent: 2,
    // A gateway wants a restarted agent back within seconds, not the pool's 30 s default.
    circuitBreaker: { openTimeoutMs: 5000 },
    ...(logger && { logger }),
  });
  const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };
  const processes = new AgentProcesses(logger ?? silent);
  const transports = new Map<string, string>();
  const close = async (drainTimeoutMs: number) => {
    // the pool first: prox plugins stop with their transports, and nothing redials
    await pool.close({ drainTimeoutMs });
    await processes.stop();
  };
  // aborted while agents start (the gateway is interrupted): stop them, and fail the start
  const onAbort = () => void processes.stop();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    signal?.throwIfAborted();
    await Promise.all(
      [...config.agents.values()].map(async (a) => {
        const given =
          a.process && !/^prox\+exec:/i.test(a.endpoint.trim()) ? 'command' : 'endpoint';
        try {
          if (a.prox) {
            transports.set(a.name, 'prox');
            await addProxAgent(pool, processes, config, a);
            return;
          }
          transports.set(a.name, detectTransport(a.endpoint).kind);
          // a supervised agent is started first: the pool's first dial then finds it listening
          if (a.process) await processes.startAgent(a);
          await pool.addAgent(a.name, a.endpoint, agentOptions(a));
        } catch (e) {
          throw new Error(`agents.${a.name}.${given}: ${(e as Error).message}`, { cause: e });
        }
      }),
    );
  } catch (e) {
    await close(0);
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  return {
    pool,
    transports,
    processes,
    reverseListeners: () => pool.reverseListeners(),
    close: () => close(1_000),
  };
}

/**
 * A prox plugin agent: the pool's single connection is a `ProxPluginTransport` made by
 * the processes' factory (the plugin runs once per agent). Rejects when the plugin did
 * not send `ready` within its `ready_timeout_ms`.
 */
async function addProxAgent(
  pool: ReturnType<typeof createPool>,
  processes: AgentProcesses,
  config: GatewayConfig,
  a: AgentConfig,
): Promise<void> {
  const readyMs = a.process?.readyTimeoutMs ?? 10_000;
  const factory = processes.proxFactory(a, proxBindings(a.name, config.routes, config.upstreams));
  const o = agentOptions(a);
  const open = await pool.addAgent(a.name, factory, {
    ...o,
    connectionsPerAgent: 1,
    // the transport bounds its own wait for ready; the pool must not give up before it
    connectTimeoutMs: readyMs + 1_000,
  });
  if (open === 0) {
    throw new Error(processes.proxError(a.name) ?? `prox plugin not ready within ${readyMs} ms`);
  }
}
