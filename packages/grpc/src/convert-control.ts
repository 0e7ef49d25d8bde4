/** Converters (see convert.ts): capabilities and control messages (health, metrics, config updates, logs). */
import {
  type AgentCapabilities,
  type ConfigUpdateRequest,
  type ConfigUpdateResponse,
  type ConfigUpdateType,
  eventTypeFromNumber,
  type HealthState,
  healthStateFromWire,
  healthStateToWire,
  type LogLevel,
  type LogMessage,
  type MetricsReport,
  PROTOCOL_VERSION,
  type RuleDefinition,
} from '@picket/protocol';
import { jsonText, parseJsonLoose, strMap } from './convert-helpers.js';
import type { zentinel } from './generated/agent_v2.js';
import {
  type IAgentCapabilities,
  type IConfigUpdateRequest,
  type IConfigUpdateResponse,
  type IHealthStatus,
  type ILogMessage,
  type IMetricsReport,
  num,
  optNum,
} from './proto.js';

type PbCapabilities = zentinel.agent.v2.IAgentCapabilities;
type PbHealth = zentinel.agent.v2.IHealthStatus;
type PbMetrics = zentinel.agent.v2.IMetricsReport;
type PbConfigUpdate = zentinel.agent.v2.IConfigUpdateRequest;
type PbConfigUpdateResponse = zentinel.agent.v2.IConfigUpdateResponse;
type PbLog = zentinel.agent.v2.ILogMessage;

// ---------------------------------------------------------------- capabilities

/** Rust's gRPC defaults for what picket capabilities may leave out (golden vector G2). */
export const DEFAULT_HEALTH_CONFIG = {
  report_interval_ms: 10_000,
  include_load_metrics: true,
  include_resource_metrics: false,
} as const;
export const DEFAULT_MAX_PROCESSING_TIME_MS = 5000;

/** Capabilities as a Rust agent server sends them: health_config and max_processing_time_ms filled in. */
export function capabilitiesToProto(c: AgentCapabilities): IAgentCapabilities {
  const out: IAgentCapabilities = {};
  const pv = c.protocol_version ?? PROTOCOL_VERSION;
  if (pv) out.protocol_version = pv;
  if (c.agent_id) out.agent_id = c.agent_id;
  if (c.name) out.name = c.name;
  if (c.version) out.version = c.version;
  if (c.supported_events.length) out.supported_events = c.supported_events;
  const f = c.features;
  const features: NonNullable<IAgentCapabilities['features']> = {};
  if (f.streaming_body) features.streaming_body = true;
  if (f.websocket) features.websocket = true;
  if (f.guardrails) features.guardrails = true;
  if (f.config_push) features.config_push = true;
  if (f.metrics_export) features.metrics_export = true;
  if (f.concurrent_requests) features.concurrent_requests = f.concurrent_requests;
  if (f.cancellation) features.cancellation = true;
  if (f.flow_control) features.flow_control = true;
  if (f.health_reporting) features.health_reporting = true;
  out.features = features;
  const l = c.limits;
  const limits: NonNullable<IAgentCapabilities['limits']> = {};
  if (l.max_body_size) limits.max_body_size = l.max_body_size;
  if (l.max_concurrency) limits.max_concurrency = l.max_concurrency;
  if (l.preferred_chunk_size) limits.preferred_chunk_size = l.preferred_chunk_size;
  if (l.max_memory != null) limits.max_memory = l.max_memory;
  limits.max_processing_time_ms = l.max_processing_time_ms ?? DEFAULT_MAX_PROCESSING_TIME_MS;
  out.limits = limits;
  const h = c.health_config ?? DEFAULT_HEALTH_CONFIG;
  const hc: NonNullable<IAgentCapabilities['health_config']> = {};
  if (h.report_interval_ms) hc.report_interval_ms = h.report_interval_ms;
  if (h.include_load_metrics) hc.include_load_metrics = true;
  if (h.include_resource_metrics) hc.include_resource_metrics = true;
  out.health_config = hc;
  return out;
}

