/** fast-check generators of valid protocol messages (what the validators return, field for field). */
import type {
  AgentCapabilities,
  AgentResponse,
  ConfigUpdateRequest,
  Decision,
  EventMap,
  EventType,
  HeaderOp,
  HealthStatusMessage,
  MetricsReport,
  WebSocketDecision,
} from '@picket/protocol';
import fc from 'fast-check';

/** Valid Unicode text (no lone surrogates: Rust strings cannot hold them). */
export const text = fc.string({ unit: 'grapheme', maxLength: 12 });
const key = text.filter((k) => k !== '__proto__');
// null-prototype objects included on purpose: encoders must cope with them
const dict = <T>(value: fc.Arbitrary<T>) => fc.dictionary(key, value, { maxKeys: 4 });
const optText = fc.option(text, { nil: null });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.maxSafeNat();
const bytes = fc.uint8Array({ maxLength: 48 });
const noNegZero = (x: number) => (x === 0 ? 0 : x);
const f64 = fc.double({ noNaN: true, noDefaultInfinity: true }).map(noNegZero);

/** JSON data as a Rust `serde_json::Value` can hold it: no -0, no `__proto__` keys, well-formed strings. */
function clean(v: unknown): unknown {
  if (typeof v === 'number') return noNegZero(v);
  if (typeof v === 'string') return Buffer.from(v, 'utf8').toString('utf8');
  if (Array.isArray(v)) return v.map(clean);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const ck = clean(k) as string;
      if (ck !== '__proto__') out[ck] = clean(x);
    }
    return out;
  }
  return v;
}
export const jsonValue = fc.jsonValue({ maxDepth: 3 }).map(clean);

export const requestHeaders = fc.record({
  metadata: fc.record(
    {
      correlation_id: text,
      request_id: text,
      client_ip: text,
      client_port: u16,
      server_name: optText,
      protocol: text,
      tls_version: optText,
      tls_cipher: optText,
      route_id: optText,
      upstream_id: optText,
      timestamp: text,
      traceparent: text,
    },
    {
      requiredKeys: [
        'correlation_id',
        'request_id',
        'client_ip',
        'client_port',
        'server_name',
        'protocol',
        'tls_version',
        'tls_cipher',
        'route_id',
        'upstream_id',
        'timestamp',
      ],
    },
  ),
  method: text,
  uri: text,
  headers: dict(fc.array(text, { maxLength: 3 })),
});

const requestBodyChunk = fc.record({
  correlation_id: text,
  data: bytes,
  is_last: fc.boolean(),
  total_size: fc.option(u64, { nil: null }),
  chunk_index: u32,
  bytes_received: u64,
});
const responseBodyChunk = fc.record({
  correlation_id: text,
  data: bytes,
  is_last: fc.boolean(),
  total_size: fc.option(u64, { nil: null }),
  chunk_index: u32,
  bytes_sent: u64,
});
const responseHeaders = fc.record({
  correlation_id: text,
  status: u16,
  headers: dict(fc.array(text, { maxLength: 3 })),
});
const requestComplete = fc.record({
  correlation_id: text,
  status: u16,
  duration_ms: u64,
  request_body_size: u64,
  response_body_size: u64,
  upstream_attempts: u32,
  error: optText,
});
const webSocketFrame = fc.record({
  correlation_id: text,
  opcode: fc.constantFrom('continuation', 'text', 'binary', 'close', 'ping', 'pong'),
  data: bytes,
  client_to_server: fc.boolean(),
  frame_index: u64,
  fin: fc.boolean(),
  route_id: optText,
  client_ip: text,
});
const guardrailInspect = fc.record(
  {
    correlation_id: text,
    inspection_type: fc.constantFrom('prompt_injection' as const, 'pii_detection' as const),
    content: text,
    model: text,
    categories: fc.array(text, { maxLength: 3 }),
    route_id: text,
    metadata: dict(text),
  },
  { requiredKeys: ['correlation_id', 'inspection_type', 'content', 'categories', 'metadata'] },
);
const configure = fc.record({ correlation_id: text, config: jsonValue, config_version: optText });

/** One generator per event type. */
export const events: { [K in EventType]: fc.Arbitrary<EventMap[K]> } = {
  request_headers: requestHeaders,
  request_body_chunk: requestBodyChunk,
  response_headers: responseHeaders,
  response_body_chunk: responseBodyChunk,
  request_complete: requestComplete,
  web_socket_frame: webSocketFrame,
  guardrail_inspect: guardrailInspect,
  configure,
};

