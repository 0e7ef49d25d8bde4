import type {
  ConfigUpdateRequest,
  GuardrailInspectEvent,
  MetricsReport,
  RequestHeadersEvent,
  WebSocketFrameEvent,
} from '@picket/protocol';
import {
  allow,
  block,
  challenge,
  redirect,
  removeHeader,
  setHeader,
  websocketClose,
} from '@picket/protocol';
import { describe, expect, test } from 'vitest';
import {
  cborCodec,
  createMessageCodec,
  DEFAULT_OFFERED_ENCODINGS,
  encodeHandshakeRequest,
  formatF32,
  formatF64,
  getCodec,
  jsonCodec,
  msgpackCodec,
  negotiateEncoding,
  normalizeF32,
  SUPPORTED_ENCODINGS,
} from '../src/index.js';
import { expectProtocolError, hex, referenceEventJson, text } from './helpers.js';

const json = createMessageCodec('json');
const msgpack = createMessageCodec('msgpack');
const cbor = createMessageCodec('cbor');

describe('negotiateEncoding (spec 2.4)', () => {
  test('first offered entry we support wins', () => {
    expect(negotiateEncoding(['msgpack', 'json'])).toBe('msgpack');
    expect(negotiateEncoding(['json', 'msgpack'])).toBe('json');
    expect(negotiateEncoding(['cbor', 'msgpack'], ['json', 'msgpack'])).toBe('msgpack');
  });
  test('unknown names are skipped; nothing usable, empty or missing ⇒ json', () => {
    expect(negotiateEncoding(['brotli', 'msgpack'])).toBe('msgpack');
    expect(negotiateEncoding(['brotli'])).toBe('json');
    expect(negotiateEncoding([])).toBe('json');
    expect(negotiateEncoding(undefined)).toBe('json');
    expect(negotiateEncoding(['msgpack'], ['json'])).toBe('json');
  });
  test('json is always supported, even when left out of `supported`', () => {
    expect(negotiateEncoding(['json', 'msgpack'], ['msgpack'])).toBe('json');
  });
  test('defaults: picket offers msgpack then json (never cbor), supports all three', () => {
    expect(DEFAULT_OFFERED_ENCODINGS).toEqual(['msgpack', 'json']);
    expect([...SUPPORTED_ENCODINGS].sort()).toEqual(['cbor', 'json', 'msgpack']);
    // the default offer is what a Rust proxy built with binary-uds sends
    expect(
      text(
        encodeHandshakeRequest({
          supported_versions: [2],
          proxy_id: 'zentinel-proxy',
          proxy_version: '0.6.20',
          config: null,
          supported_encodings: [...DEFAULT_OFFERED_ENCODINGS],
        }),
      ),
    ).toContain('"supported_encodings":["msgpack","json"]');
  });
});

