import { describe, expect, it } from 'vitest';
import {
  AgentProtocolError,
  allow,
  block,
  cancelReasonFromGrpc,
  cancelReasonFromUds,
  cancelReasonToGrpc,
  cancelReasonToUds,
  challenge,
  createCapabilities,
  decisionKind,
  describeMessageType,
  eventTypeFromNumber,
  flowActionFromWire,
  guardrailResult,
  healthStateFromWire,
  healthStateToWire,
  isMessageType,
  MessageType,
  needsMore,
  parseAgentResponse,
  parseCapabilities,
  parseConfigUpdateRequest,
  parseEvent,
  parseGuardrailResponse,
  parseHandshakeRequest,
  parseMetricsReport,
  parseRegistrationRequest,
  parseRequestHeadersEvent,
  putOwn,
  redirect,
  removeHeader,
  responseCorrelationId,
  salvageCorrelationId,
  setHeader,
} from '../src/index.js';

function invalid(fn: () => unknown): AgentProtocolError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AgentProtocolError);
    expect((e as AgentProtocolError).code).toBe('INVALID_MESSAGE');
    return e as AgentProtocolError;
  }
  throw new Error('expected INVALID_MESSAGE');
}

describe('constants and enums', () => {
  it('uses the code table ids', () => {
    expect(MessageType.Cancel).toBe(0x40);
    expect(MessageType.Ping).toBe(0x41);
    expect(MessageType.Pong).toBe(0x42);
    expect(MessageType.HealthStatus).toBe(0x30);
    expect(isMessageType(0x21)).toBe(false);
    expect(isMessageType(0xf0)).toBe(false);
    expect(describeMessageType(0xff)).toBe('unknown (0xff)');
    expect(describeMessageType(0x10)).toBe('RequestHeaders (0x10)');
  });

  it('numbers cancel reasons 0-based on UDS and 1-based on gRPC', () => {
    expect(cancelReasonToUds('timeout')).toBe(1);
    expect(cancelReasonToGrpc('timeout')).toBe(2);
    expect(cancelReasonToUds('client_disconnect')).toBe(0);
    expect(cancelReasonToGrpc('manual')).toBe(6);
    expect(cancelReasonFromUds(4)).toBe('proxy_shutdown');
    expect(cancelReasonFromGrpc(5)).toBe('proxy_shutdown');
    expect(cancelReasonFromUds(99)).toBe('manual');
  });

  it('maps health, flow and event numbers', () => {
    expect(healthStateToWire('draining')).toBe(3);
    expect(healthStateFromWire(4)).toBe('unhealthy');
    expect(healthStateFromWire(0)).toBeUndefined();
    expect(flowActionFromWire(1)).toBe('pause');
    expect(flowActionFromWire(7)).toBe('resume');
    expect(eventTypeFromNumber(8)).toBe('configure');
    expect(eventTypeFromNumber(0)).toBe('configure');
    expect(eventTypeFromNumber(1)).toBe('request_headers');
  });
});

describe('builders', () => {
  it('make complete responses', () => {
    const r = allow({ requestHeaders: [setHeader('x-a', '1'), removeHeader('x-b')], tags: ['t'] });
    expect(r).toEqual({
      version: 2,
      decision: 'allow',
      request_headers: [{ set: { name: 'x-a', value: '1' } }, { remove: { name: 'x-b' } }],
      response_headers: [],
      routing_metadata: {},
      audit: { tags: ['t'], rule_ids: [], confidence: null, reason_codes: [], custom: {} },
      needs_more: false,
      request_body_mutation: null,
      response_body_mutation: null,
      websocket_decision: null,
    });
    expect(block(403, { body: 'no' }).decision).toEqual({
      block: { status: 403, body: 'no', headers: null },
    });
    expect(redirect('https://x/').decision).toEqual({
      redirect: { url: 'https://x/', status: 302 },
    });
    expect(decisionKind(challenge('captcha', { k: 'v' }).decision)).toBe('challenge');
    expect(needsMore().needs_more).toBe(true);
    const g = guardrailResult({ detected: true, confidence: 0.9, detections: [] });
    expect(JSON.parse(g.routing_metadata.guardrail_response ?? '')).toMatchObject({
      detected: true,
    });
  });

  it('creates capabilities with every field a Rust proxy requires', () => {
    const caps = createCapabilities({ agentId: 'a', events: ['configure', 'request_headers'] });
    expect(caps.supported_events).toEqual([1, 8]);
    expect(parseCapabilities(JSON.parse(JSON.stringify(caps)))).toEqual(caps);
  });
});

