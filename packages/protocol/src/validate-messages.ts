/** Validators (see validate.ts): Handshake, registration and control messages. */
import { invalidMessage } from './errors.js';
import type {
  AgentCapabilities,
  AgentFeatures,
  AgentLimits,
  CancelMessage,
  ConfigUpdateRequest,
  ConfigUpdateType,
  CounterMetric,
  Encoding,
  FlowControlMessage,
  GaugeMetric,
  GuardrailDetection,
  GuardrailResponse,
  HandshakeRequest,
  HandshakeResponse,
  HealthStatusMessage,
  HistogramMetric,
  MetricsReport,
  PicketExtension,
  PingMessage,
  RegistrationRequest,
  RegistrationResponse,
  RuleDefinition,
} from './types.js';
import {
  asInt,
  asList,
  asNumber,
  asObject,
  asString,
  asUint,
  describe,
  MISSING,
  Struct,
  U32,
} from './validate-primitives.js';

// ---------------------------------------------------------------- handshake and registration

const ENCODINGS: readonly Encoding[] = ['json', 'msgpack', 'cbor'];
function asEncoding(v: unknown, path: string): Encoding {
  const s = asString(v, path);
  if ((ENCODINGS as readonly string[]).includes(s)) return s as Encoding;
  throw invalidMessage(path, `unknown encoding "${s}" (json, msgpack, cbor)`);
}

const FEATURE_FIELDS = [
  'streaming_body',
  'websocket',
  'guardrails',
  'config_push',
  'metrics_export',
  'concurrent_requests',
  'cancellation',
  'flow_control',
  'health_reporting',
];
const LIMIT_FIELDS = [
  'max_body_size',
  'max_concurrency',
  'preferred_chunk_size',
  'max_memory',
  'max_processing_time_ms',
];
const CAPABILITY_FIELDS = ['agent_id', 'name', 'version', 'supported_events', 'features', 'limits'];

/** UdsCapabilities: every field required, as the Rust proxy requires. */
export function parseCapabilities(v: unknown, path = 'capabilities'): AgentCapabilities {
  const s = new Struct(v, path, CAPABILITY_FIELDS);
  const f = new Struct(s.req('features'), s.at('features'), FEATURE_FIELDS);
  const features: AgentFeatures = {
    streaming_body: f.bool('streaming_body'),
    websocket: f.bool('websocket'),
    guardrails: f.bool('guardrails'),
    config_push: f.bool('config_push'),
    metrics_export: f.bool('metrics_export'),
    concurrent_requests: f.uint('concurrent_requests', U32),
    cancellation: f.bool('cancellation'),
    flow_control: f.bool('flow_control'),
    health_reporting: f.bool('health_reporting'),
  };
  const l = new Struct(s.req('limits'), s.at('limits'), LIMIT_FIELDS);
  const limits: AgentLimits = {
    max_body_size: l.uint('max_body_size'),
    max_concurrency: l.uint('max_concurrency', U32),
    preferred_chunk_size: l.uint('preferred_chunk_size'),
  };
  const mem = l.optUint('max_memory');
  if (mem !== null) limits.max_memory = mem;
  const mpt = l.optUint('max_processing_time_ms');
  if (mpt !== null) limits.max_processing_time_ms = mpt;
  return {
    agent_id: s.str('agent_id'),
    name: s.str('name'),
    version: s.str('version'),
    supported_events: asList(s.req('supported_events'), s.at('supported_events'), asInt),
    features,
    limits,
  };
}

export function parseHandshakeRequest(v: unknown, path = 'HandshakeRequest'): HandshakeRequest {
  const s = new Struct(v, path, [
    'supported_versions',
    'proxy_id',
    'proxy_version',
    'config',
    'supported_encodings',
  ]);
  const enc = s.raw('supported_encodings');
  return {
    supported_versions: asList(s.req('supported_versions'), s.at('supported_versions'), (x, p) =>
      asUint(x, p, U32),
    ),
    proxy_id: s.str('proxy_id'),
    proxy_version: s.str('proxy_version'),
    config: s.any('config'),
    // Unknown names are kept out rather than failing, so a picket agent never
    // drops a proxy that offers an encoding it does not know.
    supported_encodings:
      enc === MISSING || enc === null
        ? []
        : asList(enc, s.at('supported_encodings'), asString).filter((e): e is Encoding =>
            (ENCODINGS as readonly string[]).includes(e),
          ),
  };
}

