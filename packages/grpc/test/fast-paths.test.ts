/**
 * The one-pass encoders/decoders (src/fast-paths.ts) against the general path (convert.ts +
 * protobufjs) on seeded random input: the encoders must write the same bytes, the decoders
 * must produce deep-equal objects, and whatever the fast path declines (odd values, malformed
 * or truncated bytes) must end exactly as the general path ends it — the same result or the
 * same error code and message — because the callers fall back to that path.
 */
import { isDeepStrictEqual } from 'node:util';
import {
  AgentProtocolError,
  type AgentResponse,
  allow,
  type RequestHeadersEvent,
  setHeader,
} from '@picket/protocol';
import { describe, expect, test } from 'vitest';
import {
  agentResponseFromProto,
  agentResponseToProto,
  eventToProto,
  requestHeadersFromProto,
} from '../src/convert.js';
import {
  decodeAgentResponseFast,
  decodeRequestHeadersFast,
  encodeAgentResponseFast,
  encodeRequestHeadersFast,
  FastAgentResponse,
  FastRequestHeaders,
} from '../src/fast-paths.js';
import { encodeAgentToProxy, encodeProxyToAgent, pb } from '../src/proto.js';

const NOW = 1767225600000;
const ROUNDS = 1500;
const SEEDS = [1, 2, 3];

// ------------------------------------------------------------------ seeded random values

/** A small LCG: every run sees the same inputs, so a failure reproduces. */
function prng(seed: number) {
  let s = seed;
  const rnd = (): number => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
  const int = (n: number): number => Math.floor(rnd() * n);
  const pick = <T>(a: readonly T[]): T => a[int(a.length)] as T;
  return { rnd, int, pick };
}
type Rng = ReturnType<typeof prng>;

/** Strings around the encoder's boundaries: 24/40 units, lone surrogates, long, odd keys. */
const STRINGS = [
  `${'a'.repeat(30)}\ud800`,
  `${'b'.repeat(25)}\udc00\ud800`,
  'c'.repeat(24),
  'ü'.repeat(24),
  `${'x'.repeat(23)}😀`,
  '',
  'a',
  'x-y',
  'ü',
  '日本語',
  '\ud800',
  '\udc00x',
  'a\ud83d\ude00b',
  'é'.repeat(39),
  'é'.repeat(40),
  'a'.repeat(39),
  'a'.repeat(40),
  'a'.repeat(45),
  '😀'.repeat(20),
  '\ud800'.repeat(41),
  'z'.repeat(200),
  'q'.repeat(5000),
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  '0',
  '12',
];
const WEIRD: readonly unknown[] = [
  undefined,
  null,
  0,
  1,
  '',
  'str',
  5.5,
  -1,
  2 ** 33,
  true,
  false,
  [],
  {},
  Number.NaN,
];

function values(g: Rng) {
  const word = (): string => {
    let w = '';
    const n = 1 + g.int(12);
    for (let i = 0; i < n; i++) w += 'abcdefghijklmnopqrstuvwxyz0123456789-'[g.int(37)];
    return w;
  };
  const rs = (): string => (g.rnd() < 0.7 ? g.pick(STRINGS) : word());
  const weird = (): unknown => g.pick(WEIRD);
  const maybe = (v: () => unknown, p = 0.8): unknown =>
    g.rnd() < p ? v() : g.rnd() < 0.9 ? g.pick([undefined, null, '']) : weird();
  return { rs, weird, maybe };
}

function baseEvent(cid: string): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: cid,
      request_id: cid,
      client_ip: '203.0.113.42',
      client_port: 52814,
      server_name: 'shop.example.com',
      protocol: 'HTTP/1.1',
      tls_version: 'TLSv1.3',
      tls_cipher: 'TLS_AES_128_GCM_SHA256',
      route_id: 'shop-api',
      upstream_id: 'shop-backend',
      timestamp: '2026-01-15T10:20:30.123+00:00',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    },
    method: 'GET',
    uri: '/api/v1/products?category=shoes&page=3',
    headers: {
      host: ['shop.example.com'],
      accept: ['application/json, text/plain, */*'],
      cookie: ['session=6f1c2e9a8b7d4c3e; cart=3; theme=dark'],
      'x-forwarded-for': ['203.0.113.42', '198.51.100.7'],
    },
  };
}

function baseResponse(cid: string): AgentResponse {
  return allow({
    requestHeaders: [setHeader('X-Echo-Agent', 'echo/1.0'), setHeader('X-Echo-Cid', cid)],
    tags: ['echo', 'request_headers'],
    custom: { request_num: 12345, method: 'GET', correlation_id: cid },
  });
}

/** Deliberately ill-typed values. */
type Loose = any;