describe('validators (spec Part C acceptance facts)', () => {
  it('accepts a minimal response and fills defaults', () => {
    const r = parseAgentResponse({ version: 2, decision: 'allow' });
    expect(r).toEqual(allow());
    expect(parseAgentResponse({ version: 2, decision: { allow: null } }).decision).toBe('allow');
    const b = parseAgentResponse({ version: 2, decision: { block: { status: 403 } } });
    expect(b.decision).toEqual({ block: { status: 403, body: null, headers: null } });
  });

  it('rejects a response without version, or with "Allow"', () => {
    expect(invalid(() => parseAgentResponse({ decision: 'allow' })).message).toContain(
      'AgentResponse.version',
    );
    expect(invalid(() => parseAgentResponse({ version: 2, decision: 'Allow' })).message).toContain(
      'unknown decision "Allow"',
    );
  });

  it('accepts rmp-serde positional arrays, short arrays included', () => {
    expect(parseAgentResponse([2, 'allow']).decision).toBe('allow');
    const r = parseAgentResponse([
      2,
      { block: [403, 'Forbidden path', null] },
      [{ set: ['x', 'y'] }],
      [],
      {},
      [['echo'], [], null, [], { correlation_id: 'req-1' }],
      false,
      null,
      null,
      null,
    ]);
    expect(r.decision).toEqual({ block: { status: 403, body: 'Forbidden path', headers: null } });
    expect(r.request_headers).toEqual([{ set: { name: 'x', value: 'y' } }]);
    expect(responseCorrelationId(r)).toBe('req-1');
    invalid(() => parseAgentResponse(new Array(11).fill(null)));
  });

  it('reads bin data as UTF-8 for string fields and base64 text for bodies', () => {
    const chunk = parseEvent('request_body_chunk', {
      correlation_id: new TextEncoder().encode('req-1'),
      data: 'aGVsbG8=',
      is_last: true,
    });
    expect(chunk.correlation_id).toBe('req-1');
    expect(Buffer.from(chunk.data).toString()).toBe('hello');
    expect(chunk.total_size).toBeNull();
    expect(chunk.chunk_index).toBe(0);
    expect(chunk.bytes_received).toBe(0);
    const raw = parseEvent('request_body_chunk', {
      correlation_id: 'c',
      data: new Uint8Array([0, 255]),
      is_last: false,
    });
    expect([...raw.data]).toEqual([0, 255]);
    expect(
      invalid(() =>
        parseEvent('request_body_chunk', { correlation_id: 'c', data: 'a*b', is_last: true }),
      ).message,
    ).toContain('RequestBodyChunk.data');
    invalid(() =>
      parseEvent('request_body_chunk', {
        correlation_id: new Uint8Array([0xff, 0xfe]),
        data: '',
        is_last: true,
      }),
    );
  });

  it('range-checks integers (client_port 70000)', () => {
    const e = {
      metadata: {
        correlation_id: 'c',
        request_id: 'r',
        client_ip: '1.2.3.4',
        client_port: 70000,
        protocol: 'HTTP/1.1',
        timestamp: 't',
      },
      method: 'GET',
      uri: '/',
      headers: {},
    };
    expect(invalid(() => parseRequestHeadersEvent(e)).message).toContain(
      'RequestHeaders.metadata.client_port',
    );
    e.metadata.client_port = 1;
    const ok = parseRequestHeadersEvent(e);
    expect(ok.metadata.server_name).toBeNull();
    expect('traceparent' in ok.metadata).toBe(false);
    // An 11-element metadata array (Rust's msgpack without traceparent) is tolerated.
    const arr = parseRequestHeadersEvent({
      ...e,
      metadata: ['c', 'r', '1.2.3.4', 1, null, 'HTTP/1.1', null, null, null, null, 't'],
    });
    expect(arr.metadata.timestamp).toBe('t');
    expect(salvageCorrelationId({ metadata: ['c'] })).toBe('c');
  });

  it('requires every capability field', () => {
    const caps = createCapabilities({ agentId: 'a' });
    const broken = JSON.parse(JSON.stringify(caps));
    broken.features = {};
    expect(invalid(() => parseCapabilities(broken)).message).toContain(
      'capabilities.features.streaming_body',
    );
  });

  it('drops unknown encodings in a handshake request instead of failing', () => {
    const r = parseHandshakeRequest({
      supported_versions: [2],
      proxy_id: 'p',
      proxy_version: '1',
      config: null,
      supported_encodings: ['cbor', 'zstd', 'json'],
    });
    expect(r.supported_encodings).toEqual(['cbor', 'json']);
    expect(
      parseHandshakeRequest({ supported_versions: [2], proxy_id: 'p', proxy_version: '1' })
        .supported_encodings,
    ).toEqual([]);
  });

  it('parses registrations, metrics, config updates and guardrail results', () => {
    const reg = parseRegistrationRequest({
      protocol_version: 2,
      agent_id: 'waf-1',
      capabilities: createCapabilities({ agentId: 'waf-1' }),
      auth_token: null,
      metadata: null,
    });
    expect(reg.auth_token).toBeNull();
    const m = parseMetricsReport({
      agent_id: 'a',
      timestamp_ms: 1,
      interval_ms: 10,
      histograms: [
        {
          name: 'h',
          labels: {},
          sum: 1.5,
          count: 2,
          buckets: [
            { le: 0.1, count: 1 },
            { le: '+Inf', count: 2 },
          ],
        },
      ],
    });
    expect(m.histograms[0]?.buckets[1]?.le).toBe(Number.POSITIVE_INFINITY);
    expect(m.counters).toEqual([]);
    const cu = parseConfigUpdateRequest({
      update_type: { type: 'list_update', list_id: 'ips', add: ['1.1.1.1'], remove: [] },
      request_id: 'r1',
      timestamp_ms: 5,
    });
    expect(cu.update_type).toEqual({
      type: 'list_update',
      list_id: 'ips',
      add: ['1.1.1.1'],
      remove: [],
    });
    invalid(() =>
      parseConfigUpdateRequest({ update_type: { type: 'nope' }, request_id: 'r', timestamp_ms: 1 }),
    );
    expect(parseGuardrailResponse({ detected: false })).toEqual({
      detected: false,
      confidence: 0,
      detections: [],
    });
  });

  it('keeps a "__proto__" header as a header and survives hostile objects', () => {
    const e = parseRequestHeadersEvent(
      JSON.parse(
        '{"metadata":{"correlation_id":"c","request_id":"r","client_ip":"1.2.3.4","client_port":1,' +
          '"protocol":"HTTP/1.1","timestamp":"t"},"method":"GET","uri":"/",' +
          '"headers":{"__proto__":["x"],"a":["b"]}}',
      ),
    );
    expect(Object.getPrototypeOf(e.headers)).toBe(Object.prototype);
    expect(Object.keys(e.headers)).toEqual(['__proto__', 'a']);
    expect(
      invalid(() => parseAgentResponse({ version: { toString: 1 }, decision: 'allow' })).message,
    ).toContain('an object');
  });

  it('never throws anything but INVALID_MESSAGE on garbage', () => {
    const garbage: unknown[] = [
      null,
      1,
      'x',
      [],
      {},
      [[]],
      { version: -1 },
      { decision: {} },
      true,
    ];
    for (const g of garbage) {
      invalid(() => parseAgentResponse(g));
      invalid(() => parseRequestHeadersEvent(g));
    }
  });
});

describe('putOwn', () => {
  it('keeps __proto__ and other prototype names as own entries', () => {
    const out: Record<string, number> = {};
    putOwn(out, '__proto__', 1);
    putOwn(out, 'constructor', 2);
    putOwn(out, 'x', 3);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.keys(out)).toEqual(['__proto__', 'constructor', 'x']);
    expect(Object.getOwnPropertyDescriptor(out, '__proto__')?.value).toBe(1);
    expect(JSON.stringify(out)).toBe('{"__proto__":1,"constructor":2,"x":3}');
  });
});
