import { renderChallenge, renderDecision } from '@picket/http';
import {
  applyHeaderOps,
  bodyPipeline,
  type ChunkInfo,
  cloneHeaders,
  collect,
  DecisionSignal,
  firstForwardedAddress,
  newTraceparent,
  parseTraceparent,
  rfc3339,
  type StageHooks,
  stripHopByHop,
  toHeaderMap,
  toOutgoing,
} from '@picket/http/internal';
import {
  type AgentResponse,
  allow,
  block,
  challenge,
  needsMore,
  redirect,
  replaceBody,
} from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import type { AgentConfig } from '../src/config.js';

function agent(
  name: string,
  bodyMode: 'buffer' | 'stream',
  extra: Partial<AgentConfig> = {},
): AgentConfig {
  return {
    name,
    endpoint: 'unix:/x',
    events: new Set(['request_body']),
    bodyMode,
    maxBodyBytes: 1024,
    timeoutMs: 1000,
    failureMode: 'closed',
    connections: undefined,
    authToken: undefined,
    ...extra,
  };
}

/** Hooks that answer with `decide` and record what each agent was sent. */
function hooks(decide: (agent: string, c: ChunkInfo) => AgentResponse) {
  const seen: {
    agent: string;
    text: string;
    last: boolean;
    index: number;
    total: number | null;
  }[] = [];
  const h: StageHooks = {
    async send(a, c) {
      seen.push({
        agent: a.name,
        text: c.data.toString(),
        last: c.isLast,
        index: c.chunkIndex,
        total: c.totalSize,
      });
      const r = decide(a.name, c);
      if (r.decision !== 'allow') throw new DecisionSignal(a.name, r);
      return r;
    },
    mutation: (r) => r.request_body_mutation,
    overLimit: (a) => (a.failureMode === 'open' ? undefined : block(413)),
  };
  return { h, seen };
}

async function* source(...parts: string[]) {
  for (const p of parts) yield Buffer.from(p);
}

describe('body stages', () => {
  it('buffer mode sends the whole body once and applies the replacement', async () => {
    const { h, seen } = hooks(() => allow({ requestBodyMutation: replaceBody('NEW') }));
    const out = await collect(bodyPipeline(source('ab', 'cd'), [agent('a', 'buffer')], h, 4));
    expect(out.toString()).toBe('NEW');
    expect(seen).toEqual([{ agent: 'a', text: 'abcd', last: true, index: 0, total: 4 }]);
  });

  it('stream mode: per chunk, last chunk by size, null passes, "" drops', async () => {
    const { h, seen } = hooks((_a, c) =>
      c.chunkIndex === 1
        ? allow({ requestBodyMutation: { data: '', chunk_index: 1 } })
        : c.chunkIndex === 2
          ? allow({ requestBodyMutation: replaceBody('Z', 2) })
          : allow({ requestBodyMutation: { data: null, chunk_index: 0 } }),
    );
    const out = await collect(bodyPipeline(source('a', 'b', 'c'), [agent('s', 'stream')], h, 3));
    expect(out.toString()).toBe('aZ');
    expect(seen.map((s) => [s.text, s.last, s.index])).toEqual([
      ['a', false, 0],
      ['b', false, 1],
      ['c', true, 2],
    ]);
  });

  it('stream mode without a known size ends with an empty last chunk', async () => {
    const { h, seen } = hooks(() => allow());
    const out = await collect(bodyPipeline(source('a', 'b'), [agent('s', 'stream')], h, null));
    expect(out.toString()).toBe('ab');
    expect(seen.map((s) => [s.text, s.last])).toEqual([
      ['a', false],
      ['b', false],
      ['', true],
    ]);
  });

  it('needs_more holds chunks until the decision; a mutation may name a held chunk', async () => {
    const released: string[] = [];
    const { h } = hooks((_a, c) =>
      c.isLast ? allow({ requestBodyMutation: replaceBody('A!', 0) }) : needsMore(),
    );
    const it = bodyPipeline(source('a', 'b', 'c'), [agent('s', 'stream')], h, 3)[
      Symbol.asyncIterator
    ]();
    for (;;) {
      const n = await it.next();
      if (n.done) break;
      released.push(n.value.toString());
    }
    // nothing came out before the last answer; then every held chunk at once
    expect(released).toEqual(['A!', 'b', 'c']);
  });

  it('a block on a later chunk ends the stream before that data moves on', async () => {
    const { h } = hooks((_a, c) => (c.chunkIndex === 1 ? block(403, { body: 'no' }) : allow()));
    const got: string[] = [];
    const run = async () => {
      for await (const c of bodyPipeline(
        source('ok', 'bad', 'more'),
        [agent('s', 'stream')],
        h,
        null,
      )) {
        got.push(c.toString());
      }
    };
    await expect(run()).rejects.toBeInstanceOf(DecisionSignal);
    expect(got).toEqual(['ok']);
  });

  it('chains agents: each sees the body as the previous left it', async () => {
    const { h, seen } = hooks((a, c) =>
      a === 'first'
        ? allow({ requestBodyMutation: replaceBody(c.data.toString().toUpperCase()) })
        : allow(),
    );
    const out = await collect(
      bodyPipeline(
        source('hi ', 'there'),
        [agent('first', 'buffer'), agent('second', 'stream')],
        h,
        8,
      ),
    );
    expect(out.toString()).toBe('HI THERE');
    expect(seen.filter((s) => s.agent === 'second').map((s) => [s.text, s.last, s.total])).toEqual([
      ['HI THERE', false, null],
      ['', true, null],
    ]);
  });

  it('over max_body_bytes: fail-closed refuses, fail-open passes the body uninspected', async () => {
    const { h, seen } = hooks(() => allow());
    const big = 'x'.repeat(700);
    await expect(
      collect(bodyPipeline(source(big, big), [agent('c', 'buffer')], h, null)),
    ).rejects.toMatchObject({ response: { decision: { block: { status: 413 } } } });
    const out = await collect(
      bodyPipeline(
        source(big, big, 'tail'),
        [agent('o', 'buffer', { failureMode: 'open' })],
        h,
        null,
      ),
    );
    expect(out.length).toBe(1404);
    expect(seen).toEqual([]);
  });
});

