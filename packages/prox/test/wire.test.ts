import { decode as referenceDecode, encode as referenceEncode } from '@msgpack/msgpack';
import { AgentProtocolError } from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import {
  decodeAuthorizeResult,
  decodeConnInfo,
  decodeConnResult,
  decodeDisconnectInfo,
  decodeEnvelope,
  decodeHostLine,
  decodePluginLine,
  decodeRequestInfo,
  decodeResponseModResult,
  decodeResponsePair,
  encodeAuthorizeResult,
  encodeConfigureLine,
  encodeConnInfo,
  encodeConnResult,
  encodeDisconnectInfo,
  encodeEnvelope,
  encodeLogLine,
  encodeProxFrame,
  encodeReadyLine,
  encodeRequestInfo,
  encodeResponseModResult,
  encodeResponsePair,
  encodeSetSpeedLine,
  encodeSetTargetsLine,
  HookType,
  MAX_CONTROL_LINE,
  MAX_PROX_FRAME,
  OK_LINE,
  ProxFrameReader,
} from '../src/index.js';

const hex = (s: string): Uint8Array => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** The inner on_connect payload of the spec's vector: {r:"gw:0", d:"a.example.com", a:"1.2.3.4:5"}. */
const CONNECT_INNER = '83a172a467773a30a164ad612e6578616d706c652e636f6da161a9312e322e332e343a35';

describe('spec byte vectors', () => {
  it('on_connect frame, JS style (compact t), is exactly what picket writes', () => {
    const inner = encodeConnInfo({
      routeId: 'gw:0',
      domain: 'a.example.com',
      remoteAddr: '1.2.3.4:5',
    });
    expect(toHex(inner)).toBe(CONNECT_INNER);
    const frame = encodeProxFrame(encodeEnvelope(HookType.Connect, inner));
    expect(toHex(frame)).toBe(`0000002c82a17403a164c424${CONNECT_INNER}`);
  });

  it('on_connect frame, Go style (t as cc 03), decodes to the same envelope', () => {
    const goFrame = hex(`0000002d 82 a174 cc03 a164 c4 24 ${CONNECT_INNER}`);
    const jsFrame = hex(`0000002c 82 a174 03 a164 c4 24 ${CONNECT_INNER}`);
    for (const frame of [goFrame, jsFrame]) {
      const [payload, ...rest] = new ProxFrameReader().push(frame);
      expect(rest).toEqual([]);
      const env = decodeEnvelope(payload as Uint8Array);
      expect(env.hook).toBe(3);
      expect(decodeConnInfo(env.data)).toEqual({
        routeId: 'gw:0',
        domain: 'a.example.com',
        remoteAddr: '1.2.3.4:5',
        matchDomain: '',
        matchGlob: '',
      });
    }
  });

  it('allow is 81 a26f6b c3 both ways', () => {
    expect(toHex(encodeAuthorizeResult({ allow: true }))).toBe('81a26f6bc3');
    expect(decodeAuthorizeResult(hex('81a26f6bc3')).allow).toBe(true);
  });

  it('deny 401 is 83 a26f6b c2 a173 cd0191 a162 ac "Unauthorized" both ways', () => {
    const bytes = '83a26f6bc2a173cd0191a162ac556e617574686f72697a6564';
    expect(toHex(encodeAuthorizeResult({ allow: false, status: 401, body: 'Unauthorized' }))).toBe(
      bytes,
    );
    expect(decodeAuthorizeResult(hex(bytes))).toMatchObject({
      allow: false,
      status: 401,
      body: 'Unauthorized',
    });
  });

  it('our bytes agree with @msgpack/msgpack for the same object', () => {
    const inner = referenceEncode({ r: 'gw:0', d: 'a.example.com', a: '1.2.3.4:5' });
    const reference = referenceEncode({ t: 3, d: inner });
    expect(
      toHex(
        encodeEnvelope(
          3,
          encodeConnInfo({ routeId: 'gw:0', domain: 'a.example.com', remoteAddr: '1.2.3.4:5' }),
        ),
      ),
    ).toBe(toHex(reference));
  });
});

