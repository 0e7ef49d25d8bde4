/**
 * The gateway's agents: one transport pool (`@picket/transport`), every
 * configured agent added to it by endpoint string.
 */
import type { AgentPool } from '@picket/pool';
import { jsonForLog } from '@picket/protocol';
import { createPool, detectTransport, type TransportAgentOptions } from '@picket/transport';
import type { AgentConfig, GatewayConfig } from './config.js';
import type { GatewayLogger } from './gateway.js';

/** The pool plus what the gateway shows about each agent. */
export interface AgentLayer {
  readonly pool: AgentPool;
  /** transport per agent name (`uds`, `grpc`, `reverse`, `v1`) */
  readonly transports: ReadonlyMap<string, string>;
  /** reverse listeners by address (`reverse+unix:/p` → bound address) */
  readonly reverseListeners: () => { endpoint: string; address: string; agents: string[] }[];
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
 * is waited for on its listener. Rejects for an endpoint the transports do not
 * understand, naming the agent.
 */
export async function createAgentLayer(
  config: GatewayConfig,
  log?: GatewayLogger,
): Promise<AgentLayer> {
  const line = (m: string, f?: Record<string, unknown>) => (f ? `${m} ${jsonForLog(f)}` : m);
  const pool = createPool({
    connectionsPerAgent: 2,
    // A gateway wants a restarted agent back within seconds, not the pool's 30 s default.
    circuitBreaker: { openTimeoutMs: 5000 },
    ...(log && {
      logger: {
        debug: (m, f) => log.debug(line(m, f)),
        info: (m, f) => log.info(line(m, f)),
        warn: (m, f) => log.warn(line(m, f)),
        error: (m, f) => log.error(line(m, f)),
      },
    }),
  });
  const transports = new Map<string, string>();
  try {
    await Promise.all(
      [...config.agents.values()].map(async (a) => {
        try {
          transports.set(a.name, detectTransport(a.endpoint).kind);
          await pool.addAgent(a.name, a.endpoint, agentOptions(a));
        } catch (e) {
          throw new Error(`agents.${a.name}.endpoint: ${(e as Error).message}`, { cause: e });
        }
      }),
    );
  } catch (e) {
    await pool.close({ drainTimeoutMs: 0 });
    throw e;
  }
  return {
    pool,
    transports,
    reverseListeners: () => pool.reverseListeners(),
    close: () => pool.close({ drainTimeoutMs: 1_000 }),
  };
}
