/**
 * Regression: a request header named `constructor`, `toString` or `__proto__` used to crash
 * a gRPC agent (an uncaught exception inside grpc-js's 'data' event). Over a real socket:
 * such names reach the handler as own entries, the server keeps serving, and responses with
 * such keys in routing_metadata, audit custom and block headers come back intact.
 */
import {
  type AgentHandler,
  type AgentResponse,
  allow,
  block,
  createCapabilities,
  type Headers,
  type RequestHeadersEvent,
} from '@picket/protocol';
import { afterEach, describe, expect, test } from 'vitest';
import { AgentClientV2 } from '../src/client.js';
import { GrpcAgentServerV2 } from '../src/server.js';
import { bareRequest } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const NAMES = ['constructor', 'toString', '__proto__', 'hasOwnProperty'] as const;

/** `{ name: value }` for every name in NAMES, all own properties (JSON.parse makes them so). */
function keyed<T>(value: (name: string) => T): Record<string, T> {
  return JSON.parse(JSON.stringify(Object.fromEntries(NAMES.map((n) => [n, value(n)]))));
}

function request(cid: string, headers: Headers): RequestHeadersEvent {
  return { ...bareRequest(cid), headers };
}

interface Seen {
  cid: string;
  names: string[];
  plainPrototype: boolean;
  values: Record<string, string[] | undefined>;
}

async function start() {
  const seen: Seen[] = [];
  const handler: AgentHandler = {
    capabilities: () => createCapabilities({ agentId: 'keys' }),
    onRequestHeaders(e): AgentResponse {
      const h = e.headers;
      seen.push({
        cid: e.metadata.correlation_id,
        names: Object.getOwnPropertyNames(h),
        plainPrototype: Object.getPrototypeOf(h) === Object.prototype,
        values: Object.fromEntries(
          Object.getOwnPropertyNames(h).map((n) => [
            n,
            Object.getOwnPropertyDescriptor(h, n)?.value,
          ]),
        ),
      });
      const cid = e.metadata.correlation_id;
      // with `__proto__`: the general encoder/decoder; without: the one-pass ones
      const names = cid.endsWith('-own') ? NAMES.filter((n) => n !== '__proto__') : NAMES;
      const pick = <T>(o: Record<string, T>) =>
        JSON.parse(JSON.stringify(Object.fromEntries(names.map((n) => [n, o[n]]))));
      if (cid.startsWith('block')) {
        return block(403, { body: 'no', headers: pick(keyed((n) => `h-${n}`)) });
      }
      if (cid.startsWith('routing')) {
        return allow({
          routingMetadata: pick(keyed((n) => `r-${n}`)),
          custom: pick(keyed((n) => ({ n, list: [1, n] }))),
        });
      }
      return allow();
    },
  };
  const server = new GrpcAgentServerV2(handler, { logger: quiet });
  const { address } = await server.listen('127.0.0.1:0');
  cleanups.push(() => server.close({ drainTimeoutMs: 200 }));
  const connect = async () => {
    const c = await AgentClientV2.connect('keys', address, { timeoutMs: 5000, logger: quiet });
    cleanups.push(() => c.close());
    return c;
  };
  return { seen, connect };
}

const ownNames = (o: object) => Object.getOwnPropertyNames(o);
const own = (o: object, k: string) => Object.getOwnPropertyDescriptor(o, k)?.value;

describe('Object.prototype member names over gRPC', () => {
  test('request headers named like Object.prototype members reach the handler as own entries', async () => {
    const { seen, connect } = await start();
    const a = await connect();
    for (const name of NAMES) {
      const r = await a.sendRequestHeaders(
        request(`one-${name}`, JSON.parse(`{"${name}": ["v1", "v2"], "x": ["y"]}`)),
      );
      expect(r.decision).toBe('allow');
    }
    const all = await a.sendRequestHeaders(
      request(
        'all',
        keyed((n) => [`v-${n}`]),
      ),
    );
    expect(all.decision).toBe('allow');

    expect(seen.map((s) => s.cid)).toEqual([...NAMES.map((n) => `one-${n}`), 'all']);
    for (const [i, name] of NAMES.entries()) {
      const s = seen[i] as Seen;
      expect(s.plainPrototype).toBe(true);
      expect(s.names).toEqual([name, 'x']);
      expect(s.values).toEqual(JSON.parse(`{"${name}": ["v1", "v2"], "x": ["y"]}`));
    }
    const last = seen[NAMES.length] as Seen;
    expect(last.plainPrototype).toBe(true);
    expect(last.names).toEqual([...NAMES]);
    for (const n of NAMES) expect(last.values[n]).toEqual([`v-${n}`]);

    // the server is still serving: this stream and a new one
    expect((await a.sendRequestHeaders(bareRequest('after-a'))).decision).toBe('allow');
    const b = await connect();
    expect((await b.sendRequestHeaders(bareRequest('after-b'))).decision).toBe('allow');
    expect(a.isHealthy()).toBe(true);
  });

  test.each([
    ['all four keys (general path)', ''],
    ['no __proto__ (one-pass path)', '-own'],
  ])(
    'responses keep such keys in routing_metadata, audit custom and block headers: %s',
    async (_what, suffix) => {
      const { connect } = await start();
      const c = await connect();
      const names = suffix ? NAMES.filter((n) => n !== '__proto__') : [...NAMES];

      const blocked = await c.sendRequestHeaders(request(`block${suffix}`, {}));
      expect(typeof blocked.decision === 'object' && 'block' in blocked.decision).toBe(true);
      const bh = (blocked.decision as { block: { headers: Record<string, string> | null } }).block
        .headers as Record<string, string>;
      expect(Object.getPrototypeOf(bh)).toBe(Object.prototype);
      expect(ownNames(bh)).toEqual(names);
      for (const n of names) expect(own(bh, n)).toBe(`h-${n}`);

      const routed = await c.sendRequestHeaders(request(`routing${suffix}`, {}));
      const rm = routed.routing_metadata;
      expect(Object.getPrototypeOf(rm)).toBe(Object.prototype);
      expect(ownNames(rm)).toEqual(names);
      for (const n of names) expect(own(rm, n)).toBe(`r-${n}`);
      const custom = routed.audit.custom;
      expect(Object.getPrototypeOf(custom)).toBe(Object.prototype);
      expect(ownNames(custom)).toEqual(names);
      for (const n of names) expect(own(custom, n)).toEqual({ n, list: [1, n] });

      // and the stream still answers
      expect((await c.sendRequestHeaders(bareRequest(`after${suffix}`))).decision).toBe('allow');
    },
  );
});