function randomEvent(g: Rng): RequestHeadersEvent {
  const { rs, weird, maybe } = values(g);
  const e: Loose = baseEvent(rs());
  const m = e.metadata;
  for (const k of [
    'correlation_id',
    'request_id',
    'client_ip',
    'server_name',
    'protocol',
    'tls_version',
    'route_id',
    'upstream_id',
    'traceparent',
    'tls_cipher',
  ]) {
    if (g.rnd() < 0.3) m[k] = maybe(rs);
  }
  if (g.rnd() < 0.3)
    m.protocol = g.pick(['HTTP/2', 'HTTP/1.0', 'h3', '', undefined, null, 'HTTP/']);
  if (g.rnd() < 0.3)
    m.client_port = g.pick([0, 1, 65535, 2 ** 32 - 1, 2 ** 32, -5, 1.5, '80', null]);
  if (g.rnd() < 0.3) {
    m.timestamp = g.pick([
      '',
      'x',
      '1700000000000',
      '2026-01-01T00:00:00Z',
      '2026-01-15 10:20:30.5+01:00',
      '99999999999999999',
      17,
      null,
      undefined,
      '0',
    ]);
  }
  if (g.rnd() < 0.3) e.method = maybe(rs);
  if (g.rnd() < 0.3) e.uri = maybe(rs);
  if (g.rnd() < 0.4) {
    const h: Loose = {};
    const n = g.int(30);
    for (let i = 0; i < n; i++) {
      const name = rs();
      const vals =
        g.rnd() < 0.9
          ? Array.from({ length: g.int(3) }, () => (g.rnd() < 0.95 ? rs() : weird()))
          : weird();
      // own entries even for `__proto__`, as a decoded event has them
      Object.defineProperty(h, name, { value: vals, enumerable: true, writable: true });
    }
    e.headers = g.rnd() < 0.95 ? h : weird();
  }
  if (g.rnd() < 0.02) e.metadata = weird();
  return e;
}

function randomOps(g: Rng): unknown[] {
  const { rs, weird, maybe } = values(g);
  return Array.from({ length: g.int(6) }, () => {
    const r = g.rnd();
    if (r < 0.4) return { set: { name: maybe(rs, 0.95), value: maybe(rs, 0.95) } };
    if (r < 0.7) return { add: { name: maybe(rs, 0.95), value: maybe(rs, 0.95) } };
    if (r < 0.95) return { remove: { name: maybe(rs, 0.9) } };
    return weird();
  });
}

function randomEntries(g: Rng, n: number, value: () => unknown): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const k = values(g).rs();
    Object.defineProperty(o, k, { value: value(), enumerable: true, writable: true });
  }
  return o;
}

function randomResponse(g: Rng): AgentResponse {
  const { rs, weird, maybe } = values(g);
  const r: Loose = baseResponse(rs());
  const d = g.rnd();
  if (d < 0.3) {
    r.decision = {
      block: {
        status: g.pick([403, 0, 500, 2 ** 32 - 1, -1, '403', null]),
        body: maybe(rs, 0.6),
        headers: g.rnd() < 0.5 ? null : randomEntries(g, g.int(4), () => maybe(rs, 0.9)),
      },
    };
  } else if (d < 0.4) {
    r.decision = { redirect: { url: maybe(rs), status: g.pick([302, 0, 301]) } };
  } else if (d < 0.45) {
    r.decision = { challenge: { challenge_type: 'captcha', params: { a: 'b' } } };
  } else if (d < 0.47) r.decision = weird();
  if (g.rnd() < 0.5) r.request_headers = randomOps(g);
  if (g.rnd() < 0.5) r.response_headers = randomOps(g);
  if (g.rnd() < 0.1) r.request_headers = weird();
  if (g.rnd() < 0.3) {
    r.audit = {
      tags: Array.from({ length: g.int(3) }, rs),
      rule_ids: g.rnd() < 0.5 ? [] : [rs()],
      confidence: g.pick([null, 0.95, 0, 1, 0.1, Number.NaN, undefined, 1e40]),
      reason_codes: g.rnd() < 0.5 ? [] : [rs(), rs()],
      custom:
        g.rnd() < 0.3
          ? {}
          : randomEntries(g, g.int(5), () =>
              g.pick<unknown>([
                1,
                -0,
                2.5,
                'x',
                '"q"',
                'a\nb',
                null,
                true,
                [1, 'a'],
                { a: 1 },
                undefined,
                Number.NaN,
                Number.POSITIVE_INFINITY,
                1e21,
                rs(),
              ]),
            ),
    };
  }
  if (g.rnd() < 0.05) r.audit = g.rnd() < 0.5 ? null : weird();
  if (g.rnd() < 0.2) r.needs_more = g.rnd() < 0.5;
  if (g.rnd() < 0.2) {
    r.routing_metadata =
      g.rnd() < 0.8 ? randomEntries(g, g.int(3), () => maybe(rs, 0.95)) : weird();
  }
  if (g.rnd() < 0.15) {
    r.request_body_mutation =
      g.rnd() < 0.9 ? { data: maybe(rs, 0.7), chunk_index: g.pick([0, 1, 7]) } : weird();
  }
  if (g.rnd() < 0.15) {
    r.response_body_mutation = { data: maybe(rs, 0.7), chunk_index: g.pick([0, 3]) };
  }
  if (g.rnd() < 0.15) {
    r.websocket_decision = g.pick<unknown>([
      'allow',
      'drop',
      { close: { code: 1000, reason: maybe(rs) } },
      { close: { code: 0, reason: '' } },
      null,
      weird(),
    ]);
  }
  return r;
}

