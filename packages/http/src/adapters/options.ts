/** What every adapter is configured with: an engine, or the few things to build one. */
import type { AgentPool } from '@picket/pool';
import type { Logger } from '@picket/protocol';
import { type AgentSpec, agentSpec, type EngineHooks, HttpEngine, singleRoute } from '../engine.js';
import type { PathPolicy } from '../path-policy.js';

/** The agents consulted for every request through an adapter. */
export interface PicketOptions {
  /** the agent pool (`createPool()` of `@picket/transport`), every agent of `agents` added */
  pool: AgentPool;
  /** the chain, in order: agent names (the {@link agentSpec} defaults) or specs */
  agents: readonly (string | AgentSpec)[];
  /** how the path is normalised before agents and the application see it */
  pathPolicy?: PathPolicy;
  /** a header a trusted front end sets to the client address (`x-forwarded-for`) */
  clientIpHeader?: string;
  /** `route_id` the agents are told */
  name?: string;
  log?: Logger;
  hooks?: EngineHooks;
}

/** The adapters' argument: options, or an engine built elsewhere (its own router). */
export type PicketConfig = PicketOptions | HttpEngine;

export function toEngine(config: PicketConfig, adapter: string): HttpEngine {
  if (config instanceof HttpEngine) return config;
  if (typeof config !== 'object' || config === null) {
    throw new TypeError(`${adapter}: expected options { pool, agents } or an HttpEngine`);
  }
  if (typeof config.pool?.sendRequestHeaders !== 'function') {
    throw new TypeError(`${adapter}: options.pool must be an AgentPool`);
  }
  if (!Array.isArray(config.agents)) {
    throw new TypeError(`${adapter}: options.agents must be an array of agent names or specs`);
  }
  const chain = config.agents.map((a) => (typeof a === 'string' ? agentSpec(a) : a));
  return new HttpEngine({
    pool: config.pool,
    router: singleRoute({
      chain,
      ...(config.pathPolicy && { pathPolicy: config.pathPolicy }),
      name: config.name ?? null,
    }),
    clientIpHeader: config.clientIpHeader,
    log: config.log,
    hooks: config.hooks,
  });
}
