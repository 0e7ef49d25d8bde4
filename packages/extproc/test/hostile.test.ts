/**
 * A peer that does not behave like Envoy: messages out of order, messages missing what they
 * must carry, bytes that are no ProcessingRequest, messages over the size limit. Each ends
 * its own stream with a clear gRPC error, the stream is cleaned up, and other streams on the
 * same connection carry on.
 */
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { ProcessingRequest } from '../src/proto.js';
import {
  headerMap,
  requestBody,
  requestHeaders,
  responseBody,
  responseHeaders,
  start,
  TestAgent,
} from './helpers.js';

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
}

const ORDER_VIOLATIONS: [string, ProcessingRequest[], RegExp][] = [
  [
    'request headers twice',
    [requestHeaders('/', { endOfStream: false }), requestHeaders('/')],
    /request_headers after the request's headers or body/,
  ],
  [
    'a request body after end_of_stream headers',
    [requestHeaders('/'), requestBody('x', true)],
    /request_body after the end of the request/,
  ],
  [
    'a request body after its last chunk',
    [requestHeaders('/', { endOfStream: false }), requestBody('x', true), requestBody('y', true)],
    /request_body after the end of the request/,
  ],
  [
    'request headers after the body',
    [requestBody('x', false), requestHeaders('/')],
    /request_headers after the request's headers or body/,
  ],
  [
    'trailers twice',
    [
      requestHeaders('/', { endOfStream: false }),
      { request_trailers: { trailers: headerMap([]) } },
      { request_trailers: { trailers: headerMap([]) } },
    ],
    /a second set of trailers/,
  ],
  [
    'a response body after the response trailers',
    [
      requestHeaders('/'),
      responseHeaders('200', [], false),
      { response_trailers: {} },
      responseBody('x', true),
    ],
    /response_body after the end of the response/,
  ],
];

const MISSING: [string, ProcessingRequest, RegExp][] = [
  ['no request part at all', {}, /carries none of request_headers/],
  [
    'request headers without :method',
    { request_headers: { headers: headerMap([[':path', '/']]), end_of_stream: true } },
    /the :method pseudo-header is missing/,
  ],
  [
    'request headers without any header map',
    { request_headers: { end_of_stream: true } },
    /the :method pseudo-header is missing/,
  ],
  [
    'response headers without :status',
    { response_headers: { headers: headerMap([['content-type', 'x']]) } },
    /the :status pseudo-header is missing/,
  ],
  [
    'response headers with a :status that is not one',
    { response_headers: { headers: headerMap([[':status', '2000']]) } },
    /:status "2000" is not an HTTP status/,
  ],
];

describe('messages Envoy would not send end the stream with INVALID_ARGUMENT', () => {
  for (const [name, messages, why] of [
    ...ORDER_VIOLATIONS,
    ...MISSING.map(([n, m, w]) => [n, [m], w] as const),
  ]) {
    it(name, async () => {
      const { server, stream } = await start();
      const s = stream();
      for (const m of messages) s.send(m);
      const err = await s.done;
      expect(err?.code).toBe(status.INVALID_ARGUMENT);
      expect(err?.details).toMatch(why);
      await until(() => server.streams === 0);
      expect(server.streams).toBe(0);
    });
  }

  it('peer text in an error is quoted and escaped, never a raw line break', async () => {
    const { stream } = await start();
    const s = stream();
    s.send(requestHeaders('/'));
    s.send({ response_headers: { headers: headerMap([[':status', '20\n[FAKE] ok\u001b[31m']]) } });
    const err = await s.done;
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.details).toContain('"20\\n[FAKE] ok\\u001b[31m"');
    expect(err?.details).not.toContain('\n');
    expect(err?.details).not.toContain('\u001b');
  });

  it('bytes that are no ProcessingRequest', async () => {
    const { server, stream } = await start();
    const s = stream();
    s.send(Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    const err = await s.done;
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/ProcessingRequest could not be decoded/);
    await until(() => server.streams === 0);
    expect(server.streams).toBe(0);
  });

  it('ignores attributes and metadata it does not use, however odd', async () => {
    const agent = new TestAgent();
    const { stream } = await start(agent);
    const s = stream();
    const r = await s.exchange({
      ...requestHeaders('/'),
      // an own "__proto__" key, as a hostile peer can put on the wire
      attributes: JSON.parse(
        '{"__proto__": {"fields": {"source.address": {"numberValue": 7}}},' +
          ' "other": {"fields": {"source.address": {"boolValue": true}, "source.port": {"numberValue": -1}}}}',
      ),
      metadata_context: { filter_metadata: { x: { fields: {} } } },
    });
    expect(r.response).toBe('request_headers');
    expect(agent.seen[0]?.event).toMatchObject({ metadata: { client_ip: '', client_port: 0 } });
    await s.finish();
  });
});

describe('size limits', () => {
  it('a body over maxMessageSize ends that stream with RESOURCE_EXHAUSTED; other streams carry on', async () => {
    const agent = new TestAgent();
    const { server, stream } = await start(agent, { maxMessageSize: 64 * 1024 });
    const good = stream();
    await good.exchange(requestHeaders('/', { method: 'POST', endOfStream: false }));

    const bad = stream();
    await bad.exchange(requestHeaders('/', { method: 'POST', endOfStream: false }));
    bad.send(requestBody('z'.repeat(100 * 1024), true));
    const err = await bad.done;
    expect(err?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err?.details).toMatch(/larger than max/i);
    await until(() => server.streams === 1);
    expect(server.streams).toBe(1);
    // the handler never saw the oversized chunk
    expect(agent.seen.filter((x) => x.type === 'request_body_chunk')).toHaveLength(0);

    const r = await good.exchange(requestBody('small', true));
    expect(r.response).toBe('request_body');
    expect(await good.finish()).toBeUndefined();
    const after = stream();
    expect((await after.exchange(requestHeaders('/'))).response).toBe('request_headers');
    await after.finish();
  });

  it('a stream beyond maxStreams is refused with RESOURCE_EXHAUSTED', async () => {
    const { server, stream } = await start(new TestAgent(), { maxStreams: 2 });
    const a = stream();
    const b = stream();
    await a.exchange(requestHeaders('/', { endOfStream: false }));
    await b.exchange(requestHeaders('/', { endOfStream: false }));
    const c = stream();
    c.send(requestHeaders('/'));
    const err = await c.done;
    expect(err?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err?.details).toMatch(/stream limit reached: 2 open/);
    await a.finish();
    await until(() => server.streams === 1);
    const d = stream();
    expect((await d.exchange(requestHeaders('/'))).response).toBe('request_headers');
    await Promise.all([b.finish(), d.finish()]);
  });
});

describe('Envoy going away', () => {
  it('a reset stream aborts the handler signal and tells onCancel', async () => {
    const agent = new TestAgent();
    const { server, stream } = await start(agent);
    const s = stream();
    s.send(requestHeaders('/hang'));
    await until(() => agent.seen.length === 1);
    s.call.cancel();
    await until(() => agent.cancelled.length === 1);
    const ctx = agent.seen[0]?.ctx;
    expect(ctx?.signal.aborted).toBe(true);
    expect(agent.cancelled).toEqual([ctx?.correlationId]);
    await until(() => server.streams === 0);
    expect(server.streams).toBe(0);
  });
});