describe('generic codecs', () => {
  test('getCodec', () => {
    expect(getCodec('json')).toBe(jsonCodec);
    expect(getCodec('msgpack')).toBe(msgpackCodec);
    expect(getCodec('cbor')).toBe(cborCodec);
    expectProtocolError(() => getCodec('xml' as never), 'UNSUPPORTED');
    expectProtocolError(() => createMessageCodec('xml' as never), 'UNSUPPORTED');
  });

  test('values round-trip in every codec', () => {
    const value = { a: 1, b: [true, null, 'x'], c: { d: -2.5, big: 1767225600000 } };
    for (const c of [jsonCodec, msgpackCodec, cborCodec])
      expect(c.decode(c.encode(value))).toEqual(value);
  });

  test('msgpack and CBOR carry Uint8Array as plain byte strings', () => {
    const bytes = new Uint8Array([1, 2, 3]);
    expect(hex(msgpackCodec.encode(bytes))).toBe('c403010203');
    // CBOR major type 2, no tag 64 (tagUint8Array: false)
    expect(hex(cborCodec.encode(bytes))).toBe('43010203');
    expect(cborCodec.decode(cborCodec.encode({ d: bytes }))).toEqual({ d: bytes });
  });

  test('CBOR is plain: objects are ordinary definite maps, no record extension or packing', () => {
    // {"a":1} = a1 61 61 01 with a minimal header; cbor-x records would start with a tag (d8/d9/df…)
    expect(hex(cborCodec.encode({ a: 1 }))).toBe('a1616101');
    expect(hex(cborCodec.encode({ a: 'x', b: 'x', c: 'x' }))).toBe('a3616161786162617861636178');
    expect(cborCodec.decode(Uint8Array.from(Buffer.from('a1616101', 'hex')))).toEqual({ a: 1 });
    // 64-bit integers come back as numbers, not BigInt
    expect(cborCodec.decode(Uint8Array.from(Buffer.from('1b0000019b76daa800', 'hex')))).toBe(
      1767225600000,
    );
  });

  test('decode errors are INVALID_MESSAGE, encode errors INVALID_ARGUMENT', () => {
    expectProtocolError(
      () => jsonCodec.decode(new Uint8Array([0x7b])),
      'INVALID_MESSAGE',
      /^invalid JSON: /,
    );
    expectProtocolError(
      () => msgpackCodec.decode(new Uint8Array([0xc1])),
      'INVALID_MESSAGE',
      /^invalid msgpack: /,
    );
    expectProtocolError(
      () => cborCodec.decode(new Uint8Array([0xff])),
      'INVALID_MESSAGE',
      /^invalid CBOR: /,
    );
    expectProtocolError(
      () => jsonCodec.encode(10n),
      'INVALID_ARGUMENT',
      /cannot encode value as json/,
    );
    expectProtocolError(() => jsonCodec.encode(undefined), 'INVALID_ARGUMENT');
  });
});

const headersEvent: RequestHeadersEvent = {
  metadata: {
    correlation_id: 'c-1',
    request_id: 'r-1',
    client_ip: '::1',
    client_port: 1,
    protocol: 'HTTP/2',
    timestamp: '2026-01-01T00:00:00.123456789+00:00',
    traceparent: '00-aa-bb-01',
  },
  method: 'POST',
  uri: '/a?b=c',
  headers: {
    'x-b': ['2', '3'],
    Host: ['h'],
    'x-a': ['1'],
    'x-\u{1f600}': ['e'],
    'x-\uffff': ['f'],
    '10': ['n'],
    '9': ['n'],
  },
};

describe('JSON event layout', () => {
  test('header names sorted by UTF-8 bytes (integer-like and astral names too), None ⇒ null, traceparent when set', () => {
    const t = text(json.encodeEvent('request_headers', headersEvent, 'c-1'));
    expect(t).toBe(referenceEventJson('request_headers', headersEvent, 'c-1'));
    expect(t).toContain(
      '"headers":{"10":["n"],"9":["n"],"Host":["h"],"x-a":["1"],"x-b":["2","3"],"x-\uffff":["f"],"x-\u{1f600}":["e"]}',
    );
    expect(t).toContain(
      '"timestamp":"2026-01-01T00:00:00.123456789+00:00","tls_cipher":null,"tls_version":null,"traceparent":"00-aa-bb-01","upstream_id":null}',
    );
    expect(t).toContain('"route_id":null,"server_name":null');
  });

  test('the call correlation id is injected and overwrites the event id (as Rust inserts it)', () => {
    const ws: WebSocketFrameEvent = {
      correlation_id: 'own',
      opcode: 'text',
      data: new Uint8Array([104, 105]),
      client_to_server: true,
      frame_index: 3,
      fin: true,
      client_ip: '10.0.0.1',
    };
    expect(text(json.encodeEvent('web_socket_frame', ws, 'call'))).toBe(
      '{"client_ip":"10.0.0.1","client_to_server":true,"correlation_id":"call","data":"aGk=","fin":true,"frame_index":3,"opcode":"text","route_id":null}',
    );
    expect(
      JSON.parse(text(json.encodeEvent('request_headers', headersEvent, 'call'))).metadata
        .correlation_id,
    ).toBe('c-1');
  });

  test('guardrail: model and route_id omitted when absent, metadata sorted', () => {
    const g: GuardrailInspectEvent = {
      correlation_id: 'g',
      inspection_type: 'pii_detection',
      content: 'text',
      categories: ['email'],
      metadata: { z: '1', a: '2' },
    };
    expect(text(json.encodeEvent('guardrail_inspect', g, 'g'))).toBe(
      '{"categories":["email"],"content":"text","correlation_id":"g","inspection_type":"pii_detection","metadata":{"a":"2","z":"1"}}',
    );
    const withModel = { ...g, model: 'gpt', route_id: 'r' };
    expect(text(json.encodeEvent('guardrail_inspect', withModel, 'g'))).toBe(
      referenceEventJson('guardrail_inspect', withModel, 'g'),
    );
  });

  test('configure: config keys sorted at every level', () => {
    expect(
      text(
        json.encodeEvent(
          'configure',
          { correlation_id: '', config: { b: { y: 1, x: 2 }, a: [] } },
          'cfg',
        ),
      ),
    ).toBe('{"config":{"a":[],"b":{"x":2,"y":1}},"config_version":null,"correlation_id":"cfg"}');
  });

  test('request complete and response events', () => {
    expect(
      text(
        json.encodeEvent(
          'request_complete',
          {
            correlation_id: 'x',
            status: 200,
            duration_ms: 12,
            request_body_size: 0,
            response_body_size: 5,
            upstream_attempts: 1,
          },
          'x',
        ),
      ),
    ).toBe(
      '{"correlation_id":"x","duration_ms":12,"error":null,"request_body_size":0,"response_body_size":5,"status":200,"upstream_attempts":1}',
    );
    expect(
      text(
        json.encodeEvent(
          'response_headers',
          { correlation_id: 'x', status: 404, headers: {} },
          'x',
        ),
      ),
    ).toBe('{"correlation_id":"x","headers":{},"status":404}');
  });
});

