/** discrepancies-and-vectors.md Part C: decoder acceptance facts, plus decode error naming. */
import { allow, decisionKind, parseGuardrailResponse } from '@picket/protocol';
import { describe, expect, test } from 'vitest';
import {
  createMessageCodec,
  decodeGuardrailResponse,
  decodeHandshakeRequest,
  decodeHandshakeResponse,
  encodeGuardrailResponse,
  msgpackCodec,
  negotiateEncoding,
} from '../src/index.js';
import { bytesOf, expectProtocolError, hex, payload, text } from './helpers.js';

const json = createMessageCodec('json');
const msgpack = createMessageCodec('msgpack');
const cbor = createMessageCodec('cbor');

describe('Part C: AgentResponse', () => {
  test('minimal JSON {"version":2,"decision":"allow"} is accepted with defaults', () => {
    expect(json.decodeResponse(bytesOf('{"version":2,"decision":"allow"}'))).toEqual(allow());
  });

  test('JSON without version is rejected, naming the field', () => {
    expectProtocolError(
      () => json.decodeResponse(bytesOf('{"decision":"allow"}')),
      'INVALID_MESSAGE',
      /AgentResponse\.version: missing required field/,
    );
  });

  test('{"block":{"status":403}} has body and headers None', () => {
    const r = json.decodeResponse(bytesOf('{"version":2,"decision":{"block":{"status":403}}}'));
    expect(r.decision).toEqual({ block: { status: 403, body: null, headers: null } });
  });

  test('{"allow":null} is Allow; "Allow" is rejected (variant names are case-sensitive)', () => {
    expect(json.decodeResponse(bytesOf('{"version":2,"decision":{"allow":null}}')).decision).toBe(
      'allow',
    );
    expectProtocolError(
      () => json.decodeResponse(bytesOf('{"version":2,"decision":"Allow"}')),
      'INVALID_MESSAGE',
      /unknown decision "Allow"/,
    );
  });

  test('msgpack named map (incl. minimal {version, decision, audit:{custom}}) is accepted', () => {
    const bytes = msgpackCodec.encode({
      version: 2,
      decision: 'allow',
      audit: { custom: { correlation_id: 'c-9' } },
    });
    const r = msgpack.decodeResponse(bytes);
    expect(r).toEqual(allow({ custom: { correlation_id: 'c-9' } }));
  });

  test('msgpack array [2,"allow"] is accepted (trailing fields default)', () => {
    expect(hex(msgpackCodec.encode([2, 'allow']))).toBe('9202a5616c6c6f77');
    expect(msgpack.decodeResponse(msgpackCodec.encode([2, 'allow']))).toEqual(allow());
  });

  test('confidence 0.95: JSON prints 0.95, msgpack writes float32 ca 3f 73 33 33; both read back as 0.95', () => {
    const r = allow({ confidence: 0.95 });
    expect(text(json.encodeResponse(r))).toContain('"confidence":0.95,');
    const mp = msgpack.encodeResponse(r);
    expect(hex(mp)).toContain('ca3f733333');
    expect(msgpack.decodeResponse(mp).audit.confidence).toBe(0.95);
    expect(json.decodeResponse(json.encodeResponse(r)).audit.confidence).toBe(0.95);
    expect(cbor.decodeResponse(cbor.encodeResponse(r)).audit.confidence).toBe(0.95);
  });

  test('confidence is an f32: 1.0 prints as 1.0, extra precision is what a float32 keeps', () => {
    expect(text(json.encodeResponse(allow({ confidence: 1 })))).toContain('"confidence":1.0,');
    expect(text(json.encodeResponse(allow({ confidence: 0.1 + 0.2 })))).toContain(
      '"confidence":0.3,',
    );
    expect(
      json.decodeResponse(
        bytesOf('{"version":2,"decision":"allow","audit":{"confidence":0.123456789}}'),
      ).audit.confidence,
    ).toBe(0.12345679);
  });
});