export function parseHandshakeResponse(v: unknown, path = 'HandshakeResponse'): HandshakeResponse {
  const s = new Struct(v, path, [
    'protocol_version',
    'capabilities',
    'success',
    'error',
    'encoding',
  ]);
  const enc = s.raw('encoding');
  const r: HandshakeResponse = {
    protocol_version: s.uint('protocol_version', U32),
    capabilities: parseCapabilities(s.req('capabilities'), s.at('capabilities')),
    success: s.bool('success'),
    error: s.optStr('error'),
    encoding: enc === MISSING || enc === null ? 'json' : asEncoding(enc, s.at('encoding')),
  };
  const ext = s.raw('picket');
  if (ext !== MISSING && ext !== null) r.picket = parsePicketExtension(ext, s.at('picket'));
  return r;
}

function parsePicketExtension(v: unknown, path: string): PicketExtension {
  const s = new Struct(v, path, ['version', 'binary_bodies']);
  return {
    version: s.uintDefault('version', 1, U32),
    binary_bodies: s.boolDefault('binary_bodies', false),
  };
}

export function parseRegistrationRequest(
  v: unknown,
  path = 'RegistrationRequest',
): RegistrationRequest {
  const s = new Struct(v, path, [
    'protocol_version',
    'agent_id',
    'capabilities',
    'auth_token',
    'metadata',
  ]);
  return {
    protocol_version: s.uint('protocol_version', U32),
    agent_id: s.str('agent_id'),
    capabilities: parseCapabilities(s.req('capabilities'), s.at('capabilities')),
    auth_token: s.optStr('auth_token'),
    metadata: s.any('metadata'),
  };
}

export function parseRegistrationResponse(
  v: unknown,
  path = 'RegistrationResponse',
): RegistrationResponse {
  const s = new Struct(v, path, ['success', 'error', 'proxy_id', 'proxy_version', 'connection_id']);
  return {
    success: s.bool('success'),
    error: s.optStr('error'),
    proxy_id: s.str('proxy_id'),
    proxy_version: s.str('proxy_version'),
    connection_id: s.str('connection_id'),
  };
}

// ---------------------------------------------------------------- control messages

export function parseCancel(v: unknown, path = 'Cancel'): CancelMessage {
  const s = new Struct(v, path, ['correlation_id', 'reason', 'timestamp_ms']);
  return {
    correlation_id: s.str('correlation_id'),
    reason: s.uint('reason', U32),
    timestamp_ms: s.uintDefault('timestamp_ms', 0),
  };
}

export function parsePing(v: unknown, path = 'Ping'): PingMessage {
  const s = new Struct(v, path, ['sequence', 'timestamp_ms']);
  return { sequence: s.uint('sequence'), timestamp_ms: s.uint('timestamp_ms') };
}

export function parseHealthStatus(v: unknown, path = 'HealthStatus'): HealthStatusMessage {
  const s = new Struct(v, path, ['state', 'message']);
  const state = s.raw('state');
  const msg: HealthStatusMessage = {
    state: state === MISSING || state === null ? 0 : asInt(state, s.at('state')),
  };
  const text = s.optStr('message');
  if (text !== null) msg.message = text;
  return msg;
}

export function parseFlowControl(v: unknown, path = 'FlowControl'): FlowControlMessage {
  const s = new Struct(v, path, ['action']);
  const a = s.raw('action');
  return { action: a === MISSING || a === null ? 0 : asInt(a, s.at('action')) };
}

function parseLe(v: unknown, path: string): number {
  if (typeof v === 'number') return v;
  if (v === '+Inf' || v === 'Inf' || v === 'inf' || v === '+inf') return Number.POSITIVE_INFINITY;
  if (v === '-Inf' || v === '-inf') return Number.NEGATIVE_INFINITY;
  if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
  throw invalidMessage(path, `expected a number or "+Inf", got ${describe(v)}`);
}

function parseMetricBase(s: Struct): {
  name: string;
  help?: string;
  labels: Record<string, string>;
} {
  const base: { name: string; help?: string; labels: Record<string, string> } = {
    name: s.str('name'),
    labels: s.strMap('labels'),
  };
  const help = s.optStr('help');
  if (help !== null) base.help = help;
  return base;
}