describe('encoders refuse what a Rust peer rejects (INVALID_ARGUMENT, naming the field)', () => {
  test.each(['json', 'msgpack', 'cbor'] as const)('%s', (encoding) => {
    const c = createMessageCodec(encoding);
    const bad = { ...headersEvent, metadata: { ...headersEvent.metadata, client_port: 70000 } };
    expectProtocolError(
      () => c.encodeEvent('request_headers', bad, 'c'),
      'INVALID_ARGUMENT',
      /RequestHeaders\.metadata\.client_port/,
    );
    expectProtocolError(
      () => c.encodeEvent('request_headers', { ...headersEvent, method: undefined as never }, 'c'),
      'INVALID_ARGUMENT',
      /RequestHeaders\.method: expected a string/,
    );
    expectProtocolError(
      () => c.encodeResponse({ ...allow(), decision: 'Allow' as never }),
      'INVALID_ARGUMENT',
      /AgentResponse\.decision/,
    );
    expectProtocolError(
      () => c.encodeEvent('nope' as never, {} as never, 'c'),
      'INVALID_ARGUMENT',
      /nope/,
    );
    // a BigInt in custom has no JSON form; msgpack and CBOR carry it as a 64-bit integer
    if (encoding === 'json') {
      expectProtocolError(
        () => c.encodeResponse(allow({ custom: { n: 1n } })),
        'INVALID_ARGUMENT',
        /cannot encode AgentResponse as json: .*BigInt/,
      );
    } else {
      expect(
        c.decodeResponse(c.encodeResponse(allow({ custom: { n: 2n ** 60n } }))).audit.custom.n,
      ).toBe(2 ** 60);
    }
  });
});

describe('encodeResponse with a correlation id (UDS routing)', () => {
  test.each(['json', 'msgpack', 'cbor'] as const)('%s', (encoding) => {
    const c = createMessageCodec(encoding);
    const r = allow({ tags: ['t'], custom: { a: 1, correlation_id: 'old' } });
    const routed = c.decodeResponse(c.encodeResponse(r, 'cid-7'));
    // the key keeps its place; the caller's object is left alone
    expect(routed.audit.custom).toEqual({ a: 1, correlation_id: 'cid-7' });
    expect(Object.keys(routed.audit.custom)).toEqual(['a', 'correlation_id']);
    expect(r.audit.custom).toEqual({ a: 1, correlation_id: 'old' });
    const bare = c.decodeResponse(
      c.encodeResponse({ version: 1, decision: 'allow' } as never, 'x'),
    );
    expect(bare.audit.custom).toEqual({ correlation_id: 'x' });
    expect(bare.request_headers).toEqual([]);
    // without one, bytes are what they always were
    expect(c.encodeResponse(r)).toEqual(c.encodeResponse({ ...r }));
  });
});