describe('Part C: events', () => {
  test('msgpack bin "hello" into a String field reads as the text "hello"', () => {
    const bytes = msgpackCodec.encode({
      version: 2,
      decision: 'allow',
      routing_metadata: { note: new TextEncoder().encode('hello') },
    });
    expect(msgpack.decodeResponse(bytes).routing_metadata).toEqual({ note: 'hello' });
    const bad = msgpackCodec.encode({
      version: 2,
      decision: 'allow',
      routing_metadata: { note: new Uint8Array([0xff]) },
    });
    expectProtocolError(
      () => msgpack.decodeResponse(bad),
      'INVALID_MESSAGE',
      /routing_metadata\.note: binary data is not valid UTF-8/,
    );
  });

  test('RequestBodyChunk with only correlation_id, data, is_last gets defaults', () => {
    const e = json.decodeEvent(
      'request_body_chunk',
      bytesOf('{"correlation_id":"c","data":"aGk=","is_last":false}'),
    );
    expect(e).toEqual({
      correlation_id: 'c',
      data: new TextEncoder().encode('hi'),
      is_last: false,
      total_size: null,
      chunk_index: 0,
      bytes_received: 0,
    });
  });

  test('client_port 70000 is rejected (u16 range)', () => {
    const bad = text(payload('V3')).replace('54321', '70000');
    expectProtocolError(
      () => json.decodeEvent('request_headers', bytesOf(bad)),
      'INVALID_MESSAGE',
      /RequestHeaders\.metadata\.client_port: expected an integer from 0 to 65535/,
    );
  });

  test('msgpack 11-element metadata array (Rust rejects) and duplicate correlation_id keys are tolerated', () => {
    expect(msgpack.decodeEvent('request_headers', payload('V4')).metadata.correlation_id).toBe(
      'req-1',
    );
    expect(msgpack.decodeEvent('request_body_chunk', payload('V11b')).correlation_id).toBe('req-1');
  });

  test('body data that is neither base64 nor binary is rejected', () => {
    expectProtocolError(
      () =>
        json.decodeEvent(
          'request_body_chunk',
          bytesOf('{"correlation_id":"c","data":"not base64!","is_last":true}'),
        ),
      'INVALID_MESSAGE',
      /RequestBodyChunk\.data: expected standard padded base64/,
    );
  });
});

describe('Part C: handshake', () => {
  test('HandshakeResponse with "features":{} is rejected', () => {
    const bad = text(payload('V2')).replace(/"features":\{[^}]*\}/, '"features":{}');
    expectProtocolError(
      () => decodeHandshakeResponse(bytesOf(bad)),
      'INVALID_MESSAGE',
      /capabilities\.features\.streaming_body: missing required field/,
    );
  });

  test('HandshakeRequest without supported_encodings means JSON only', () => {
    const m = decodeHandshakeRequest(
      bytesOf('{"supported_versions":[2],"proxy_id":"p","proxy_version":"1","config":null}'),
    );
    expect(m.supported_encodings).toEqual([]);
    expect(negotiateEncoding(m.supported_encodings)).toBe('json');
  });

  test('["cbor","json"]: Rust rejects the request; picket knows cbor, keeps known names and drops unknown ones', () => {
    const m = decodeHandshakeRequest(
      bytesOf(
        '{"supported_versions":[2],"proxy_id":"p","proxy_version":"1","config":null,"supported_encodings":["cbor","json"]}',
      ),
    );
    expect(m.supported_encodings).toEqual(['cbor', 'json']);
    expect(negotiateEncoding(m.supported_encodings)).toBe('cbor');
    expect(negotiateEncoding(m.supported_encodings, ['json', 'msgpack'])).toBe('json');
    const unknown = decodeHandshakeRequest(
      bytesOf(
        '{"supported_versions":[2],"proxy_id":"p","proxy_version":"1","config":null,"supported_encodings":["brotli","msgpack"]}',
      ),
    );
    expect(unknown.supported_encodings).toEqual(['msgpack']);
  });
});

