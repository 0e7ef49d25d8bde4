/**
 * Every UDS / reverse / v1 golden vector of discrepancies-and-vectors.md Part B:
 * decode the exact bytes, check the fields, and encode our own messages back
 * to identical bytes wherever picket writes that message.
 */
import { goldenRequestHeaders } from '@picket/compliance';
import {
  agentResponse,
  block,
  createCapabilities,
  type HandshakeRequest,
  type HandshakeResponse,
  type RegistrationRequest,
  type RequestBodyChunkEvent,
  setHeader,
  ZENTINEL_PROXY_ID,
  ZENTINEL_PROXY_VERSION,
} from '@picket/protocol';
import { describe, expect, test } from 'vitest';
import {
  createMessageCodec,
  decodeCancel,
  decodeHandshakeRequest,
  decodeHandshakeResponse,
  decodePing,
  decodeRegistrationRequest,
  decodeRegistrationResponse,
  decodeV1Request,
  decodeV1Response,
  encodeCancel,
  encodeHandshakeRequest,
  encodeHandshakeResponse,
  encodePing,
  encodeRegistrationRequest,
  encodeRegistrationResponse,
  encodeV1Request,
  encodeV1Response,
  msgpackCodec,
} from '../src/index.js';
import { hex, payload, text, vectors } from './helpers.js';

const json = createMessageCodec('json');
const msgpack = createMessageCodec('msgpack');
const msgpackBin = createMessageCodec('msgpack', { binaryBodies: true });
const cbor = createMessageCodec('cbor');
const binaryCodecs = [msgpack, msgpackBin, cbor];

const echoCaps = createCapabilities({
  agentId: 'echo-agent',
  name: 'Echo Agent',
  version: '1.0.0',
  events: ['request_headers'],
});

/** The request of V3 / V4 / V10a. */
const adminRequest = goldenRequestHeaders();

const helloChunk: RequestBodyChunkEvent = {
  correlation_id: 'req-1',
  data: new TextEncoder().encode('hello'),
  is_last: true,
  total_size: 5,
  chunk_index: 0,
  bytes_received: 5,
};

const denylistBlock = (version: number, custom: Record<string, unknown>) => ({
  ...block(403, {
    body: 'Forbidden path',
    tags: ['denylist', 'blocked_path'],
    reasonCodes: ['PATH_BLOCKED'],
    custom,
  }),
  version,
});

const echoAllow = agentResponse('allow', {
  requestHeaders: [setHeader('X-Echo-Agent', 'req-1')],
  tags: ['echo'],
  custom: { correlation_id: 'req-1' },
});

test('fixture holds all 22 UDS / reverse / v1 vectors', () => {
  expect(vectors.map((v) => v.id)).toEqual([
    'V1',
    'V1b',
    'V2',
    'V3',
    'V4',
    'V4b',
    'V5',
    'V6a',
    'V6b',
    'V6c',
    'V7',
    'V7b',
    'V8',
    'V9a',
    'V9b',
    'V9c',
    'V10a',
    'V10b',
    'V11a',
    'V11b',
    'V11c',
    'V11d',
  ]);
  for (const v of vectors)
    if (v.payloadText !== undefined) expect(text(payload(v.id))).toBe(v.payloadText);
});