describe('msgpack AgentResponse is rmp-serde’s positional layout', () => {
  test('every decision / op / mutation / websocket variant', () => {
    const responses = [
      block(429, { body: null, headers: { 'retry-after': '1' } }),
      redirect('https://login/', 302),
      challenge('captcha', { site: 'k' }),
      allow({
        requestHeaders: [setHeader('a', 'b'), removeHeader('c')],
        responseHeaders: [{ add: { name: 'x', value: 'y' } }],
        routingMetadata: { upstream: 'u' },
        confidence: 0.5,
        needsMore: true,
        requestBodyMutation: { data: null, chunk_index: 2 },
        responseBodyMutation: { data: 'new', chunk_index: 0 },
      }),
      websocketClose(1000, 'bye'),
    ];
    for (const r of responses) {
      for (const c of [json, msgpack, cbor])
        expect(c.decodeResponse(c.encodeResponse(r))).toEqual(r);
    }
    expect(msgpackCodec.decode(msgpack.encodeResponse(responses[0]!))).toEqual([
      2,
      { block: [429, null, { 'retry-after': '1' }] },
      [],
      [],
      {},
      [[], [], null, [], {}],
      false,
      null,
      null,
      null,
    ]);
    const rich = msgpackCodec.decode(msgpack.encodeResponse(responses[3]!)) as unknown[];
    expect(rich[2]).toEqual([{ set: ['a', 'b'] }, { remove: ['c'] }]);
    expect(rich[7]).toEqual([null, 2]);
    expect(msgpackCodec.decode(msgpack.encodeResponse(responses[4]!))).toContainEqual({
      close: [1000, 'bye'],
    });
  });

  test('fields missing from a hand-made response are written with their defaults', () => {
    const partial = { version: 2, decision: 'allow' } as never;
    expect(hex(msgpack.encodeResponse(partial))).toBe(hex(msgpack.encodeResponse(allow())));
    expect(text(json.encodeResponse(partial))).toBe(text(json.encodeResponse(allow())));
  });
});