describe('Part C: GuardrailResponse', () => {
  test('default is {"detected":false,"confidence":0.0,"detections":[]} (note 0.0)', () => {
    expect(parseGuardrailResponse({ detected: false })).toEqual({
      detected: false,
      confidence: 0,
      detections: [],
    });
    expect(encodeGuardrailResponse({ detected: false, confidence: 0, detections: [] })).toBe(
      '{"detected":false,"confidence":0.0,"detections":[]}',
    );
  });

  test('a full result round-trips through the routing_metadata text', () => {
    const r = {
      detected: true,
      confidence: 0.9,
      detections: [
        {
          category: 'pii',
          description: 'email',
          severity: 'high' as const,
          confidence: 1,
          span: { start: 3, end: 9 },
        },
        { category: 'x', description: 'y', severity: 'medium' as const },
      ],
      redacted_content: 'my *** is',
    };
    const textForm = encodeGuardrailResponse(r);
    expect(textForm).toBe(
      '{"detected":true,"confidence":0.9,"detections":[{"category":"pii","description":"email","severity":"high","confidence":1.0,"span":{"start":3,"end":9}},{"category":"x","description":"y","severity":"medium"}],"redacted_content":"my *** is"}',
    );
    expect(decodeGuardrailResponse(textForm)).toEqual(r);
    expectProtocolError(
      () => decodeGuardrailResponse('{"detected":'),
      'INVALID_MESSAGE',
      /invalid JSON in GuardrailResponse/,
    );
    expectProtocolError(
      () => decodeGuardrailResponse('{}'),
      'INVALID_MESSAGE',
      /detected: missing required field/,
    );
  });
});

describe('decode errors name the encoding and the message', () => {
  test.each([
    ['json', /^invalid JSON in RequestHeaders payload: /],
    ['msgpack', /^invalid msgpack in RequestHeaders payload: /],
    ['cbor', /^invalid CBOR in RequestHeaders payload: /],
  ] as const)('%s garbage', (encoding, message) => {
    const c = createMessageCodec(encoding);
    expectProtocolError(
      () => c.decodeEvent('request_headers', new Uint8Array([0xc1, 0xff, 0x00])),
      'INVALID_MESSAGE',
      message,
    );
  });

  test('invalid UTF-8 and a byte-order mark are JSON errors, as in serde_json', () => {
    expectProtocolError(
      () => json.decodeResponse(new Uint8Array([0x22, 0xff, 0x22])),
      'INVALID_MESSAGE',
      /invalid JSON in AgentResponse payload/,
    );
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...bytesOf('{"version":2,"decision":"allow"}')]);
    expectProtocolError(() => json.decodeResponse(bom), 'INVALID_MESSAGE', /invalid JSON/);
  });

  test('trailing bytes after the value are rejected in every encoding', () => {
    const r = allow();
    for (const c of [json, msgpack, cbor]) {
      const bytes = c.encodeResponse(r);
      const extra = new Uint8Array([...bytes, c === json ? 0x78 : 0x00]);
      expectProtocolError(() => c.decodeResponse(extra), 'INVALID_MESSAGE');
    }
  });

  test('msgpack extension types (incl. timestamps) are not part of the protocol', () => {
    expectProtocolError(
      () => msgpack.decodeResponse(new Uint8Array([0xd4, 0x05, 0x01])),
      'INVALID_MESSAGE',
      /extension type 5/,
    );
  });

  test('a hostile object shape in a string field still yields INVALID_MESSAGE', () => {
    const bytes = bytesOf(
      '{"version":2,"decision":"allow","routing_metadata":{"a":{"toString":1}}}',
    );
    expectProtocolError(() => json.decodeResponse(bytes), 'INVALID_MESSAGE');
  });

  test('wrong shape is rejected and valid decision kinds survive', () => {
    expectProtocolError(
      () => json.decodeResponse(bytesOf('[]')),
      'INVALID_MESSAGE',
      /AgentResponse\.version/,
    );
    expectProtocolError(
      () => json.decodeResponse(bytesOf('"allow"')),
      'INVALID_MESSAGE',
      /expected an object/,
    );
    expect(
      decisionKind(
        json.decodeResponse(
          bytesOf('{"version":2,"decision":{"redirect":{"url":"/x","status":302}}}'),
        ).decision,
      ),
    ).toBe('redirect');
  });
});