describe('decisions', () => {
  const render = (r: AgentResponse) => {
    const g = renderDecision(r);
    return g && { status: g.status, headers: g.headers, body: g.body.toString() };
  };

  it('allow renders nothing; block keeps status, headers and body', () => {
    expect(renderDecision(allow())).toBeUndefined();
    expect(render(block(429, { body: 'slow down', headers: { 'Retry-After': '5' } }))).toEqual({
      status: 429,
      headers: { 'retry-after': ['5'], 'content-type': ['text/plain; charset=utf-8'] },
      body: 'slow down',
    });
    expect(render(block(503))?.body).toBe('Service Unavailable\n');
    expect(render(block(200))?.status).toBe(403);
    expect(
      render(block(403, { headers: { 'bad\nname': 'x', 'content-type': 'application/json' } }))
        ?.headers,
    ).toEqual({
      'content-type': ['application/json'],
    });
  });

  it('redirect sets Location; a non-3xx status becomes 302', () => {
    expect(render(redirect('https://login.example/', 307))).toMatchObject({
      status: 307,
      headers: { location: ['https://login.example/'] },
    });
    expect(render(redirect('/x', 200))?.status).toBe(302);
    expect(render(redirect('bad\r\nurl'))?.status).toBe(502);
  });

  it('challenge: auth schemes ⇒ 401 + WWW-Authenticate, others ⇒ 403, JSON body, status override', () => {
    const bearer = renderChallenge({
      challenge_type: 'Bearer',
      params: { realm: 'api', scope: 'read "all"' },
    });
    expect(bearer.status).toBe(401);
    expect(bearer.headers['www-authenticate']).toEqual([
      'Bearer realm="api", scope="read \\"all\\""',
    ]);
    expect(JSON.parse(bearer.body.toString())).toEqual({
      challenge_type: 'Bearer',
      params: { realm: 'api', scope: 'read "all"' },
    });
    const captcha = render(challenge('captcha', { site_key: 'k', status: '429' }));
    expect(captcha?.status).toBe(429);
    expect(captcha?.headers['www-authenticate']).toBeUndefined();
    expect(captcha?.headers['x-picket-challenge']).toEqual(['captcha']);
    expect(JSON.parse(captcha?.body ?? '')).toEqual({
      challenge_type: 'captcha',
      params: { site_key: 'k' },
    });
    expect(render(challenge('js', { status: '200' }))?.status).toBe(403);
  });
});