describe('handshake (always JSON)', () => {
  test.each([
    ['V1', ['json']],
    ['V1b', ['msgpack', 'json']],
  ] as const)('%s HandshakeRequest decodes and re-encodes byte for byte', (id, encodings) => {
    const m = decodeHandshakeRequest(payload(id));
    expect(m).toEqual({
      supported_versions: [2],
      proxy_id: 'zentinel-proxy',
      proxy_version: '0.6.20',
      config: null,
      supported_encodings: encodings,
    });
    const ours: HandshakeRequest = {
      supported_versions: [2],
      proxy_id: ZENTINEL_PROXY_ID,
      proxy_version: ZENTINEL_PROXY_VERSION,
      config: null,
      supported_encodings: [...encodings],
    };
    expect(hex(encodeHandshakeRequest(ours))).toBe(hex(payload(id)));
    expect(hex(encodeHandshakeRequest(m))).toBe(hex(payload(id)));
  });

  test('V2 HandshakeResponse from a Rust agent', () => {
    const m = decodeHandshakeResponse(payload('V2'));
    expect(m).toEqual({
      protocol_version: 2,
      capabilities: echoCaps,
      success: true,
      error: null,
      encoding: 'json',
    });
    const ours: HandshakeResponse = {
      protocol_version: 2,
      capabilities: echoCaps,
      success: true,
      error: null,
      encoding: 'json',
    };
    expect(hex(encodeHandshakeResponse(ours))).toBe(hex(payload('V2')));
  });

  test('the picket extension is appended last and read back', () => {
    const ours: HandshakeResponse = {
      protocol_version: 2,
      capabilities: echoCaps,
      success: true,
      error: null,
      encoding: 'msgpack',
      picket: { version: 1, binary_bodies: true },
    };
    const bytes = encodeHandshakeResponse(ours);
    expect(text(bytes)).toBe(
      `${text(payload('V2')).slice(0, -'"json"}'.length)}"msgpack","picket":{"version":1,"binary_bodies":true}}`,
    );
    expect(decodeHandshakeResponse(bytes)).toEqual(ours);
  });
});

describe('events', () => {
  test('V3 RequestHeaders JSON: decoded, and our encoding is identical (sorted keys + injected correlation_id)', () => {
    const e = json.decodeEvent('request_headers', payload('V3'));
    expect(e).toEqual(adminRequest);
    const ours = json.encodeEvent('request_headers', adminRequest, 'req-1');
    expect(hex(ours)).toBe(hex(payload('V3')));
    expect(JSON.parse(text(ours))).toEqual(JSON.parse(text(payload('V3'))));
    expect(Object.keys(JSON.parse(text(ours)))).toEqual([
      'correlation_id',
      'headers',
      'metadata',
      'method',
      'uri',
    ]);
  });

  test('V4 RequestHeaders msgpack from Rust (11-element metadata array, no traceparent) decodes', () => {
    for (const c of binaryCodecs.slice(0, 2)) {
      expect(c.decodeEvent('request_headers', payload('V4'))).toEqual(adminRequest);
    }
  });

  test('V4b RequestHeaders msgpack with traceparent (12-element array)', () => {
    const e = msgpack.decodeEvent('request_headers', payload('V4b'));
    expect(e).toEqual({
      ...adminRequest,
      metadata: {
        ...adminRequest.metadata,
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      },
    });
    // ours: a map with each key once and the full metadata as a map, which a Rust agent accepts
    for (const c of binaryCodecs) {
      const bytes = c.encodeEvent('request_headers', e, 'req-1');
      expect(c.decodeEvent('request_headers', bytes)).toEqual(e);
    }
    const raw = msgpackCodec.decode(
      msgpack.encodeEvent('request_headers', adminRequest, 'req-1'),
    ) as Record<string, unknown>;
    expect(Object.keys(raw)).toEqual(['correlation_id', 'metadata', 'method', 'uri', 'headers']);
    expect(Array.isArray(raw.metadata)).toBe(false);
    expect(Object.keys(raw.metadata as object)).toHaveLength(11);
  });

  test('V11a RequestBodyChunk JSON: decoded, and ours is identical', () => {
    expect(json.decodeEvent('request_body_chunk', payload('V11a'))).toEqual(helloChunk);
    const ours = json.encodeEvent('request_body_chunk', helloChunk, 'req-1');
    expect(hex(ours)).toBe(hex(payload('V11a')));
    expect(JSON.parse(text(ours))).toEqual(JSON.parse(text(payload('V11a'))));
  });

  test('V11b msgpack chunk with the duplicate correlation_id key (Rust proxy) decodes; ours has the key once', () => {
    expect(msgpack.decodeEvent('request_body_chunk', payload('V11b'))).toEqual(helloChunk);
    const ours = msgpack.encodeEvent('request_body_chunk', helloChunk, 'req-1');
    // fixmap(6): correlation_id, data, is_last, total_size, chunk_index, bytes_received
    expect(ours[0]).toBe(0x86);
    expect(text(ours).split('correlation_id')).toHaveLength(2);
    const raw = msgpackCodec.decode(ours) as Record<string, unknown>;
    expect(raw.data).toBe('aGVsbG8='); // base64 text towards anyone not advertising binary bodies
    const rawBin = msgpackCodec.decode(
      msgpackBin.encodeEvent('request_body_chunk', helloChunk, 'req-1'),
    ) as Record<string, unknown>;
    expect(rawBin.data).toEqual(new Uint8Array(Buffer.from('hello')));
  });

  test('V11c binary chunk path (positional array, None fields omitted) decodes positionally like rmp-serde', () => {
    const e = msgpack.decodeEvent('request_body_chunk', payload('V11c'));
    // [cid, bin, is_last, chunk_index 0, bytes_received 5]: positions shift, exactly as in Rust
    expect(e).toEqual({
      correlation_id: 'req-1',
      data: new TextEncoder().encode('hello'),
      is_last: true,
      total_size: 0,
      chunk_index: 5,
      bytes_received: 0,
    });
    expect(e.data.constructor).toBe(Uint8Array);
  });

  test('V11d binary chunk JSON fallback (both counters, one null) decodes as either chunk type', () => {
    expect(json.decodeEvent('request_body_chunk', payload('V11d'))).toEqual({
      ...helloChunk,
      total_size: null,
    });
    expect(json.decodeEvent('response_body_chunk', payload('V11d'))).toEqual({
      correlation_id: 'req-1',
      data: new TextEncoder().encode('hello'),
      is_last: true,
      total_size: null,
      chunk_index: 0,
      bytes_sent: 0,
    });
  });
});