const decision: fc.Arbitrary<Decision> = fc.oneof(
  fc.constant('allow' as const),
  fc.record({
    block: fc.record({ status: u16, body: optText, headers: fc.option(dict(text), { nil: null }) }),
  }),
  fc.record({ redirect: fc.record({ url: text, status: u16 }) }),
  fc.record({ challenge: fc.record({ challenge_type: text, params: dict(text) }) }),
);
const headerOp: fc.Arbitrary<HeaderOp> = fc.oneof(
  fc.record({ set: fc.record({ name: text, value: text }) }),
  fc.record({ add: fc.record({ name: text, value: text }) }),
  fc.record({ remove: fc.record({ name: text }) }),
);
const mutation = fc.option(fc.record({ data: optText, chunk_index: u32 }), { nil: null });
const wsDecision: fc.Arbitrary<WebSocketDecision | null> = fc.option(
  fc.oneof(
    fc.constant('allow' as const),
    fc.constant('drop' as const),
    fc.record({ close: fc.record({ code: u16, reason: text }) }),
  ),
  { nil: null },
);

export const agentResponse: fc.Arbitrary<AgentResponse> = fc.record({
  version: u32,
  decision,
  request_headers: fc.array(headerOp, { maxLength: 3 }),
  response_headers: fc.array(headerOp, { maxLength: 3 }),
  routing_metadata: dict(text),
  audit: fc.record({
    tags: fc.array(text, { maxLength: 3 }),
    rule_ids: fc.array(text, { maxLength: 3 }),
    confidence: fc.option(
      fc.oneof(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: -1e30, max: 1e30, noNaN: true }),
      ),
      { nil: null },
    ),
    reason_codes: fc.array(text, { maxLength: 3 }),
    custom: dict(jsonValue),
  }),
  needs_more: fc.boolean(),
  request_body_mutation: mutation,
  response_body_mutation: mutation,
  websocket_decision: wsDecision,
});

export const health: fc.Arbitrary<HealthStatusMessage> = fc.record(
  { state: fc.integer(), message: text },
  { requiredKeys: ['state'] },
);

const labels = dict(text);
export const metrics: fc.Arbitrary<MetricsReport> = fc.record({
  agent_id: text,
  timestamp_ms: u64,
  interval_ms: u64,
  counters: fc.array(
    fc.record(
      { name: text, help: text, labels, value: u64 },
      { requiredKeys: ['name', 'labels', 'value'] },
    ),
    { maxLength: 2 },
  ),
  gauges: fc.array(
    fc.record(
      { name: text, help: text, labels, value: f64 },
      { requiredKeys: ['name', 'labels', 'value'] },
    ),
    { maxLength: 2 },
  ),
  histograms: fc.array(
    fc.record(
      {
        name: text,
        help: text,
        labels,
        sum: f64,
        count: u64,
        buckets: fc.array(
          fc.record({
            le: fc.oneof(
              f64,
              fc.constant(Number.POSITIVE_INFINITY),
              fc.constant(Number.NEGATIVE_INFINITY),
            ),
            count: u64,
          }),
          { maxLength: 3 },
        ),
      },
      { requiredKeys: ['name', 'labels', 'sum', 'count', 'buckets'] },
    ),
    { maxLength: 2 },
  ),
});

const strings = fc.array(text, { maxLength: 3 });
export const configUpdate: fc.Arbitrary<ConfigUpdateRequest> = fc.record({
  update_type: fc.oneof(
    fc.constant({ type: 'request_reload' as const }),
    fc.record({
      type: fc.constant('rule_update' as const),
      rule_set: text,
      rules: fc.array(
        fc.record({
          id: text,
          priority: fc.integer(),
          definition: jsonValue,
          enabled: fc.boolean(),
          description: optText,
          tags: strings,
        }),
        { maxLength: 2 },
      ),
      remove_rules: strings,
    }),
    fc.record({
      type: fc.constant('list_update' as const),
      list_id: text,
      add: strings,
      remove: strings,
    }),
    fc.record({
      type: fc.constant('restart_required' as const),
      reason: text,
      grace_period_ms: u64,
    }),
    fc.record({ type: fc.constant('config_error' as const), error: text, field: optText }),
  ),
  request_id: text,
  timestamp_ms: u64,
});

export const capabilities: fc.Arbitrary<AgentCapabilities> = fc.record({
  agent_id: text,
  name: text,
  version: text,
  supported_events: fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 8 }),
  features: fc.record({
    streaming_body: fc.boolean(),
    websocket: fc.boolean(),
    guardrails: fc.boolean(),
    config_push: fc.boolean(),
    metrics_export: fc.boolean(),
    concurrent_requests: u32,
    cancellation: fc.boolean(),
    flow_control: fc.boolean(),
    health_reporting: fc.boolean(),
  }),
  limits: fc.record({ max_body_size: u64, max_concurrency: u32, preferred_chunk_size: u64 }),
});

export const encodingName = fc.constantFrom('json' as const, 'msgpack' as const, 'cbor' as const);
export { u32, u64 };