describe('control messages', () => {
  const metrics: MetricsReport = {
    agent_id: 'a',
    timestamp_ms: 1767225600000,
    interval_ms: 10000,
    counters: [{ name: 'agent_requests_total', labels: { route: 'r' }, value: 7 }],
    gauges: [{ name: 'agent_in_flight_requests', help: 'in flight', labels: {}, value: 3 }],
    histograms: [
      {
        name: 'agent_requests_duration_seconds',
        labels: {},
        sum: 0.25,
        count: 2,
        buckets: [
          { le: 0.1, count: 1 },
          { le: Number.POSITIVE_INFINITY, count: 2 },
        ],
      },
    ],
  };
  const update: ConfigUpdateRequest = {
    update_type: {
      type: 'rule_update',
      rule_set: 'waf',
      rules: [
        {
          id: 'r1',
          priority: -1,
          definition: { b: 1, a: 2 },
          enabled: true,
          description: null,
          tags: ['t'],
        },
      ],
      remove_rules: [],
    },
    request_id: 'u1',
    timestamp_ms: 5,
  };

  test('JSON layout: declaration order, f64 with .0, +Inf bucket', () => {
    expect(text(json.encodeMetrics(metrics))).toBe(
      '{"agent_id":"a","timestamp_ms":1767225600000,"interval_ms":10000,' +
        '"counters":[{"name":"agent_requests_total","labels":{"route":"r"},"value":7}],' +
        '"gauges":[{"name":"agent_in_flight_requests","help":"in flight","labels":{},"value":3.0}],' +
        '"histograms":[{"name":"agent_requests_duration_seconds","labels":{},"sum":0.25,"count":2,"buckets":[{"le":0.1,"count":1},{"le":"+Inf","count":2}]}]}',
    );
    expect(text(json.encodeHealth({ state: 2, message: 'busy' }))).toBe(
      '{"state":2,"message":"busy"}',
    );
    expect(text(json.encodeFlowControl({ action: 1 }))).toBe('{"action":1}');
    expect(text(json.encodeConfigUpdate(update))).toBe(
      '{"update_type":{"type":"rule_update","rule_set":"waf","rules":[{"id":"r1","priority":-1,"definition":{"a":2,"b":1},"enabled":true,"description":null,"tags":["t"]}],"remove_rules":[]},"request_id":"u1","timestamp_ms":5}',
    );
  });

  test('msgpack writes f64 fields as float64 (cb) like Rust, even when integral', () => {
    const raw = msgpack.encodeMetrics(metrics);
    expect(hex(raw)).toContain(
      `a576616c7565cb${Buffer.from(new Float64Array([3]).buffer)
        .reverse()
        .toString('hex')}`,
    );
  });

  test.each(['json', 'msgpack', 'cbor'] as const)('%s round trip', (encoding) => {
    const c = createMessageCodec(encoding);
    expect(c.decodeMetrics(c.encodeMetrics(metrics))).toEqual(metrics);
    expect(c.decodeConfigUpdate(c.encodeConfigUpdate(update))).toEqual({
      ...update,
      update_type: {
        ...update.update_type,
        rules: [
          { ...(update.update_type as { rules: object[] }).rules[0], definition: { a: 2, b: 1 } },
        ],
      },
    });
    expect(c.decodeHealth(c.encodeHealth({ state: 4 }))).toEqual({ state: 4 });
    expect(c.decodeFlowControl(c.encodeFlowControl({ action: 2 }))).toEqual({ action: 2 });
    for (const t of [
      { type: 'request_reload' },
      { type: 'list_update', list_id: 'l', add: ['a'], remove: [] },
      { type: 'restart_required', reason: 'r', grace_period_ms: 100 },
      { type: 'config_error', error: 'e', field: null },
    ] as const) {
      const m = { update_type: t, request_id: 'q', timestamp_ms: 1 } as ConfigUpdateRequest;
      expect(c.decodeConfigUpdate(c.encodeConfigUpdate(m))).toEqual(m);
    }
  });
});

describe('Rust float formatting (serde_json / ryu)', () => {
  test.each([
    [0, '0.0'],
    [-0, '-0.0'],
    [1, '1.0'],
    [-2.5, '-2.5'],
    [0.1, '0.1'],
    [123456789, '123456789.0'],
    [1e15, '1000000000000000.0'],
    [1e16, '1e16'],
    [1.5e17, '1.5e17'],
    [0.0001, '0.0001'],
    [0.00001, '0.00001'],
    [1e-6, '1e-6'],
    [1.25e-7, '1.25e-7'],
    [5e-324, '5e-324'],
    [Number.POSITIVE_INFINITY, 'null'],
    [Number.NaN, 'null'],
  ])('f64 %s ⇒ %s', (x, expected) => {
    expect(formatF64(x)).toBe(expected);
  });

  test.each([
    [0.95, '0.95'],
    [1, '1.0'],
    [0.1 + 0.2, '0.3'],
    [1e-6, '0.000001'],
    [1e-7, '1e-7'],
    [1e12, '1000000000000.0'],
    [1e13, '1e13'],
    [16777217, '16777216.0'],
    [3.4028235e38, '3.4028235e38'],
    [1e39, 'null'],
  ])('f32 %s ⇒ %s', (x, expected) => {
    expect(formatF32(x)).toBe(expected);
  });

  test('normalizeF32 keeps the float32 value with its shortest digits', () => {
    expect(normalizeF32(Math.fround(0.95))).toBe(0.95);
    expect(normalizeF32(0.123456789)).toBe(0.12345679);
    expect(Math.fround(normalizeF32(0.7))).toBe(Math.fround(0.7));
  });
});