describe('AgentResponse', () => {
  test('V5 Block JSON: decoded, and ours (built with block()) is identical', () => {
    const r = json.decodeResponse(payload('V5'));
    expect(r).toEqual(denylistBlock(2, { correlation_id: 'req-1' }));
    expect(hex(json.encodeResponse(denylistBlock(2, { correlation_id: 'req-1' })))).toBe(
      hex(payload('V5')),
    );
    expect(hex(json.encodeResponse(r))).toBe(hex(payload('V5')));
  });

  test('V6a Allow + set header JSON', () => {
    expect(json.decodeResponse(payload('V6a'))).toEqual(echoAllow);
    expect(hex(json.encodeResponse(echoAllow))).toBe(hex(payload('V6a')));
  });

  test('V6b msgpack: decoded, and the V6a content encoded as msgpack is byte-identical', () => {
    expect(msgpack.decodeResponse(payload('V6b'))).toEqual(echoAllow);
    expect(hex(msgpack.encodeResponse(echoAllow))).toBe(hex(payload('V6b')));
    expect(hex(msgpackBin.encodeResponse(json.decodeResponse(payload('V6a'))))).toBe(
      hex(payload('V6b')),
    );
  });

  test('V6c msgpack Block (struct variant as {block:[status, body, headers]})', () => {
    const r = msgpack.decodeResponse(payload('V6c'));
    expect(r).toEqual(block(403, { body: 'Forbidden path' }));
    expect(hex(msgpack.encodeResponse(r))).toBe(hex(payload('V6c')));
  });

  test('CBOR AgentResponse round-trips as a named map', () => {
    for (const r of [echoAllow, denylistBlock(2, { correlation_id: 'req-1' })]) {
      expect(cbor.decodeResponse(cbor.encodeResponse(r))).toEqual(r);
    }
  });
});