describe('integer widths Go writes', () => {
  it('int64 counters as d3 + 8 bytes, and every other width', () => {
    // {r:"x", a:"y", rx: d3 …2^40, tx: cf 5, ms: d2 7}
    const bytes = hex(
      '85 a172 a178 a161 a179 a27278 d3 0000010000000000 a27478 cf 0000000000000005 a26d73 d2 00000007',
    );
    expect(decodeDisconnectInfo(bytes)).toEqual({
      routeId: 'x',
      target: '',
      remoteAddr: 'y',
      bytesRx: 2 ** 40,
      bytesTx: 5,
      durationMs: 7,
    });
  });

  it('status as cc, cd, ce, d1 and nil all read', () => {
    for (const [code, want] of [
      ['cc c8', 200],
      ['cd 0191', 401],
      ['ce 000001f4', 500],
      ['d1 01f7', 503],
      ['d3 00000000000001f8', 504],
      ['c0', 0],
      ['7f', 127],
    ] as const) {
      expect(decodeResponseModResult(hex(`81 a173 ${code}`)).status).toBe(want);
    }
  });

  it('cl = -1 (chunked) in fixint, d0 and d3 form', () => {
    for (const code of ['ff', 'd0ff', 'd1ffff', 'd3ffffffffffffffff']) {
      expect(decodeRequestInfo(hex(`81 a2636c ${code}`)).contentLength).toBe(-1);
    }
  });

  it('an int64 beyond 2^53 is a clear error, never a rounded number', () => {
    expect(() => decodeDisconnectInfo(hex('81 a27278 d3 7fffffffffffffff'))).toThrow(
      /DisconnectInfo\.rx: integer 9223372036854775807 is outside/,
    );
  });

  it('dl/ul as float64, float32 or an integer', () => {
    const r = decodeAuthorizeResult(
      hex('82 a26f6b c3 a27370 82 a2646c cb 4049000000000000 a2756c 32'),
    );
    expect(r.speedLimit).toEqual({ downloadMbps: 50, uploadMbps: 50, groupKey: '' });
    const f32 = decodeAuthorizeResult(hex('81 a27370 81 a2646c ca 3fc00000'));
    expect(f32.speedLimit?.downloadMbps).toBe(1.5);
    const big = decodeAuthorizeResult(hex('81 a27370 81 a2756c cd 0400'));
    expect(big.speedLimit?.uploadMbps).toBe(1024);
  });

  it('picket writes dl/ul as float64 (cb), even for whole numbers', () => {
    const bytes = encodeAuthorizeResult({
      allow: true,
      speedLimit: { downloadMbps: 50, groupKey: 'u1' },
    });
    expect(toHex(bytes)).toBe('82a26f6bc3a2737082a2646ccb4049000000000000a2676ba27531');
  });

  it('t = 300 wraps to 44 like Go uint8; a string t is an error', () => {
    expect(decodeEnvelope(hex('82 a174 cd012c a164 c400')).hook).toBe(44);
    expect(decodeEnvelope(hex('82 a174 ff a164 c400')).hook).toBe(255);
    expect(() => decodeEnvelope(hex('82 a174 a3616263 a164 c400'))).toThrow(
      /envelope\.t: expected an integer, got a string/,
    );
  });
});

