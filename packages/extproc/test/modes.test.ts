/**
 * The message order of each processing mode, as Envoy sends it, and the picket events and
 * answers each message turns into: headers only, BUFFERED bodies (one chunk), STREAMED
 * bodies (chunks sent without waiting), the response phase, trailers passed through,
 * FULL_DUPLEX_STREAMED and observability mode.
 */
import type { RequestBodyChunkEvent, RequestHeadersEvent } from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import {
  headerMap,
  requestBody,
  requestHeaders,
  responseBody,
  responseHeaders,
  sets,
  start,
  TestAgent,
} from './helpers.js';

describe('headers only (the default processing mode)', () => {
  it('turns request headers into a RequestHeadersEvent and answers CONTINUE with its mutations', async () => {
    const agent = new TestAgent();
    const { stream } = await start(agent);
    const s = stream();
    const r = await s.exchange(
      requestHeaders('/search?q=1', {
        method: 'POST',
        extra: [
          ['content-type', 'text/plain'],
          ['accept', 'a'],
          ['Accept', 'b'],
          ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
        ],
        attributes: {
          'envoy.filters.http.ext_proc': {
            fields: {
              'source.address': { stringValue: '203.0.113.7:50123' },
              'source.port': { stringValue: '50124' },
              'request.protocol': { stringValue: 'HTTP/2' },
            },
          },
        },
      }),
    );
    expect(r.response).toBe('request_headers');
    const cr = r.request_headers?.response;
    expect(cr?.status ?? 0).toBe(0); // CONTINUE
    const e = agent.seen[0]?.event as RequestHeadersEvent;
    expect(sets(cr?.header_mutation)).toEqual([['x-cid', e.metadata.correlation_id, 'overwrite']]);
    expect(e.method).toBe('POST');
    expect(e.uri).toBe('/search?q=1');
    expect(e.headers.host).toEqual(['app.example:8080']);
    expect(e.headers.accept).toEqual(['a', 'b']);
    expect(e.headers[':path']).toBeUndefined();
    expect(e.metadata.client_ip).toBe('203.0.113.7');
    expect(e.metadata.client_port).toBe(50124);
    expect(e.metadata.protocol).toBe('HTTP/2');
    expect(e.metadata.server_name).toBe('app.example');
    expect(e.metadata.request_id).toBe('req-1');
    expect(e.metadata.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(e.metadata.correlation_id).not.toBe('req-1');
    expect(agent.seen[0]?.ctx.transport).toBe('extproc');

    const rh = await s.exchange(responseHeaders('204'));
    expect(rh.response).toBe('response_headers');
    expect(sets(rh.response_headers?.response?.header_mutation)).toEqual([
      ['x-status-seen', '204', 'overwrite'],
    ]);
    expect(await s.finish()).toBeUndefined();
    expect(agent.seen.map((x) => x.type)).toEqual(['request_headers', 'response_headers']);
    expect(agent.seen[1]?.event).toMatchObject({
      status: 204,
      correlation_id: e.metadata.correlation_id,
    });
  });

  it('reads the client address from IPv6 attributes and source.port, and leaves it empty without them', async () => {
    const agent = new TestAgent();
    const { stream } = await start(agent);
    const s = stream();
    await s.exchange(
      requestHeaders('/', {
        attributes: {
          f: {
            fields: {
              'source.address': { stringValue: '[2001:db8::1]:443' },
              'source.port': { numberValue: 443 },
            },
          },
        },
      }),
    );
    await s.finish();
    const s2 = stream();
    await s2.exchange(requestHeaders('/', { extra: [['x-forwarded-for', '198.51.100.1']] }));
    await s2.finish();
    const [a, b] = agent.seen.map((x) => (x.event as RequestHeadersEvent).metadata);
    expect(a).toMatchObject({ client_ip: '2001:db8::1', client_port: 443 });
    // never guessed from a header the client controls
    expect(b).toMatchObject({ client_ip: '', client_port: 0 });
  });

  it('still answers what was sent when the peer half-closes right after sending', async () => {
    const { stream } = await start();
    const s = stream();
    s.send(requestHeaders('/', { endOfStream: false }));
    s.send(requestBody('secret', true));
    s.call.end();
    expect((await s.next()).response).toBe('request_headers');
    expect((await s.next()).request_body?.response?.body_mutation?.body).toBeDefined();
    expect(await s.done).toBeUndefined();
  });

  it('gives every stream its own correlation id', async () => {
    const agent = new TestAgent();
    const { stream } = await start(agent);
    const streams = [stream(), stream(), stream()];
    await Promise.all(streams.map((s) => s.exchange(requestHeaders('/'))));
    await Promise.all(streams.map((s) => s.finish()));
    const ids = agent.seen.map((x) => (x.event as RequestHeadersEvent).metadata.correlation_id);
    expect(new Set(ids).size).toBe(3);
  });
});

describe('BUFFERED bodies', () => {
  it('sends each whole body as one chunk, is_last, and applies body mutations', async () => {
    const agent = new TestAgent();
    const { stream } = await start(agent);
    const s = stream();
    await s.exchange(
      requestHeaders('/upload', {
        method: 'POST',
        endOfStream: false,
        extra: [['content-length', '22']],
      }),
    );
    const rb = await s.exchange(requestBody('user=a&password=secret', true));
    expect(rb.response).toBe('request_body');
    expect(Buffer.from(rb.request_body?.response?.body_mutation?.body ?? []).toString()).toBe(
      'user=a&password=******',
    );
    const chunk = agent.seen[1]?.event as RequestBodyChunkEvent;
    expect(chunk).toMatchObject({
      chunk_index: 0,
      is_last: true,
      total_size: 22,
      bytes_received: 22,
    });
    expect(Buffer.from(chunk.data).toString()).toBe('user=a&password=secret');

    await s.exchange(responseHeaders('200', [['content-type', 'text/plain']], false));
    const resp = await s.exchange(responseBody('hello', true));
    expect(resp.response).toBe('response_body');
    expect(Buffer.from(resp.response_body?.response?.body_mutation?.body ?? []).toString()).toBe(
      'HELLO',
    );
    expect(agent.seen[3]?.event).toMatchObject({ chunk_index: 0, is_last: true, bytes_sent: 5 });
    expect(await s.finish()).toBeUndefined();
  });

  it('clears a body with "" and leaves it alone without a mutation', async () => {
    const { stream } = await start();
    const s = stream();
    await s.exchange(requestHeaders('/', { method: 'POST', endOfStream: false }));
    const cleared = await s.exchange(requestBody('please drop this', true));
    expect(cleared.request_body?.response?.body_mutation).toEqual({
      clear_body: true,
      mutation: 'clear_body',
    });
    await s.finish();
    const s2 = stream();
    await s2.exchange(requestHeaders('/', { method: 'POST', endOfStream: false }));
    const kept = await s2.exchange(requestBody('plain', true));
    expect(kept.request_body?.response?.body_mutation).toBeUndefined();
    expect(sets(kept.request_body?.response?.header_mutation)).toEqual([
      ['x-body-seen', '0', 'overwrite'],
    ]);
    await s2.finish();
  });
});

describe('STREAMED bodies', () => {
  it('answers chunks Envoy sends without waiting, one answer each, in order', async () => {
    const agent = new TestAgent();
    const { stream } = await start(agent);
    const s = stream();
    await s.exchange(requestHeaders('/stream', { method: 'PUT', endOfStream: false }));
    const chunks = ['aaa', 'the secret', 'ccc', 'drop me', 'eee'];
    for (const [i, c] of chunks.entries()) s.send(requestBody(c, i === chunks.length - 1));
    const answers = [];
    for (const _ of chunks) answers.push(await s.next());
    expect(answers.map((a) => a.response)).toEqual(chunks.map(() => 'request_body'));
    const muts = answers.map((a) => a.request_body?.response?.body_mutation);
    expect(muts[0]).toBeUndefined();
    expect(Buffer.from(muts[1]?.body ?? []).toString()).toBe('the ******');
    expect(muts[3]).toMatchObject({ clear_body: true });
    const events = agent.seen.slice(1).map((x) => x.event as RequestBodyChunkEvent);
    expect(events.map((e) => [e.chunk_index, e.is_last, e.bytes_received])).toEqual([
      [0, false, 3],
      [1, false, 13],
      [2, false, 16],
      [3, false, 23],
      [4, true, 26],
    ]);
    expect(await s.finish()).toBeUndefined();
  });

  it('blocks in the middle of a streamed body and ignores the chunks already on their way', async () => {
    const agent = new TestAgent();
    const { stream } = await start(agent);
    const s = stream();
    await s.exchange(requestHeaders('/stream', { method: 'PUT', endOfStream: false }));
    s.send(requestBody('fine', false));
    s.send(requestBody('evil', false));
    s.send(requestBody('late 1', false));
    s.send(requestBody('late 2', true));
    expect((await s.next()).response).toBe('request_body');
    const blocked = await s.next();
    expect(blocked.response).toBe('immediate_response');
    expect(blocked.immediate_response?.status?.code).toBe(400);
    expect(await s.finish()).toBeUndefined();
    // the late chunks reached no handler and got no answer
    expect(agent.seen.length).toBe(3);
  });
});

describe('response phase and trailers', () => {
  it('applies response-header ops answered in the request phase to the response headers', async () => {
    const { stream } = await start();
    const s = stream();
    const r = await s.exchange(requestHeaders('/ops'));
    expect(r.response).toBe('request_headers');
    const rh = await s.exchange(responseHeaders('200'));
    expect(sets(rh.response_headers?.response?.header_mutation)).toEqual([
      ['x-from-request-phase', 'yes', 'overwrite'],
      ['x-status-seen', '200', 'overwrite'],
    ]);
    await s.finish();
  });

  it('replaces an upstream response with an ImmediateResponse', async () => {
    const { stream } = await start();
    const s = stream();
    await s.exchange(requestHeaders('/'));
    const r = await s.exchange(responseHeaders('500'));
    expect(r.immediate_response?.status?.code).toBe(502);
    expect(Buffer.from(r.immediate_response?.body ?? []).toString()).toBe('upstream failed');
    await s.finish();
  });

  it('passes trailers through unchanged, without the handler', async () => {
    const agent = new TestAgent();
    const { stream } = await start(agent);
    const s = stream();
    await s.exchange(requestHeaders('/', { method: 'POST', endOfStream: false }));
    await s.exchange(requestBody('x', false));
    const rt = await s.exchange({ request_trailers: { trailers: headerMap([['x-t', '1']]) } });
    expect(rt).toEqual({ request_trailers: {}, response: 'request_trailers' });
    await s.exchange(responseHeaders('200', [], false));
    await s.exchange(responseBody('y', false));
    const rs = await s.exchange({
      response_trailers: { trailers: headerMap([['grpc-status', '0']]) },
    });
    expect(rs).toEqual({ response_trailers: {}, response: 'response_trailers' });
    expect(await s.finish()).toBeUndefined();
    expect(agent.seen.map((x) => x.type)).toEqual([
      'request_headers',
      'request_body_chunk',
      'response_headers',
      'response_body_chunk',
    ]);
  });
});

describe('FULL_DUPLEX_STREAMED and observability mode', () => {
  it('answers full-duplex chunks with the streamed body, changed or not', async () => {
    const { stream } = await start();
    const s = stream();
    await s.exchange({
      ...requestHeaders('/', { method: 'POST', endOfStream: false }),
      protocol_config: { request_body_mode: 4, response_body_mode: 4 },
    });
    s.send(requestBody('keep', false));
    s.send(requestBody('a secret', true));
    const [a, b] = [await s.next(), await s.next()];
    expect(a.request_body?.response?.body_mutation?.streamed_response).toMatchObject({
      end_of_stream: false,
    });
    expect(
      Buffer.from(
        a.request_body?.response?.body_mutation?.streamed_response?.body ?? [],
      ).toString(),
    ).toBe('keep');
    expect(b.request_body?.response?.body_mutation?.streamed_response?.end_of_stream).toBe(true);
    expect(
      Buffer.from(
        b.request_body?.response?.body_mutation?.streamed_response?.body ?? [],
      ).toString(),
    ).toBe('a ******');
    await s.finish();
  });

  it('runs the handler but answers nothing in observability mode', async () => {
    const agent = new TestAgent();
    const { stream } = await start(agent);
    const s = stream();
    s.send({ ...requestHeaders('/block', { endOfStream: false }), observability_mode: true });
    s.send({ ...requestBody('evil', true), observability_mode: true });
    s.send({ ...responseHeaders('200'), observability_mode: true });
    expect(await s.finish()).toBeUndefined();
    expect(agent.seen.map((x) => x.type)).toEqual([
      'request_headers',
      'request_body_chunk',
      'response_headers',
    ]);
    await expect(s.next()).rejects.toThrow();
  });
});