/** proto capabilities → picket (supported_events outside 1..8 dropped, like Rust). */
export function capabilitiesFromProto(c: PbCapabilities | null | undefined): AgentCapabilities {
  const f = c?.features;
  const l = c?.limits;
  const out: AgentCapabilities = {
    agent_id: c?.agent_id ?? '',
    name: c?.name ?? '',
    version: c?.version ?? '',
    supported_events: (c?.supported_events ?? []).filter(
      (n) => n >= 1 && n <= 8 && eventTypeFromNumber(n) !== undefined,
    ),
    features: {
      streaming_body: f?.streaming_body ?? false,
      websocket: f?.websocket ?? false,
      guardrails: f?.guardrails ?? false,
      config_push: f?.config_push ?? false,
      metrics_export: f?.metrics_export ?? false,
      concurrent_requests: f?.concurrent_requests ?? 0,
      cancellation: f?.cancellation ?? false,
      flow_control: f?.flow_control ?? false,
      health_reporting: f?.health_reporting ?? false,
    },
    limits: {
      max_body_size: num(l?.max_body_size),
      max_concurrency: l?.max_concurrency ?? 0,
      preferred_chunk_size: num(l?.preferred_chunk_size),
    },
    protocol_version: c?.protocol_version ?? 0,
  };
  const maxMemory = optNum(l?.max_memory);
  if (maxMemory !== undefined) out.limits.max_memory = maxMemory;
  const maxTime = optNum(l?.max_processing_time_ms);
  if (maxTime !== undefined) out.limits.max_processing_time_ms = maxTime;
  if (c?.health_config) {
    out.health_config = {
      report_interval_ms: c.health_config.report_interval_ms ?? 0,
      include_load_metrics: c.health_config.include_load_metrics ?? false,
      include_resource_metrics: c.health_config.include_resource_metrics ?? false,
    };
  }
  return out;
}

// ---------------------------------------------------------------- control messages

/** HealthStatus for a state (+ message), stamped now. */
export function healthToProto(
  agentId: string,
  state: HealthState,
  message?: string,
  now = Date.now(),
): IHealthStatus {
  const out: IHealthStatus = { state: healthStateToWire(state), timestamp_ms: now };
  if (agentId) out.agent_id = agentId;
  if (message != null) out.message = message;
  if (state === 'unhealthy') out.recoverable = true;
  return out;
}

/** `undefined` for UNSPECIFIED / unknown states. */
export function healthFromProto(h: PbHealth): { state: HealthState; message?: string } | undefined {
  const state = healthStateFromWire(h.state ?? 0);
  if (!state) return undefined;
  const message = h.message ?? h.unhealthy_reason ?? undefined;
  return message != null ? { state, message } : { state };
}

export function metricsToProto(m: MetricsReport): IMetricsReport {
  const labels = (l: Record<string, string>) => (Object.keys(l).length ? l : undefined);
  return {
    agent_id: m.agent_id || undefined,
    timestamp_ms: m.timestamp_ms || undefined,
    interval_ms: m.interval_ms || undefined,
    counters: m.counters.map((c) => ({
      name: c.name,
      help: c.help,
      labels: labels(c.labels),
      value: c.value || undefined,
    })),
    gauges: m.gauges.map((g) => ({
      name: g.name,
      help: g.help,
      labels: labels(g.labels),
      value: g.value || undefined,
    })),
    histograms: m.histograms.map((h) => ({
      name: h.name,
      help: h.help,
      labels: labels(h.labels),
      sum: h.sum || undefined,
      count: h.count || undefined,
      buckets: h.buckets.map((b) => ({ le: b.le, count: b.count || undefined })),
    })),
  };
}

export function metricsFromProto(m: PbMetrics, agentId?: string): MetricsReport {
  const help = (h: string | null | undefined) => (h ? { help: h } : {});
  return {
    agent_id: agentId || (m.agent_id ?? ''),
    timestamp_ms: num(m.timestamp_ms),
    interval_ms: num(m.interval_ms),
    counters: (m.counters ?? []).map((c) => ({
      name: c.name ?? '',
      ...help(c.help),
      labels: strMap(c.labels),
      value: num(c.value),
    })),
    gauges: (m.gauges ?? []).map((g) => ({
      name: g.name ?? '',
      ...help(g.help),
      labels: strMap(g.labels),
      value: g.value ?? 0,
    })),
    histograms: (m.histograms ?? []).map((h) => ({
      name: h.name ?? '',
      ...help(h.help),
      labels: strMap(h.labels),
      sum: h.sum ?? 0,
      count: num(h.count),
      buckets: (h.buckets ?? []).map((b) => ({ le: b.le ?? 0, count: num(b.count) })),
    })),
  };
}