describe('Go leniency', () => {
  it('absent keys are zero values; a missing ok is deny', () => {
    expect(decodeAuthorizeResult(hex('80'))).toEqual({
      allow: false,
      drop: false,
      fallback: false,
      status: 0,
      body: '',
      headers: {},
      speedLimit: undefined,
      cleanQuery: false,
      rewritePath: '',
    });
    expect(decodeConnResult(hex('80')).allow).toBe(false);
    expect(decodeConnResult(hex('c0')).allow).toBe(false);
  });

  it('unknown keys are skipped whatever their type; trailing bytes are ignored', () => {
    const bytes = hex(
      '84 a2787a 92 81 a161 c0 cb 0000000000000000 a26f6b c3 a27a7a d6ff 00000000 a2666b c3 ffff',
    );
    const r = decodeAuthorizeResult(bytes);
    expect(r.allow).toBe(true);
    expect(r.fallback).toBe(false);
  });

  it('a 2-element array is an envelope, nil an empty one', () => {
    expect(decodeEnvelope(hex('92 01 c4 01 80'))).toEqual({ hook: 1, data: hex('80') });
    expect(decodeEnvelope(hex('c0'))).toEqual({ hook: 0, data: new Uint8Array(0) });
  });

  it('str and bin are interchangeable; nil maps and strings are empty', () => {
    const r = decodeRequestInfo(hex('84 a16d c403474554 a168 c0 a262 64 a3616263 a171 c0'));
    expect(r.method).toBe('GET');
    expect(r.headers).toEqual({});
    expect(r.body).toEqual(hex('616263'));
    expect(r.query).toBe('');
  });

  it('a __proto__ header is an ordinary own header', () => {
    const bytes = encodeRequestInfo({ headers: JSON.parse('{"__proto__":"x","a":"b"}') });
    const r = decodeRequestInfo(bytes);
    expect(Object.keys(r.headers)).toEqual(['__proto__', 'a']);
    expect(Object.getPrototypeOf(r.headers)).toBe(Object.prototype);
  });

  it('broken payloads are INVALID_MESSAGE errors naming the field', () => {
    const cases: [Uint8Array, RegExp][] = [
      [hex(''), /empty payload/],
      [hex('81 a173 a3616263'), /ResponseModResult\.s: expected an integer, got a string/],
      [hex('81 a26f6b 01'), /AuthorizeResult\.ok: expected a boolean/],
      [hex('81 a16d c403'), /RequestInfo\.m: payload truncated/],
      [hex('a3 616263'), /expected a map or an array/],
      [hex('df ffffffff'), /does not fit/],
      [hex('81 a168 81 01 a0'), /RequestInfo\.h key: expected a string/],
      [hex('81 a1 78 c1'), /not MessagePack/],
    ];
    for (const [bytes, re] of cases) {
      const decodeAny = (b: Uint8Array) =>
        re.source.startsWith('ResponseModResult')
          ? decodeResponseModResult(b)
          : re.source.startsWith('AuthorizeResult')
            ? decodeAuthorizeResult(b)
            : decodeRequestInfo(b);
      let error: unknown;
      try {
        decodeAny(bytes);
      } catch (err) {
        error = err;
      }
      expect(error, toHex(bytes)).toBeInstanceOf(AgentProtocolError);
      expect((error as AgentProtocolError).code).toBe('INVALID_MESSAGE');
      expect((error as Error).message).toMatch(re);
    }
  });

  it('deep nesting in an unknown key is refused, not a stack overflow', () => {
    const deep = new Uint8Array(10_000).fill(0x91);
    const bytes = Buffer.concat([hex('81 a178'), deep, hex('c0')]);
    expect(() => decodeConnResult(bytes)).toThrow(/nested too deeply/);
  });
});