/** Some of the time: one byte changed, then maybe cut short or followed by junk. */
function mutate(g: Rng, b: Buffer): Buffer {
  const r = g.rnd();
  if (r < 0.5) return b;
  const m = Buffer.from(b);
  if (m.length > 0) m[g.int(m.length)] = g.int(256);
  if (r < 0.7) return m.subarray(0, g.int(m.length + 1));
  if (r < 0.8) return Buffer.concat([m, Buffer.from([g.int(256), g.int(256)])]);
  return m;
}

// ------------------------------------------------------------------ outcomes

type Outcome = { ok: unknown } | { error: string; code?: string; message: string };

function outcome(f: () => unknown): Outcome {
  try {
    return { ok: f() };
  } catch (err) {
    const e = err as Error;
    return err instanceof AgentProtocolError
      ? { error: e.name, code: err.code, message: e.message }
      : { error: e?.name ?? String(err), message: e?.message ?? String(err) };
  }
}

/** The same result, down to own property names (a `__proto__` header must be an own entry). */
function expectSame(got: Outcome, want: Outcome, what: () => string): void {
  const same =
    isDeepStrictEqual(got, want) &&
    JSON.stringify(got) === JSON.stringify(want) &&
    JSON.stringify(got, ownNames) === JSON.stringify(want, ownNames);
  if (!same) expect.fail(`${what()}\n got:  ${short(got)}\n want: ${short(want)}`);
}

function ownNames(_k: string, v: unknown): unknown {
  if (v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.getOwnPropertyNames(v).map((n) => [`#${n}`, (v as Loose)[n]]));
  }
  return v;
}

const short = (v: unknown): string => (JSON.stringify(v) ?? String(v)).slice(0, 400);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// the general paths and the callers' combinations (fast path, else general)
const generalRequestBytes = (e: RequestHeadersEvent) =>
  hex(encodeProxyToAgent(eventToProto('request_headers', e, NOW)));
const combinedRequestBytes = (e: RequestHeadersEvent) =>
  hex(
    encodeRequestHeadersFast(e, NOW) ?? encodeProxyToAgent(eventToProto('request_headers', e, NOW)),
  );
const generalResponseBytes = (r: AgentResponse, cid: string, ms: number) =>
  hex(encodeAgentToProxy({ response: agentResponseToProto(r, cid, ms) }));
const combinedResponseBytes = (r: AgentResponse, cid: string, ms: number) =>
  hex(
    encodeAgentResponseFast(r, cid, ms) ??
      encodeAgentToProxy({ response: agentResponseToProto(r, cid, ms) }),
  );

function generalResponseRead(b: Buffer): unknown {
  const m = pb.AgentToProxy.decode(b);
  return m.message === 'response' && m.response
    ? { cid: m.response.correlation_id ?? '', r: agentResponseFromProto(m.response) }
    : { other: m.message ?? null };
}
function combinedResponseRead(b: Buffer): unknown {
  const fast = decodeAgentResponseFast(b);
  if (fast) return { cid: fast.correlationId, r: fast.response };
  return generalResponseRead(b);
}
function generalEventRead(b: Buffer): unknown {
  const m = pb.ProxyToAgent.decode(b);
  return m.message === 'request_headers' && m.request_headers
    ? requestHeadersFromProto(m.request_headers)
    : { other: m.message ?? null };
}
function combinedEventRead(b: Buffer): unknown {
  const fast = decodeRequestHeadersFast(b);
  return fast ? fast.event : generalEventRead(b);
}

/** Calls a fast path, failing the test if it throws (it must decline with undefined). */
function noThrow<T>(f: () => T, what: string): T {
  try {
    return f();
  } catch (err) {
    return expect.fail(`${what} threw: ${String(err)}`);
  }
}

// ------------------------------------------------------------------ tests

