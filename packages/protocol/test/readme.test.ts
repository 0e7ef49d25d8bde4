/** The README's examples are the files in examples/ (compiled by typecheck), and do what it says. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { shopGuard } from '../examples/hooks.js';
import type { RequestContext, RequestHeadersEvent } from '../src/index.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README examples', () => {
  it('each <!-- file: … --> block is that file, byte for byte', () => {
    const blocks = [...readme.matchAll(/<!-- file: (\S+) -->\n```ts\n([\s\S]*?)```\n/g)];
    expect(blocks.map((m) => m[1])).toEqual(['examples/readme.ts', 'examples/hooks.ts']);
    for (const [, path, text] of blocks) {
      expect(text, `${path} differs from its copy in README.md`).toBe(
        readFileSync(new URL(`../${path}`, import.meta.url), 'utf8'),
      );
    }
  });

  it('the hooks example answers as the README describes', async () => {
    const ctx = {
      correlationId: 'c1',
      signal: new AbortController().signal,
      transport: 'uds',
      connectionId: 't',
    } satisfies RequestContext;
    const event = (method: string, uri: string, headers: Record<string, string[]>) =>
      ({
        metadata: {
          correlation_id: 'c1',
          request_id: 'c1',
          client_ip: '192.0.2.1',
          client_port: 1,
          protocol: 'HTTP/1.1',
          timestamp: '2026-01-01T00:00:00Z',
        },
        method,
        uri,
        headers,
      }) satisfies RequestHeadersEvent;
    const hook = shopGuard.onRequestHeaders;
    if (!hook) throw new Error('no onRequestHeaders');
    const del = await hook(event('DELETE', '/cart/1', { cookie: ['a=1'] }), ctx);
    expect(del.decision).toEqual({
      block: { status: 405, body: 'deleting is not allowed', headers: { allow: 'GET, POST' } },
    });
    expect(del.audit.rule_ids).toEqual(['shop-7']);
    const login = await hook(event('GET', '/account', {}), ctx);
    expect(login.decision).toEqual({ redirect: { url: '/login?next=%2Faccount', status: 303 } });
    const ok = await hook(event('GET', '/', { cookie: ['a=1', 'b=2'] }), ctx);
    expect(ok.decision).toBe('allow');
    expect(ok.request_headers).toEqual([
      { set: { name: 'x-request-id', value: 'c1' } },
      { remove: { name: 'x-debug' } },
    ]);
    expect(ok.audit.custom).toEqual({ cookies: 2 });
    const body = shopGuard.onRequestBodyChunk;
    if (!body) throw new Error('no onRequestBodyChunk');
    const chunk = (text: string, last: boolean) => ({
      correlation_id: 'c1',
      data: new TextEncoder().encode(text),
      is_last: last,
      chunk_index: 0,
      bytes_received: text.length,
    });
    expect((await body(chunk('card=4', false), ctx)).needs_more).toBe(true);
    expect((await body(chunk('x=1&card=4111', true), ctx)).request_body_mutation).toEqual({
      data: 'x=1&card=[redacted]',
      chunk_index: 0,
    });
  });
});