describe('round trips and Go field order', () => {
  it('RequestInfo with every field', () => {
    const info = {
      routeId: 'svc:0',
      method: 'POST',
      path: '/a',
      query: 'x=1',
      domain: 'a.example',
      host: 'a.example:8443',
      proto: 'HTTP/1.1',
      remoteAddr: '10.0.0.1:5555',
      contentLength: 3,
      headers: { 'Content-Type': 'text/plain' },
      body: new Uint8Array([1, 2, 3]),
      matchDomain: 'a',
      matchGlob: 'g',
      matchPath: '/a',
      vars: { id: '7' },
      target: '10.0.0.9:80',
    };
    const bytes = encodeRequestInfo(info);
    expect(decodeRequestInfo(bytes)).toEqual(info);
    expect(Object.keys(referenceDecode(bytes) as object)).toEqual([
      'r',
      'm',
      'p',
      'q',
      'd',
      'ho',
      'pr',
      'a',
      'cl',
      'h',
      'bd',
      'md',
      'mg',
      'mp',
      'v',
      'tg',
    ]);
  });

  it('RequestInfo omits what Go omits and keeps r m p d a h', () => {
    expect(referenceDecode(encodeRequestInfo({}))).toEqual({
      r: '',
      m: '',
      p: '',
      d: '',
      a: '',
      h: {},
    });
  });

  it('AuthorizeResult with every field, in Go order', () => {
    const r = {
      allow: false,
      drop: true,
      fallback: true,
      status: 429,
      body: 'slow down',
      headers: { 'Retry-After': '1' },
      speedLimit: { downloadMbps: 1.5, uploadMbps: 2, groupKey: 'k' },
      cleanQuery: true,
      rewritePath: '/b',
    };
    const bytes = encodeAuthorizeResult(r);
    expect(decodeAuthorizeResult(bytes)).toEqual(r);
    expect(Object.keys(referenceDecode(bytes) as object)).toEqual([
      'ok',
      'dr',
      'fb',
      's',
      'b',
      'h',
      'sp',
      'cq',
      'rp',
    ]);
  });

  it('ResponsePair, ResponseModResult, ConnResult, DisconnectInfo', () => {
    const pair = encodeResponsePair({
      req: { routeId: 'r', path: '/' },
      resp: { status: 200, headers: { A: 'b' } },
    });
    const p = decodeResponsePair(pair);
    expect(p.req.path).toBe('/');
    expect(p.resp).toEqual({ status: 200, headers: { A: 'b' } });
    expect(referenceDecode(encodeResponseModResult({}))).toEqual({});
    const mod = { status: 201, headers: { X: 'y' }, remove: ['Server'] };
    expect(decodeResponseModResult(encodeResponseModResult(mod))).toEqual(mod);
    expect(toHex(encodeConnResult({ allow: false }))).toBe('81a26f6bc2');
    const d = {
      routeId: 'r',
      target: 't',
      remoteAddr: 'a',
      bytesRx: 2 ** 40,
      bytesTx: 0,
      durationMs: 12,
    };
    expect(decodeDisconnectInfo(encodeDisconnectInfo(d))).toEqual(d);
    expect(Object.keys(referenceDecode(encodeDisconnectInfo({})) as object)).toEqual([
      'r',
      'a',
      'rx',
      'tx',
      'ms',
    ]);
  });

  it('encoders are strict and name the field', () => {
    expect(() => encodeAuthorizeResult({ allow: 'yes' as unknown as boolean })).toThrow(
      /AuthorizeResult\.allow must be a boolean, got string/,
    );
    expect(() => encodeAuthorizeResult({ status: 7 })).toThrow(/status 100-999, got 7/);
    expect(() => encodeAuthorizeResult({ speedLimit: { downloadMbps: Number.NaN } })).toThrow(
      /downloadMbps must be a finite number/,
    );
    expect(() => encodeRequestInfo({ headers: { a: 1 as unknown as string } })).toThrow(
      /RequestInfo\.headers\["a"\] must be a string/,
    );
    expect(() => encodeEnvelope(5, new Uint8Array(1))).toThrow(/envelope hook must be 1/);
  });
});

describe('frames', () => {
  it('exactly 1 MiB is legal, 1 MiB + 1 is refused before buffering', () => {
    const legal = new Uint8Array(4 + MAX_PROX_FRAME);
    new DataView(legal.buffer).setUint32(0, MAX_PROX_FRAME);
    expect(new ProxFrameReader().push(legal)[0]?.length).toBe(MAX_PROX_FRAME);
    expect(encodeProxFrame(new Uint8Array(MAX_PROX_FRAME)).length).toBe(4 + MAX_PROX_FRAME);

    const reader = new ProxFrameReader();
    expect(() => reader.push(hex('00100001'))).toThrow(/prox frame length 1048577 exceeds/);
    expect(() => reader.push(hex('00'))).toThrow(/already failed/);
    expect(() => encodeProxFrame(new Uint8Array(MAX_PROX_FRAME + 1))).toThrow(/exceeds/);
  });

  it('frames split across chunks, several per chunk, and a truncated end', () => {
    const a = encodeProxFrame(hex('81a26f6bc3'));
    const b = encodeProxFrame(hex('80'));
    const all = Buffer.concat([a, b, a]);
    const reader = new ProxFrameReader();
    const out: Uint8Array[] = [];
    for (const byte of all) out.push(...reader.push(Uint8Array.of(byte)));
    expect(out.map(toHex)).toEqual(['81a26f6bc3', '80', '81a26f6bc3']);
    reader.end();
    const cut = new ProxFrameReader();
    cut.push(a.subarray(0, 6));
    expect(() => cut.end()).toThrow(/stream ended mid-prox frame: 2 of 5 payload bytes/);
  });

  it('a zero length is refused', () => {
    expect(() => new ProxFrameReader().push(hex('00000000'))).toThrow(/zero-length prox frame/);
  });
});