describe('fast paths vs protobufjs', () => {
  test.each(SEEDS)('request headers: same bytes, same objects, same failures (seed %i)', (seed) => {
    const g = prng(seed);
    let encoded = 0;
    let decoded = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const e = randomEvent(g);
      const fast = noThrow(() => encodeRequestHeadersFast(e, NOW), 'encodeRequestHeadersFast');
      if (fast) encoded++;
      const want = outcome(() => generalRequestBytes(e));
      expectSame(
        outcome(() => combinedRequestBytes(e)),
        want,
        () => `encode ${short(e)}`,
      );
      if (!('ok' in want)) continue;
      const bytes = mutate(g, Buffer.from(want.ok as string, 'hex'));
      const read = noThrow(() => decodeRequestHeadersFast(bytes), 'decodeRequestHeadersFast');
      if (read) {
        decoded++;
        expect(read).toBeInstanceOf(FastRequestHeaders);
      }
      expectSame(
        outcome(() => combinedEventRead(bytes)),
        outcome(() => generalEventRead(bytes)),
        () => `decode ${bytes.toString('hex').slice(0, 300)}`,
      );
    }
    // the comparison means something only if the fast paths took most inputs
    expect(encoded).toBeGreaterThan(ROUNDS / 2);
    expect(decoded).toBeGreaterThan(ROUNDS / 3);
  });

  test.each(SEEDS)('responses: same bytes, same objects, same failures (seed %i)', (seed) => {
    const g = prng(seed);
    const { rs } = values(g);
    let encoded = 0;
    let decoded = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const r = randomResponse(g);
      const cid = rs();
      const ms = g.pick([0, 0.4, 3.7, 1e6, 2 ** 40, Number.NaN, -3]);
      const fast = noThrow(() => encodeAgentResponseFast(r, cid, ms), 'encodeAgentResponseFast');
      if (fast) encoded++;
      const want = outcome(() => generalResponseBytes(r, cid, ms));
      expectSame(
        outcome(() => combinedResponseBytes(r, cid, ms)),
        want,
        () => `encode ${short(r)} ${cid} ${ms}`,
      );
      if (!('ok' in want)) continue;
      const bytes = mutate(g, Buffer.from(want.ok as string, 'hex'));
      const read = noThrow(() => decodeAgentResponseFast(bytes), 'decodeAgentResponseFast');
      if (read) {
        decoded++;
        expect(read).toBeInstanceOf(FastAgentResponse);
      }
      expectSame(
        outcome(() => combinedResponseRead(bytes)),
        outcome(() => generalResponseRead(bytes)),
        () => `decode ${bytes.toString('hex').slice(0, 300)}`,
      );
    }
    expect(encoded).toBeGreaterThan(ROUNDS / 3);
    expect(decoded).toBeGreaterThan(ROUNDS / 3);
  });

  test('random bytes: the decoders read or decline exactly as protobufjs would', () => {
    const g = prng(42);
    for (let i = 0; i < 3000; i++) {
      const len = g.int(40);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = g.int(256);
      // mostly a plausible start: the tag and a length, so the readers get past the first check
      if (len >= 2 && g.rnd() < 0.8) {
        b[0] = 18;
        b[1] = Math.min(len - 2, b[1] as number);
      }
      const at = () => `bytes ${b.toString('hex')}`;
      noThrow(() => decodeAgentResponseFast(b), 'decodeAgentResponseFast');
      noThrow(() => decodeRequestHeadersFast(b), 'decodeRequestHeadersFast');
      expectSame(
        outcome(() => combinedResponseRead(b)),
        outcome(() => generalResponseRead(b)),
        at,
      );
      expectSame(
        outcome(() => combinedEventRead(b)),
        outcome(() => generalEventRead(b)),
        at,
      );
    }
  });

  test('header names and map keys that are Object.prototype members stay own entries', () => {
    const e = baseEvent('proto-keys');
    e.headers = JSON.parse(
      '{"constructor":["a"],"toString":["b","c"],"__proto__":["d"],"hasOwnProperty":["e"]}',
    );
    const bytes = encodeRequestHeadersFast(e, NOW);
    expect(bytes && hex(bytes)).toBe(generalRequestBytes(e));
    const read = decodeRequestHeadersFast(Buffer.from(bytes as Buffer));
    expect(read).toBeDefined();
    const h = read?.event.headers as Record<string, string[]>;
    expect(Object.getPrototypeOf(h)).toBe(Object.prototype);
    expect(Object.getOwnPropertyNames(h)).toEqual([
      'constructor',
      'toString',
      '__proto__',
      'hasOwnProperty',
    ]);
    expect(h.toString).toEqual(['b', 'c']);
    expect(Object.getOwnPropertyDescriptor(h, '__proto__')?.value).toEqual(['d']);
  });
});