export function parseMetricsReport(v: unknown, path = 'MetricsReport'): MetricsReport {
  const s = new Struct(v, path, [
    'agent_id',
    'timestamp_ms',
    'interval_ms',
    'counters',
    'gauges',
    'histograms',
  ]);
  const list = <T>(key: string, item: (x: unknown, p: string) => T): T[] => {
    const raw = s.raw(key);
    return raw === MISSING || raw === null ? [] : asList(raw, s.at(key), item);
  };
  return {
    agent_id: s.str('agent_id'),
    timestamp_ms: s.uint('timestamp_ms'),
    interval_ms: s.uint('interval_ms'),
    counters: list('counters', (x, p): CounterMetric => {
      const c = new Struct(x, p, ['name', 'help', 'labels', 'value']);
      return { ...parseMetricBase(c), value: c.uint('value') };
    }),
    gauges: list('gauges', (x, p): GaugeMetric => {
      const g = new Struct(x, p, ['name', 'help', 'labels', 'value']);
      return { ...parseMetricBase(g), value: g.num('value') };
    }),
    histograms: list('histograms', (x, p): HistogramMetric => {
      const h = new Struct(x, p, ['name', 'help', 'labels', 'sum', 'count', 'buckets']);
      return {
        ...parseMetricBase(h),
        sum: h.num('sum'),
        count: h.uint('count'),
        buckets: asList(h.req('buckets'), h.at('buckets'), (b, bp) => {
          const bs = new Struct(b, bp, ['le', 'count']);
          return { le: parseLe(bs.req('le'), bs.at('le')), count: bs.uint('count') };
        }),
      };
    }),
  };
}

function parseRule(v: unknown, path: string): RuleDefinition {
  const s = new Struct(v, path, ['id', 'priority', 'definition', 'enabled', 'description', 'tags']);
  return {
    id: s.str('id'),
    priority: asInt(s.req('priority'), s.at('priority')),
    definition: s.any('definition'),
    enabled: s.bool('enabled'),
    description: s.optStr('description'),
    tags: s.strList('tags'),
  };
}

function parseConfigUpdateType(v: unknown, path: string): ConfigUpdateType {
  const obj = asObject(v, path);
  const type = asString(obj.type, `${path}.type`);
  const s = new Struct(obj, path, []);
  switch (type) {
    case 'request_reload':
      return { type };
    case 'rule_update':
      return {
        type,
        rule_set: s.str('rule_set'),
        rules: asList(s.req('rules'), s.at('rules'), parseRule),
        remove_rules: s.strList('remove_rules', true),
      };
    case 'list_update':
      return {
        type,
        list_id: s.str('list_id'),
        add: s.strList('add', true),
        remove: s.strList('remove', true),
      };
    case 'restart_required':
      return { type, reason: s.str('reason'), grace_period_ms: s.uint('grace_period_ms') };
    case 'config_error':
      return { type, error: s.str('error'), field: s.optStr('field') };
    default:
      throw invalidMessage(
        `${path}.type`,
        `unknown update type "${type}" (request_reload, rule_update, list_update, restart_required, config_error)`,
      );
  }
}

export function parseConfigUpdateRequest(
  v: unknown,
  path = 'ConfigUpdateRequest',
): ConfigUpdateRequest {
  const s = new Struct(v, path, ['update_type', 'request_id', 'timestamp_ms']);
  return {
    update_type: parseConfigUpdateType(s.req('update_type'), s.at('update_type')),
    request_id: s.str('request_id'),
    timestamp_ms: s.uint('timestamp_ms'),
  };
}

const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export function parseGuardrailResponse(v: unknown, path = 'GuardrailResponse'): GuardrailResponse {
  const s = new Struct(v, path, ['detected', 'confidence', 'detections', 'redacted_content']);
  const raw = s.raw('detections');
  const r: GuardrailResponse = {
    detected: s.bool('detected'),
    confidence: s.numDefault('confidence', 0),
    detections:
      raw === MISSING || raw === null
        ? []
        : asList(raw, s.at('detections'), (x, p): GuardrailDetection => {
            const d = new Struct(x, p, [
              'category',
              'description',
              'severity',
              'confidence',
              'span',
            ]);
            const sev = d.strDefault('severity', 'medium');
            if (!(SEVERITIES as readonly string[]).includes(sev)) {
              throw invalidMessage(
                d.at('severity'),
                `unknown severity "${sev}" (low, medium, high, critical)`,
              );
            }
            const det: GuardrailDetection = {
              category: d.str('category'),
              description: d.str('description'),
              severity: sev as GuardrailDetection['severity'],
            };
            const c = d.raw('confidence');
            if (c !== MISSING && c !== null) det.confidence = asNumber(c, d.at('confidence'));
            const span = d.raw('span');
            if (span !== MISSING && span !== null) {
              const sp = new Struct(span, d.at('span'), ['start', 'end']);
              det.span = { start: sp.uint('start'), end: sp.uint('end') };
            }
            return det;
          }),
  };
  const red = s.optStr('redacted_content');
  if (red !== null) r.redacted_content = red;
  return r;
}
