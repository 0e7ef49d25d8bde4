/**
 * The fast msgpack reader must be indistinguishable from the reference
 * decoder: same value for everything it accepts, FALLBACK for the rest.
 */
import { Encoder } from '@msgpack/msgpack';
import {
  type AgentResponse,
  allow,
  parseAgentResponse,
  parseRequestHeadersEvent,
} from '@picket/protocol';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { msgpackCodec, msgpackDecoder } from '../src/codec.js';
import { createMessageCodec, writeResponseArray } from '../src/message-codec.js';
import {
  FALLBACK,
  readAgentResponseFast,
  readMsgpackFast,
  readRequestHeadersFast,
} from '../src/msgpack-reader.js';
import { MsgpackWriter } from '../src/msgpack-writer.js';
import { eventObject, responseParts } from '../src/objects.js';
import { agentResponse } from './arbitraries.js';
import { hex } from './helpers.js';

const encoder = new Encoder({ ignoreUndefined: true });

/** The smallest RequestHeaders event (msgpack), with `headers` and metadata fields added or replaced. */
function minimalEvent(
  headers: Record<string, string[]> = {},
  metadata: Record<string, unknown> = {},
): Uint8Array {
  return encoder.encode({
    metadata: {
      correlation_id: 'c',
      request_id: 'r',
      client_ip: '::1',
      client_port: 1,
      protocol: 'HTTP/1.1',
      timestamp: 't',
      ...metadata,
    },
    method: 'GET',
    uri: '/',
    headers,
  });
}

/** @msgpack/msgpack refuses a `__proto__` key; ours keeps it as an own entry (tested below). */
const REFERENCE_REFUSES_PROTO = 'The key __proto__ is not allowed';