describe('control lines', () => {
  it('configure as prox writes it, and as the SDK reads it', () => {
    const text = encodeConfigureLine({
      routeId: 'svc:0',
      match: { domain: 'a.example', path: '' },
    });
    expect(text).toBe(
      '{"method":"configure","params":{"route_id":"svc:0","match":{"domain":"a.example"}}}\n',
    );
    expect(decodeHostLine(text)).toEqual({
      kind: 'configure',
      params: { routeId: 'svc:0', match: { domain: 'a.example', path: '' } },
    });
    expect(decodeHostLine('{"method":"configure","params":{"route_id":""}}')).toEqual({
      kind: 'configure',
      params: { routeId: '' },
    });
    expect(decodeHostLine('{"method":"configure"}')).toEqual({
      kind: 'invalid',
      reason: 'configure without params',
    });
    expect(decodeHostLine('{"method":"configure","params":"x"}').kind).toBe('invalid');
    expect(decodeHostLine('{"method":"configure","params":{"route_id":5}}').kind).toBe('invalid');
    expect(decodeHostLine('{"method":"shutdown"}')).toEqual({
      kind: 'unknown',
      method: 'shutdown',
    });
    expect(decodeHostLine('not json').kind).toBe('invalid');
    expect(decodeHostLine('  \r')).toEqual({ kind: 'empty' });
  });

  it('ok, ready, set_targets (plain, grouped, action, "*"), set_speed, log', () => {
    expect(OK_LINE).toBe('{"result":"ok"}\n');
    expect(decodePluginLine(OK_LINE)).toEqual({ kind: 'ack', result: 'ok', error: '' });
    const ready = encodeReadyLine('/tmp/x/s', ['on_request', 'on_connect']);
    expect(ready).toBe(
      '{"method":"ready","params":{"socket":"/tmp/x/s","hooks":["on_request","on_connect"]}}\n',
    );
    expect(decodePluginLine(ready)).toEqual({
      kind: 'ready',
      socket: '/tmp/x/s',
      hooks: ['on_request', 'on_connect'],
    });
    expect(encodeSetTargetsLine({ routeId: '*' }, ['10.0.0.1:80'])).toBe(
      '{"method":"set_targets","params":{"route_id":"*","targets":["10.0.0.1:80"]}}\n',
    );
    expect(encodeSetTargetsLine({ action: 'api' }, { eu: ['a:1'], us: ['b:2'] })).toBe(
      '{"method":"set_targets","params":{"action":"api","groups":{"eu":["a:1"],"us":["b:2"]}}}\n',
    );
    expect(decodePluginLine(encodeSetTargetsLine({ action: 'api' }, { eu: ['a:1'] }))).toEqual({
      kind: 'set_targets',
      routeId: '',
      action: 'api',
      targets: [],
      groups: { eu: ['a:1'] },
    });
    expect(encodeSetSpeedLine({ routeId: 'svc:0' }, { downloadMbps: 10, groupKey: 'u' })).toBe(
      '{"method":"set_speed","params":{"route_id":"svc:0","download_mbps":10,"group_key":"u"}}\n',
    );
    expect(
      decodePluginLine('{"method":"set_speed","params":{"action":"a","upload_mbps":2.5}}'),
    ).toEqual({
      kind: 'set_speed',
      routeId: '',
      action: 'a',
      downloadMbps: 0,
      uploadMbps: 2.5,
      groupKey: '',
    });
    expect(encodeLogLine('warn', 'hi', ['k', 1])).toBe(
      '{"method":"log","params":{"level":"warn","message":"hi","args":["k",1]}}\n',
    );
    expect(decodePluginLine('{"method":"ready","params":{"socket":1}}').kind).toBe('invalid');
  });

  it('encoders refuse bad targets, bad levels and lines prox cannot read', () => {
    expect(() => encodeSetTargetsLine({ routeId: '' }, [])).toThrow(/push target/);
    expect(() => encodeLogLine('fatal' as 'error', 'x')).toThrow(/log level/);
    const many = Array.from({ length: 5000 }, (_, i) => `10.0.${i >> 8}.${i & 255}:8080`);
    expect(() => encodeSetTargetsLine({ routeId: '*' }, many)).toThrow(
      new RegExp(`exceeds prox's ${MAX_CONTROL_LINE}-byte line limit`),
    );
  });
});