describe('control (always JSON)', () => {
  test('V7 Ping and V7b Pong (echoed bytes)', () => {
    for (const id of ['V7', 'V7b']) {
      expect(decodePing(payload(id))).toEqual({ sequence: 0, timestamp_ms: 1767225600000 });
      expect(hex(encodePing({ sequence: 0, timestamp_ms: 1767225600000 }))).toBe(hex(payload(id)));
    }
  });

  test('V8 Cancel, reason 1 = Timeout (0-based UDS numbering)', () => {
    const m = decodeCancel(payload('V8'));
    expect(m).toEqual({ correlation_id: 'req-1', reason: 1, timestamp_ms: 1767225600000 });
    expect(hex(encodeCancel(m))).toBe(hex(payload('V8')));
  });
});

describe('reverse registration (always JSON)', () => {
  test('V9a RegistrationRequest', () => {
    const m = decodeRegistrationRequest(payload('V9a'));
    const ours: RegistrationRequest = {
      protocol_version: 2,
      agent_id: 'waf-1',
      capabilities: { ...echoCaps, agent_id: 'waf-1' },
      auth_token: 'secret',
      metadata: null,
    };
    expect(m).toEqual(ours);
    expect(hex(encodeRegistrationRequest(ours))).toBe(hex(payload('V9a')));
  });

  test('V9b RegistrationResponse success', () => {
    const ours = {
      success: true,
      error: null,
      proxy_id: 'zentinel-proxy',
      proxy_version: '0.6.20',
      connection_id: `waf-1-${(1767225600000).toString(16)}`,
    };
    expect(decodeRegistrationResponse(payload('V9b'))).toEqual(ours);
    expect(hex(encodeRegistrationResponse(ours))).toBe(hex(payload('V9b')));
  });

  test('V9c RegistrationResponse rejection', () => {
    const ours = {
      success: false,
      error: "Invalid message format: Agent 'waf-9' is not in the allowed list",
      proxy_id: 'zentinel-proxy',
      proxy_version: '0.6.20',
      connection_id: '',
    };
    expect(decodeRegistrationResponse(payload('V9c'))).toEqual(ours);
    expect(hex(encodeRegistrationResponse(ours))).toBe(hex(payload('V9c')));
  });
});

describe('v1', () => {
  test('V10a v1 AgentRequest: sorted payload, no injected correlation_id', () => {
    const req = decodeV1Request(payload('V10a'));
    expect(req).toEqual({ version: 1, event_type: 'request_headers', payload: adminRequest });
    expect(
      hex(encodeV1Request({ version: 1, event_type: 'request_headers', payload: adminRequest })),
    ).toBe(hex(payload('V10a')));
  });

  test('V10b v1 AgentResponse (version 1)', () => {
    const r = decodeV1Response(payload('V10b'));
    expect(r).toEqual(denylistBlock(1, {}));
    expect(hex(encodeV1Response(denylistBlock(1, {})))).toBe(hex(payload('V10b')));
  });

  test('v1 configure payload {agent_id, config} round-trips with sorted keys', () => {
    const bytes = encodeV1Request({
      version: 1,
      event_type: 'configure',
      payload: { agent_id: 'waf', config: { z: 1, a: [true, null] } },
    });
    expect(text(bytes)).toBe(
      '{"version":1,"event_type":"configure","payload":{"agent_id":"waf","config":{"a":[true,null],"z":1}}}',
    );
    expect(decodeV1Request(bytes)).toEqual({
      version: 1,
      event_type: 'configure',
      payload: { agent_id: 'waf', config: { a: [true, null], z: 1 } },
    });
  });

  test('every v1 event type encodes without correlation_id injection and decodes back', () => {
    const bytes = encodeV1Request({
      version: 1,
      event_type: 'request_body_chunk',
      payload: helloChunk,
    });
    expect(text(bytes)).toBe(
      '{"version":1,"event_type":"request_body_chunk","payload":{"bytes_received":5,"chunk_index":0,"correlation_id":"req-1","data":"aGVsbG8=","is_last":true,"total_size":5}}',
    );
    expect(decodeV1Request(bytes)).toEqual({
      version: 1,
      event_type: 'request_body_chunk',
      payload: helloChunk,
    });
  });
});
