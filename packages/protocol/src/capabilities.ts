import { EVENT_TYPE_NUMBERS } from './enums.js';
import type { AgentCapabilities, AgentFeatures, AgentLimits, EventType } from './types.js';

export interface CapabilitiesInit {
  agentId: string;
  name?: string;
  version?: string;
  /** events the agent wants; default all */
  events?: EventType[];
  features?: Partial<AgentFeatures>;
  limits?: Partial<AgentLimits>;
}

/**
 * Complete capabilities (a Rust proxy rejects any missing field). Defaults
 * follow Rust's `AgentCapabilities::new`: 10 MiB bodies, 100 concurrent
 * requests, 64 KiB chunks.
 */
export function createCapabilities(init: CapabilitiesInit): AgentCapabilities {
  const events = init.events ?? (Object.keys(EVENT_TYPE_NUMBERS) as EventType[]);
  return {
    agent_id: init.agentId,
    name: init.name ?? init.agentId,
    version: init.version ?? '0.0.0',
    supported_events: events.map((e) => EVENT_TYPE_NUMBERS[e]).sort((a, b) => a - b),
    features: {
      streaming_body: false,
      websocket: false,
      guardrails: false,
      config_push: false,
      metrics_export: false,
      concurrent_requests: 0,
      cancellation: false,
      flow_control: false,
      health_reporting: false,
      ...init.features,
    },
    limits: {
      max_body_size: 10 * 1024 * 1024,
      max_concurrency: 100,
      preferred_chunk_size: 64 * 1024,
      ...init.limits,
    },
  };
}