/** Reference outcome: the value, or the error message. */
function reference(bytes: Uint8Array): { value?: unknown; error?: string } {
  try {
    return { value: msgpackDecoder.decode(bytes) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function agrees(bytes: Uint8Array): void {
  const fast = readMsgpackFast(bytes);
  const ref = reference(bytes);
  if (fast === FALLBACK || ref.error === REFERENCE_REFUSES_PROTO) return;
  expect(ref.error).toBeUndefined();
  expect(fast).toStrictEqual(ref.value);
}

const value = fc.letrec((tie) => ({
  any: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.maxSafeInteger(),
    fc.string(),
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('any'), { maxLength: 20 }),
    fc.dictionary(fc.string({ maxLength: 40 }), tie('any'), { maxKeys: 20 }),
  ),
})).any;

describe('readMsgpackFast', () => {
  test('agrees with @msgpack/msgpack on encoded values', () => {
    fc.assert(
      fc.property(value, (v) => {
        agrees(encoder.encode(v));
      }),
      { numRuns: 400 },
    );
  });

  test('agrees on random and mutated bytes', () => {
    fc.assert(
      fc.property(
        value,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        (v, edits) => {
          const bytes = encoder.encode(v).slice();
          for (const [i, b] of edits) if (bytes.length > 0) bytes[i % bytes.length] = b;
          agrees(bytes);
          agrees(bytes.subarray(0, Math.max(0, bytes.length - 1)));
        },
      ),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => agrees(b)),
      { numRuns: 400 },
    );
  });

  test('takes the common protocol shapes itself', () => {
    const bytes = encoder.encode({
      correlation_id: 'req-1',
      headers: { host: ['example.com'], 'user-agent': ['x'.repeat(120)] },
      data: new Uint8Array([1, 2, 3]),
      n: [0, -1, 255, 65_536, 2 ** 40, -(2 ** 40), 1.5],
    });
    expect(readMsgpackFast(bytes)).not.toBe(FALLBACK);
    agrees(bytes);
  });

  test('ASCII text (read as latin1) and the rest (read as UTF-8) both decode as UTF-8', () => {
    const texts = [
      'plain ascii, longer than eight bytes',
      'caf\u00e9 au lait, a latin1-range character',
      '\u00ff\u00fe trailing ascii',
      'ascii then \u20ac euro',
      'emoji \u{1f600} astral',
      '\u007f is still ascii (DEL)',
    ];
    for (const t of texts) {
      const bytes = encoder.encode({ t, list: [t], [t]: t });
      expect(readMsgpackFast(bytes)).toStrictEqual({ t, list: [t], [t]: t });
      agrees(bytes);
    }
  });

  test('a non-ASCII character anywhere in the text is seen (the scan goes eight bytes a step)', () => {
    for (let n = 1; n <= 40; n++) {
      for (let at = 0; at < n; at++) {
        for (const c of ['\u00e9', '\u0080']) {
          const t = 'a'.repeat(at) + c + 'b'.repeat(n - at - 1);
          expect(readMsgpackFast(encoder.encode(t))).toBe(t);
        }
        // one invalid byte anywhere: the reference decoder decides
        const bytes = encoder.encode('a'.repeat(n));
        bytes[bytes.length - n + at] = 0xff;
        expect(readMsgpackFast(bytes)).toBe(FALLBACK);
      }
    }
  });

  test('leaves odd inputs to the reference decoder', () => {
    const cases: Uint8Array[] = [
      new Uint8Array([0xd4, 0x01, 0x00]), // fixext
      new Uint8Array([0xc1]), // never used
      new Uint8Array([0x81, 0x01, 0x02]), // integer key
      encoder.encode({ a: 1 }).subarray(0, 3), // truncated
      new Uint8Array([0x01, 0x02]), // trailing byte
      new Uint8Array([0xa3, 0xef, 0xbb, 0xbf]), // BOM
      new Uint8Array([0xa9, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0xff]), // invalid UTF-8
      new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]), // forged array length
      new Uint8Array(Array.from({ length: 100 }, () => 0x91)).fill(0xc0, 99), // deep
    ];
    for (const bytes of cases) {
      expect(readMsgpackFast(bytes)).toBe(FALLBACK);
      agrees(bytes);
    }
  });

  test('msgpackCodec keeps the reference errors', () => {
    expect(() => msgpackCodec.decode(new Uint8Array([0xc1]))).toThrow(/invalid msgpack/);
  });

  test('a __proto__ key is an own entry in every encoding (@msgpack/msgpack refuses it, cbor-x renames it)', () => {
    const bytes = new Uint8Array([0x81, 0xa9, ...new TextEncoder().encode('__proto__'), 0x01]);
    expect(reference(bytes).error).toMatch(/__proto__/);
    for (const v of [readMsgpackFast(bytes), msgpackCodec.decode(bytes)]) {
      expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
      expect(Object.keys(v as object)).toEqual(['__proto__']);
      expect(Object.getOwnPropertyDescriptor(v, '__proto__')?.value).toBe(1);
    }
    // the same for a header name in an event and for reply maps
    const e = parseRequestHeadersEvent({
      metadata: {
        correlation_id: 'p',
        request_id: 'r',
        client_ip: '127.0.0.1',
        client_port: 1,
        protocol: 'HTTP/1.1',
        timestamp: 't',
      },
      method: 'GET',
      uri: '/',
      headers: JSON.parse('{"__proto__":["x"],"constructor":["y"]}'),
    });
    for (const encoding of ['msgpack', 'json', 'cbor'] as const) {
      const codec = createMessageCodec(encoding);
      const back = codec.decodeEvent(
        'request_headers',
        codec.encodeEvent('request_headers', e, 'p'),
      );
      expect(Object.keys(back.headers)).toEqual(['__proto__', 'constructor']);
      expect(Object.getOwnPropertyDescriptor(back.headers, '__proto__')?.value).toEqual(['x']);
      const r = codec.decodeResponse(
        codec.encodeResponse(
          allow({ routingMetadata: JSON.parse('{"__proto__":"r","k":"v"}') }),
          'p',
        ),
      );
      expect(Object.keys(r.routing_metadata)).toEqual(['__proto__', 'k']);
    }
  });
});

/** Every object's own key list, recursively (what toEqual does not check). */
function shape(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(shape);
  if (v === null || typeof v !== 'object') return typeof v;
  return Object.keys(v).map((k) => [k, shape((v as Record<string, unknown>)[k])]);
}