function ruleToProto(r: RuleDefinition) {
  return {
    id: r.id || undefined,
    priority: r.priority || undefined,
    definition_json: jsonText(r.definition),
    enabled: r.enabled || undefined,
    description: r.description ?? undefined,
    tags: r.tags,
  };
}

export function configUpdateToProto(r: ConfigUpdateRequest): IConfigUpdateRequest {
  const out: IConfigUpdateRequest = {
    request_id: r.request_id || undefined,
    timestamp_ms: r.timestamp_ms || undefined,
  };
  const u = r.update_type;
  switch (u.type) {
    case 'request_reload':
      out.request_reload = {};
      break;
    case 'rule_update':
      out.rule_update = {
        rule_set: u.rule_set || undefined,
        rules: u.rules.map(ruleToProto),
        remove_rules: u.remove_rules,
      };
      break;
    case 'list_update':
      out.list_update = { list_id: u.list_id || undefined, add: u.add, remove: u.remove };
      break;
    case 'restart_required':
      out.restart_required = {
        reason: u.reason || undefined,
        grace_period_ms: u.grace_period_ms || undefined,
      };
      break;
    case 'config_error':
      out.config_error = { error: u.error || undefined, field: u.field ?? undefined };
      break;
  }
  return out;
}

/** `undefined` when no update type is set (nothing to act on). */
export function configUpdateFromProto(r: PbConfigUpdate): ConfigUpdateRequest | undefined {
  let update: ConfigUpdateType;
  if (r.request_reload) update = { type: 'request_reload' };
  else if (r.rule_update) {
    update = {
      type: 'rule_update',
      rule_set: r.rule_update.rule_set ?? '',
      rules: (r.rule_update.rules ?? []).map((d) => ({
        id: d.id ?? '',
        priority: d.priority ?? 0,
        definition: d.definition_json ? parseJsonLoose(d.definition_json) : null,
        enabled: d.enabled ?? false,
        description: d.description ?? null,
        tags: [...(d.tags ?? [])],
      })),
      remove_rules: [...(r.rule_update.remove_rules ?? [])],
    };
  } else if (r.list_update) {
    update = {
      type: 'list_update',
      list_id: r.list_update.list_id ?? '',
      add: [...(r.list_update.add ?? [])],
      remove: [...(r.list_update.remove ?? [])],
    };
  } else if (r.restart_required) {
    update = {
      type: 'restart_required',
      reason: r.restart_required.reason ?? '',
      grace_period_ms: num(r.restart_required.grace_period_ms),
    };
  } else if (r.config_error) {
    update = {
      type: 'config_error',
      error: r.config_error.error ?? '',
      field: r.config_error.field ?? null,
    };
  } else return undefined;
  return { update_type: update, request_id: r.request_id ?? '', timestamp_ms: num(r.timestamp_ms) };
}

export function configResponseToProto(r: ConfigUpdateResponse): IConfigUpdateResponse {
  const out: IConfigUpdateResponse = {};
  if (r.request_id) out.request_id = r.request_id;
  if (r.accepted) out.accepted = true;
  if (r.error != null) out.error = r.error;
  if (r.timestamp_ms) out.timestamp_ms = r.timestamp_ms;
  return out;
}

export function configResponseFromProto(r: PbConfigUpdateResponse): ConfigUpdateResponse {
  return {
    request_id: r.request_id ?? '',
    accepted: r.accepted ?? false,
    error: r.error ?? null,
    timestamp_ms: num(r.timestamp_ms),
  };
}

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export function logToProto(l: LogMessage): ILogMessage {
  const out: ILogMessage = { level: LOG_LEVELS.indexOf(l.level) + 1, timestamp_ms: l.timestamp_ms };
  if (l.message) out.message = l.message;
  if (l.correlation_id != null) out.correlation_id = l.correlation_id;
  if (Object.keys(l.fields).length) out.fields = l.fields;
  return out;
}

/** Unknown levels read as `info`. */
export function logFromProto(l: PbLog): LogMessage {
  return {
    level: LOG_LEVELS[(l.level ?? 0) - 1] ?? 'info',
    message: l.message ?? '',
    correlation_id: l.correlation_id ?? null,
    fields: strMap(l.fields),
    timestamp_ms: num(l.timestamp_ms),
  };
}