describe('http helpers', () => {
  it('applies header ops in order, case-insensitively, skipping invalid ones', () => {
    const h: Record<string, string[]> = { a: ['1'], 'x-old': ['o'] };
    const bad: unknown[] = [];
    applyHeaderOps(
      h,
      [
        { set: { name: 'A', value: '2' } },
        { add: { name: 'a', value: '3' } },
        { remove: { name: 'X-Old' } },
        { set: { name: 'x-new', value: 'bad\r\nvalue' } },
        { add: { name: 'b', value: 'v' } },
      ],
      (op) => bad.push(op),
    );
    expect(h).toEqual({ a: ['2', '3'], b: ['v'] });
    expect(bad).toHaveLength(1);
  });

  it('header names like __proto__ and constructor are plain entries everywhere', () => {
    const h = toHeaderMap({ constructor: 'c', connection: 'tostring' });
    applyHeaderOps(h, [
      { add: { name: 'Constructor', value: 'c2' } },
      { add: { name: 'toString', value: 't' } },
      { set: { name: '__proto__', value: 'p' } },
      { add: { name: 'hasOwnProperty', value: 'h' } },
    ]);
    expect(Object.getPrototypeOf(h)).toBe(Object.prototype);
    expect(Object.keys(h)).toEqual([
      'constructor',
      'connection',
      'tostring',
      '__proto__',
      'hasownproperty',
    ]);
    expect(h.constructor).toEqual(['c', 'c2']);
    const fresh: Record<string, string[]> = {};
    applyHeaderOps(fresh, [{ add: { name: 'Constructor', value: 'first' } }]);
    expect(fresh).toEqual({ constructor: ['first'] });
    // `Connection: tostring` names a header to strip: only that one goes
    const out = toOutgoing(stripHopByHop(cloneHeaders(h)));
    expect(Object.keys(out)).toEqual(['constructor', '__proto__', 'hasownproperty']);
    expect(Object.getOwnPropertyDescriptor(out, '__proto__')?.value).toBe('p');

    const blocked = renderDecision(block(403, { headers: { __proto__: 'x', constructor: 'y' } }));
    expect(blocked?.headers.constructor).toEqual(['y']);
    // a challenge type that is also an Object.prototype member is not an auth scheme
    expect(renderChallenge({ challenge_type: 'constructor', params: {} }).status).toBe(403);
  });

  it('strips hop-by-hop headers and those named by Connection', () => {
    expect(
      stripHopByHop({
        connection: ['keep-alive, x-private'],
        'keep-alive': ['timeout=5'],
        'transfer-encoding': ['chunked'],
        'x-private': ['1'],
        upgrade: ['h2c'],
        'x-kept': ['1'],
      }),
    ).toEqual({ 'x-kept': ['1'] });
  });

  it('traceparent: valid kept (lower-cased), invalid rejected, fresh ones valid', () => {
    const tp = '00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01';
    expect(parseTraceparent(tp)).toBe(tp.toLowerCase());
    expect(
      parseTraceparent('00-00000000000000000000000000000000-00f067aa0ba902b7-01'),
    ).toBeUndefined();
    expect(
      parseTraceparent('ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
    ).toBeUndefined();
    expect(parseTraceparent('garbage')).toBeUndefined();
    expect(parseTraceparent(newTraceparent())).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('client address and timestamp formats', () => {
    expect(firstForwardedAddress('203.0.113.7, 10.0.0.1')).toBe('203.0.113.7');
    expect(firstForwardedAddress(['::ffff:198.51.100.1'])).toBe('198.51.100.1');
    expect(firstForwardedAddress(undefined)).toBeUndefined();
    expect(rfc3339(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)))).toBe(
      '2026-01-02T03:04:05.006+00:00',
    );
  });
});