describe('readRequestHeadersFast', () => {
  const optStr = fc.option(fc.string({ maxLength: 30 }), { nil: null });
  const metadata = fc.record(
    {
      correlation_id: fc.string({ maxLength: 40 }),
      request_id: fc.string({ maxLength: 40 }),
      client_ip: fc.string({ maxLength: 40 }),
      client_port: fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.integer(), fc.double()),
      server_name: optStr,
      protocol: fc.string({ maxLength: 10 }),
      tls_version: optStr,
      tls_cipher: optStr,
      route_id: optStr,
      upstream_id: optStr,
      timestamp: fc.string({ maxLength: 40 }),
      traceparent: optStr,
      extra: fc.anything(),
    },
    {
      requiredKeys: [
        'correlation_id',
        'request_id',
        'client_ip',
        'client_port',
        'protocol',
        'timestamp',
      ],
    },
  );
  const event = fc.record(
    {
      correlation_id: fc.string({ maxLength: 20 }),
      metadata,
      method: fc.oneof(fc.constantFrom('GET', 'POST'), fc.string()),
      uri: fc.string({ maxLength: 80 }),
      headers: fc.dictionary(
        fc.oneof(
          fc.constantFrom('host', 'user-agent', '0', '42', 'constructor'),
          fc.string({ maxLength: 20 }),
        ),
        fc.oneof(fc.array(fc.string({ maxLength: 60 }), { maxLength: 3 }), fc.anything()),
        { maxKeys: 8 },
      ),
      unknown: fc.anything(),
    },
    { requiredKeys: ['metadata', 'method', 'uri', 'headers'] },
  );

  function generic(bytes: Uint8Array): { value?: unknown; error?: string } {
    try {
      return { value: parseRequestHeadersEvent(msgpackDecoder.decode(bytes)) };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  function same(bytes: Uint8Array): boolean {
    const fast = readRequestHeadersFast(bytes);
    const ref = generic(bytes);
    if (fast === FALLBACK || ref.error === REFERENCE_REFUSES_PROTO) return false;
    expect(ref.error).toBeUndefined();
    // toEqual, not toStrictEqual: a header named "constructor" defeats the latter's type check
    expect(fast).toEqual(ref.value);
    expect(shape(fast)).toEqual(shape(ref.value)); // same keys in the same order, no undefined extras
    return true;
  }

  test('equals parseRequestHeadersEvent(decode(bytes)) whenever it answers', () => {
    let answered = 0;
    fc.assert(
      fc.property(event, (e) => {
        if (same(encoder.encode(e))) answered++;
      }),
      { numRuns: 500 },
    );
    expect(answered).toBeGreaterThan(20);
  });

  test('answers for what picket’s own msgpack codec writes, and declines odd shapes', () => {
    const codec = createMessageCodec('msgpack');
    const e = {
      metadata: {
        correlation_id: 'req-1',
        request_id: 'req-1',
        client_ip: '127.0.0.1',
        client_port: 50000,
        protocol: 'HTTP/1.1',
        timestamp: '2026-01-01T00:00:00.000+00:00',
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      },
      method: 'GET',
      uri: '/a?b=c',
      headers: { host: ['example.com'], 'x-many': ['1', '2'] },
    };
    expect(same(codec.encodeEvent('request_headers', e, 'req-1'))).toBe(true);
    expect(
      codec.decodeEvent('request_headers', codec.encodeEvent('request_headers', e, 'req-1')),
    ).toStrictEqual({
      ...e,
      metadata: {
        ...e.metadata,
        server_name: null,
        tls_version: null,
        tls_cipher: null,
        route_id: null,
        upstream_id: null,
        traceparent: e.metadata.traceparent,
      },
    });
    // struct as an array (rmp-serde), bin text, trailing byte: generic path
    expect(readRequestHeadersFast(encoder.encode([e.metadata, 'GET', '/', {}]))).toBe(FALLBACK);
    expect(
      readRequestHeadersFast(encoder.encode({ ...e, method: new TextEncoder().encode('GET') })),
    ).toBe(FALLBACK);
    const bytes = codec.encodeEvent('request_headers', e, 'req-1');
    expect(readRequestHeadersFast(new Uint8Array([...bytes, 0]))).toBe(FALLBACK);
    expect(readRequestHeadersFast(bytes.subarray(0, bytes.length - 1))).toBe(FALLBACK);
  });
});

describe('readRequestHeadersFast: the header map', () => {
  const event = (headers: Record<string, string[]>) => minimalEvent(headers);

  test('is a plain object, as a literal would be, however many headers it holds', () => {
    for (const n of [0, 1, 4, 12, 40]) {
      const headers = Object.fromEntries(
        Array.from({ length: n }, (_, i) => [`x-h${i}`, [`v${i}`]]),
      );
      const decoded = readRequestHeadersFast(event(headers));
      if (decoded === FALLBACK) throw new Error('declined');
      const h = decoded.headers;
      expect(Object.getPrototypeOf(h)).toBe(Object.prototype);
      expect(h.constructor).toBe(Object);
      expect(Object.prototype.toString.call(h)).toBe('[object Object]');
      expect(Object.keys(h)).toEqual(Object.keys(headers));
      expect(JSON.stringify(h)).toBe(JSON.stringify(headers));
      expect({ ...h }).toStrictEqual(headers);
    }
  });

  test('keeps header names that are Object.prototype members as own entries', () => {
    const decoded = readRequestHeadersFast(
      event({ constructor: ['a'], toString: ['b'], hasOwnProperty: ['c'] }),
    );
    if (decoded === FALLBACK) throw new Error('declined');
    expect(Object.keys(decoded.headers)).toEqual(['constructor', 'toString', 'hasOwnProperty']);
    expect(decoded.headers.constructor).toEqual(['a']);
    expect(Object.getPrototypeOf(decoded.headers)).toBe(Object.prototype);
  });
});

describe('readRequestHeadersFast: steady metadata fields', () => {
  const withMeta = (m: Record<string, unknown>) => minimalEvent({}, m);

  test('each message gets its own values when they change from one to the next', () => {
    const seq: Record<string, unknown>[] = [
      { server_name: 'a.example', protocol: 'HTTP/1.1', tls_cipher: 'TLS_AES_128_GCM_SHA256' },
      { server_name: 'b.example', protocol: 'HTTP/1.0', tls_cipher: 'TLS_AES_128_GCM_SHA256' },
      { server_name: 'b.exampl', protocol: 'HTTP/2', tls_cipher: null },
      { server_name: 'b.examplee', protocol: 'h2', tls_cipher: 'TLS_AES_256_GCM_SHA384' },
      { server_name: 'bücher.example', route_id: 'r\u00e9', upstream_id: '' },
      { server_name: 'bücher.example', route_id: 'r\u00e9', upstream_id: 'u' },
      { server_name: null, route_id: 'r', upstream_id: 'u' },
    ];
    for (const m of seq) {
      const decoded = readRequestHeadersFast(withMeta(m));
      if (decoded === FALLBACK) throw new Error('declined');
      expect(decoded).toStrictEqual(parseRequestHeadersEvent(msgpackDecoder.decode(withMeta(m))));
    }
  });

  test('a byte that is not ASCII never matches the last value it would print as', () => {
    // 'é' (U+00E9) seen last; the single byte 0xe9 (invalid UTF-8) must not read as it
    expect(readRequestHeadersFast(withMeta({ tls_version: '\u00e9' }))).not.toBe(FALLBACK);
    const bytes = withMeta({ tls_version: 'x' });
    const at = Buffer.from(bytes).indexOf('tls_version') + 'tls_version'.length + 1;
    expect(bytes[at]).toBe(0x78); // the value's one byte, after its fixstr header
    bytes[at] = 0xe9;
    expect(readRequestHeadersFast(bytes)).toBe(FALLBACK);
    // the same with an ASCII value seen last: still declined
    expect(readRequestHeadersFast(withMeta({ tls_version: 'i' }))).not.toBe(FALLBACK);
    expect(readRequestHeadersFast(bytes)).toBe(FALLBACK);
  });

  test('nil protocol is left to the reference path', () => {
    expect(readRequestHeadersFast(withMeta({ protocol: null }))).toBe(FALLBACK);
  });
});

describe('readRequestHeadersFast: ignored fields and key guesses', () => {
  const base = {
    correlation_id: 'req-7',
    metadata: {
      correlation_id: 'req-7',
      request_id: 'req-7',
      client_ip: '10.0.0.1',
      client_port: 443,
      protocol: 'HTTP/2',
      timestamp: '2026-01-01T00:00:00.000+00:00',
    },
    method: 'GET',
    uri: '/',
    headers: { host: ['a.example'] },
  };
  const expected = parseRequestHeadersEvent(base);

  /** The event with `extra` (raw msgpack bytes) as the value of an unknown field at the top and in metadata. */
  function withIgnored(extra: number[]): Uint8Array {
    const w = new MsgpackWriter();
    w.map(6);
    w.str('ignored');
    const head = w.finish();
    const rest = encoder.encode({ ...base });
    // splice: a 6-entry map header, "ignored": <extra>, then the 5 entries of `base`
    const body = rest.subarray(1); // drop base's fixmap header (5 entries)
    const meta = new MsgpackWriter();
    meta.str('zz_unknown');
    const metaKey = meta.finish();
    const out = new Uint8Array([...head, ...extra, ...body]);
    // and the same value inside metadata (its fixmap header is right after the "metadata" key)
    const at = indexOfBytes(out, new TextEncoder().encode('metadata')) + 'metadata'.length;
    const metaHeader = out[at] as number;
    return new Uint8Array([
      ...out.subarray(0, at),
      metaHeader + 1,
      ...metaKey,
      ...extra,
      ...out.subarray(at + 1),
    ]);
  }

  function indexOfBytes(hay: Uint8Array, needle: Uint8Array): number {
    return Buffer.from(hay).indexOf(Buffer.from(needle));
  }

  test('steps over every kind of value it ignores, exactly as decoding it would', () => {
    const values: unknown[] = [
      null,
      true,
      false,
      0,
      -1,
      -33,
      127,
      255,
      -129,
      65535,
      -40000,
      2 ** 32 - 1,
      -(2 ** 31),
      2 ** 40,
      -(2 ** 40),
      1.5,
      'ascii',
      'x'.repeat(40),
      'y'.repeat(300),
      'z'.repeat(70000),
      'héllo wörld, non-ASCII',
      new Uint8Array([1, 2, 3]),
      new Uint8Array(300),
      new Uint8Array(70000),
      [],
      [1, [2, [3, { a: 'b' }]]],
      Array.from({ length: 20 }, (_, i) => i),
      { a: 1, b: { c: [null, 'd'] } },
      Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
    ];
    const f32 = [0xca, 0x3f, 0xc0, 0x00, 0x00]; // float32 1.5
    for (const bytes of [...values.map((v) => [...encoder.encode(v)]), f32]) {
      const msg = withIgnored(bytes);
      expect(readRequestHeadersFast(msg)).toStrictEqual(expected);
      expect(parseRequestHeadersEvent(msgpackDecoder.decode(msg))).toStrictEqual(expected);
    }
  });

  test('declines in an ignored field what it declines anywhere (the reference decoder decides)', () => {
    const declined = [
      [0xd4, 0x01, 0x00], // fixext 1
      [0xc7, 0x01, 0x05, 0x00], // ext 8
      [0xc1], // never used
      [0x81, 0x01, 0xa1, 0x61], // a map with an integer key
      [0xa2, 0xc3, 0x28], // invalid UTF-8
      [0xa3, 0xef, 0xbb, 0xbf], // a lone BOM
      [0x92, 0x01], // array shorter than its count
      [0xd9, 0x10, 0x61], // str 8 running past the end
    ];
    for (const bytes of declined) expect(readRequestHeadersFast(withIgnored(bytes))).toBe(FALLBACK);
    // and the reader still answers for the next, well-formed message
    expect(readRequestHeadersFast(withIgnored([0xc0]))).toStrictEqual(expected);
  });

  test('a key guessed from the previous message is checked byte for byte', () => {
    const codec = createMessageCodec('msgpack');
    const one = (headers: Record<string, string[]>) =>
      readRequestHeadersFast(codec.encodeEvent('request_headers', { ...base, headers }, 'req-7'));
    // same positions, same lengths, different bytes; then fewer and more keys
    const sequence: Record<string, string[]>[] = [
      { 'x-aaa': ['1'], 'x-bbb': ['2'], host: ['h'] },
      { 'x-aab': ['1'], 'x-bbb': ['2'], hosu: ['h'] },
      { 'x-aab': ['1'] },
      { 'x-aab': ['1'], 'x-bbb': ['2'], 'x-ccc': ['3'], 'x-ddd': ['4'] },
      { 'x-aaa': ['1'], 'x-bbb': ['2'], host: ['h'] },
    ];
    for (const headers of sequence) {
      const got = one(headers);
      expect(got).not.toBe(FALLBACK);
      expect((got as { headers: unknown }).headers).toStrictEqual(headers);
      expect(Object.keys((got as { headers: object }).headers)).toEqual(Object.keys(headers));
    }
  });
});

describe('msgpack RequestHeaders fast writer', () => {
  const reference = (e: unknown, cid: string) => {
    const w = new MsgpackWriter(64);
    w.value(eventObject('request_headers', e as never, cid, false));
    return hex(w.finish());
  };
  const optStr = fc.option(fc.string({ maxLength: 30 }), { nil: null });
  const event = fc.record({
    metadata: fc.record(
      {
        correlation_id: fc.string(),
        request_id: fc.string(),
        client_ip: fc.string(),
        client_port: fc.integer({ min: 0, max: 65535 }),
        server_name: optStr,
        protocol: fc.string(),
        tls_version: optStr,
        tls_cipher: optStr,
        route_id: optStr,
        upstream_id: optStr,
        timestamp: fc.string(),
        traceparent: fc.option(fc.string(), { nil: undefined }),
      },
      {
        requiredKeys: [
          'correlation_id',
          'request_id',
          'client_ip',
          'client_port',
          'protocol',
          'timestamp',
        ],
      },
    ),
    method: fc.string(),
    uri: fc.string({ maxLength: 300 }),
    headers: fc.dictionary(
      fc.string({ maxLength: 40 }).filter((k) => k !== '__proto__'),
      fc.array(fc.string({ unit: 'grapheme', maxLength: 120 }), { maxLength: 20 }),
      { maxKeys: 30 },
    ),
  });

  test('writes exactly what eventObject + the generic writer write', () => {
    const codec = createMessageCodec('msgpack');
    fc.assert(
      fc.property(event, fc.string(), (e, cid) => {
        expect(hex(codec.encodeEvent('request_headers', e, cid))).toBe(reference(e, cid));
      }),
      { numRuns: 400 },
    );
  });

  test('leaves unusual events to the generic path (same bytes or the same error)', () => {
    const codec = createMessageCodec('msgpack');
    const base = {
      metadata: {
        correlation_id: 'a',
        request_id: 'a',
        client_ip: 'ip',
        client_port: 1,
        protocol: 'p',
        timestamp: 't',
      },
      method: 'GET',
      uri: '/',
      headers: { a: ['b'] },
    };
    const headersMap = new Map([['x', ['y']]]);
    expect(
      hex(codec.encodeEvent('request_headers', { ...base, headers: headersMap } as never, 'c')),
    ).toBe(reference({ ...base, headers: headersMap }, 'c'));
    expect(() =>
      codec.encodeEvent(
        'request_headers',
        { ...base, metadata: { ...base.metadata, client_port: 70000 } },
        'c',
      ),
    ).toThrow(/client_port/);
    expect(() =>
      codec.encodeEvent('request_headers', { ...base, headers: { a: [1] } } as never, 'c'),
    ).toThrow(/headers\.a\[0\]/);
    // a bad value after good ones: the half-written message is dropped, the error is the generic one
    expect(() =>
      codec.encodeEvent(
        'request_headers',
        { ...base, headers: { a: ['b'], c: 'd' } } as never,
        'c',
      ),
    ).toThrow(/headers\.c/);
    expect(() =>
      codec.encodeEvent(
        'request_headers',
        { ...base, headers: { a: ['b'], c: ['d', 2] } } as never,
        'c',
      ),
    ).toThrow(/headers\.c\[1\]/);
    // and the next message comes out whole
    expect(hex(codec.encodeEvent('request_headers', base, 'c'))).toBe(reference(base, 'c'));
  });
});

describe('msgpack AgentResponse fast writer', () => {
  /** The checked path: every field checked into parts, then written. */
  const reference = (r: unknown, cid: string | undefined) => {
    const w = new MsgpackWriter(64);
    writeResponseArray(w, responseParts(r as AgentResponse, cid));
    return hex(w.finish());
  };
  const outcome = (f: () => string) => {
    try {
      return f();
    } catch (err) {
      return `error: ${(err as Error).message}`;
    }
  };
  const cid = fc.option(fc.string({ maxLength: 20 }), { nil: undefined });

  test('writes exactly what the checked path writes, for every well-formed answer', () => {
    const codec = createMessageCodec('msgpack');
    fc.assert(
      fc.property(agentResponse, cid, (r, id) => {
        expect(hex(codec.encodeResponse(r, id))).toBe(reference(r, id));
      }),
      { numRuns: 500 },
    );
  });

  test('absent optional fields, a handler correlation_id, odd shapes: same bytes or same error', () => {
    const codec = createMessageCodec('msgpack');
    const base = allow({ tags: ['t'], custom: { a: 1 } });
    const variants: unknown[] = [
      { version: 1, decision: 'allow' },
      { ...base, audit: { ...base.audit, custom: { correlation_id: 'mine', z: undefined } } },
      { ...base, audit: { ...base.audit, custom: { toJSON: () => ({ j: 1 }) } } },
      { ...base, audit: undefined, routing_metadata: null, needs_more: null },
      { ...base, decision: { block: { status: 403 } } },
      { ...base, decision: { block: { status: 403, body: 'no', headers: { a: 'b' } } } },
      { ...base, decision: { block: { status: 70000 } } },
      { ...base, decision: { redirect: { url: 'https://x/', status: 302 } } },
      { ...base, decision: { block: { status: 403 }, redirect: { url: 'u', status: 302 } } },
      { ...base, request_headers: [{ set: { name: 'a', value: 1 } }] },
      { ...base, request_headers: [{ remove: { name: 'a' } }, { add: { name: 'b', value: 'c' } }] },
      { ...base, routing_metadata: { a: 1 } },
      { ...base, routing_metadata: new Map([['a', 'b']]) },
      { ...base, audit: { ...base.audit, confidence: '0.5' } },
      { ...base, audit: { ...base.audit, tags: ['a', 2] } },
      { ...base, needs_more: 'yes' },
      { ...base, request_body_mutation: { data: 'x', chunk_index: 0 } },
      { ...base, websocket_decision: { close: { code: 1000, reason: 'bye' } } },
      { ...base, websocket_decision: 'drop' },
      { ...base, version: -1 },
      Object.assign(Object.create({ inherited: true }), base),
      'allow',
      null,
    ];
    for (const r of variants) {
      for (const id of [undefined, 'cid-1']) {
        const fast = outcome(() => hex(codec.encodeResponse(r as AgentResponse, id)));
        const checked = outcome(() => reference(r, id));
        expect(fast.startsWith('error') ? 'error' : fast).toBe(
          checked.startsWith('error') ? 'error' : checked,
        );
      }
    }
    // the errors name the field, as before
    expect(() =>
      codec.encodeResponse({
        ...base,
        request_headers: [{ set: { name: 'a', value: 1 } }],
      } as never),
    ).toThrow(/request_headers\[0\]\.set\.value/);
  });
});

describe('readAgentResponseFast', () => {
  const generic = (bytes: Uint8Array) => {
    try {
      return { value: parseAgentResponse(msgpackDecoder.decode(bytes)) };
    } catch (err) {
      return { error: (err as Error).message };
    }
  };
  const same = (bytes: Uint8Array): boolean => {
    const fast = readAgentResponseFast(bytes);
    if (fast === FALLBACK) return false;
    const ref = generic(bytes);
    if (ref.error === REFERENCE_REFUSES_PROTO) return false;
    expect(ref.error).toBeUndefined();
    expect(fast).toEqual(ref.value);
    expect(shape(fast)).toEqual(shape(ref.value));
    return true;
  };
  const strs = fc.array(fc.string({ maxLength: 12 }), { maxLength: 4 });
  const op = fc.oneof(
    fc.record({ set: fc.record({ name: fc.string(), value: fc.string() }) }),
    fc.record({ add: fc.record({ name: fc.string(), value: fc.string() }) }),
    fc.record({ remove: fc.record({ name: fc.string() }) }),
  );
  const strMapArb = fc.dictionary(
    fc.string({ maxLength: 10 }).filter((k) => k !== '__proto__'),
    fc.string(),
    {
      maxKeys: 4,
    },
  );
  const response = fc.record({
    version: fc.integer({ min: 0, max: 3 }),
    decision: fc.oneof(
      fc.constant('allow' as const),
      fc.record({
        block: fc.record({
          status: fc.integer({ min: 100, max: 599 }),
          body: fc.option(fc.string(), { nil: null }),
          headers: fc.option(strMapArb, { nil: null }),
        }),
      }),
      fc.record({ redirect: fc.record({ url: fc.string(), status: fc.constantFrom(301, 302) }) }),
    ),
    request_headers: fc.array(op, { maxLength: 5 }),
    response_headers: fc.array(op, { maxLength: 3 }),
    routing_metadata: strMapArb,
    audit: fc.record({
      tags: strs,
      rule_ids: strs,
      confidence: fc.option(fc.float({ noNaN: true, noDefaultInfinity: true }), { nil: null }),
      reason_codes: strs,
      custom: fc.dictionary(
        fc.string({ maxLength: 10 }).filter((k) => k !== '__proto__'),
        fc.oneof(
          fc.string(),
          fc.integer(),
          fc.boolean(),
          fc.constant(null),
          fc.array(fc.integer(), { maxLength: 3 }),
        ),
        { maxKeys: 5 },
      ),
    }),
    needs_more: fc.boolean(),
    request_body_mutation: fc.option(
      fc.record({ data: fc.option(fc.string(), { nil: null }), chunk_index: fc.nat(1000) }),
      { nil: null },
    ),
    response_body_mutation: fc.constant(null),
    websocket_decision: fc.oneof(fc.constant(null), fc.constant('allow' as const)),
  });

  test('equals parseAgentResponse(decode(bytes)) for what picket agents write', () => {
    const codec = createMessageCodec('msgpack');
    let answered = 0;
    fc.assert(
      fc.property(response, (resp) => {
        if (same(codec.encodeResponse(resp as never))) answered++;
      }),
      { numRuns: 400 },
    );
    expect(answered).toBeGreaterThan(100);
  });

  test('equals the generic path on other arrays and mutated bytes, or declines', () => {
    const codec = createMessageCodec('msgpack');
    fc.assert(
      fc.property(
        response,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        (resp, edits) => {
          const bytes = codec.encodeResponse(resp as never).slice();
          for (const [i, b] of edits) bytes[i % bytes.length] = b;
          same(bytes);
        },
      ),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(
        fc.array(fc.anything(), { minLength: 10, maxLength: 10 }),
        (a) => void same(encoder.encode(a)),
      ),
    );
  });

  test('header op names and audit lists read like keys: each answer gets its own, not the last one’s', () => {
    const codec = createMessageCodec('msgpack');
    const names = [
      ['X-Echo-A', 'X-Echo-Path'],
      ['X-Echo-B', 'X-Echo-Path'], // same length, one byte differs
      ['X-Echo-B', 'X-Echo-Pat'], // shorter
      ['X-Echo-B', 'X-Echo-Paths'], // longer
      ['X-Écho-B', `x-${'long'.repeat(20)}`], // not ASCII; past the key cache's 32 bytes
      ['X-Echo-A', 'X-Echo-Path'],
    ];
    for (const [first, second] of names) {
      const resp = allow({
        requestHeaders: [{ set: { name: first as string, value: '1' } }],
        responseHeaders: [{ remove: { name: second as string } }],
        tags: [second as string, first as string],
        reasonCodes: [first as string],
      });
      const bytes = codec.encodeResponse(resp);
      expect(same(bytes)).toBe(true);
      const fast = readAgentResponseFast(bytes) as AgentResponse;
      expect(fast.request_headers).toEqual([{ set: { name: first, value: '1' } }]);
      expect(fast.response_headers).toEqual([{ remove: { name: second } }]);
      expect(fast.audit.tags).toEqual([second, first]);
      expect(fast.audit.reason_codes).toEqual([first]);
    }
  });

  test('msgpack decodeResponse normalises confidence to f32 as before', () => {
    const codec = createMessageCodec('msgpack');
    const bytes = codec.encodeResponse({
      version: 1,
      decision: 'allow',
      request_headers: [],
      response_headers: [],
      routing_metadata: {},
      audit: {
        tags: [],
        rule_ids: [],
        confidence: 0.1,
        reason_codes: [],
        custom: { correlation_id: 'x' },
      },
      needs_more: false,
      request_body_mutation: null,
      response_body_mutation: null,
      websocket_decision: null,
    });
    expect(readAgentResponseFast(bytes)).not.toBe(FALLBACK);
    expect(codec.decodeResponse(bytes).audit.confidence).toBe(0.1);
  });
});
