/**
 * picket decisions as Envoy answers: allow ⇒ CommonResponse CONTINUE with header mutations,
 * block / redirect / challenge ⇒ ImmediateResponse, and every failure of the handler ⇒ an
 * ImmediateResponse 500 (or, with errorPolicy 'close', a failed stream): never a CONTINUE.
 */

import { DenylistAgent } from '@picket/agents';
import { allow, setHeader } from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import type { ProcessingResponse } from '../src/proto.js';
import { requestHeaders, sets, start, TestAgent } from './helpers.js';

const body = (r: ProcessingResponse) => Buffer.from(r.immediate_response?.body ?? []).toString();

describe('allow', () => {
  it('folds header ops so Envoy (removals first, then sets) ends where picket order does', async () => {
    const { stream } = await start();
    const s = stream();
    const r = await s.exchange(requestHeaders('/ops'));
    const m = r.request_headers?.response?.header_mutation;
    expect(m?.remove_headers).toEqual(['cookie', 'x-gone']);
    // x-gone was added then removed: no set for it survives
    expect(sets(m)).toEqual([
      ['x-set', 'one', 'overwrite'],
      ['x-add', 'a', 'append'],
      ['x-add', 'b', 'append'],
    ]);
    await s.finish();
  });

  it("writes values in `value` when headerValueField is 'value' (Envoy before raw_value)", async () => {
    const { stream } = await start(new TestAgent(), { headerValueField: 'value' });
    const s = stream();
    const r = await s.exchange(requestHeaders('/ops'));
    const first = r.request_headers?.response?.header_mutation?.set_headers?.[0]?.header;
    expect(first).toEqual({ key: 'x-set', value: 'one' });
    await s.finish();
  });

  it('reads header values Envoy sends in the legacy `value` field', async () => {
    const agent = new TestAgent();
    const { stream } = await start(agent);
    const s = stream();
    await s.exchange({
      request_headers: {
        headers: {
          headers: [
            { key: ':method', value: 'DELETE' },
            { key: ':path', value: '/legacy' },
          ],
        },
        end_of_stream: true,
      },
    });
    await s.finish();
    expect(agent.seen[0]?.event).toMatchObject({ method: 'DELETE', uri: '/legacy' });
  });

  it('drops a header op Envoy would refuse (CR/LF in the value) and sends the rest', async () => {
    const handler = {
      capabilities: () => new TestAgent().capabilities(),
      onRequestHeaders: () =>
        allow({ requestHeaders: [setHeader('x-bad', 'a\r\nb'), setHeader('x-good', 'ok')] }),
    };
    const { stream } = await start(handler);
    const s = stream();
    const r = await s.exchange(requestHeaders('/'));
    expect(sets(r.request_headers?.response?.header_mutation)).toEqual([
      ['x-good', 'ok', 'overwrite'],
    ]);
    await s.finish();
  });
});

describe('block, redirect, challenge', () => {
  it('block ⇒ ImmediateResponse with its status, body and headers', async () => {
    const { stream } = await start();
    const s = stream();
    const r = await s.exchange(requestHeaders('/block'));
    expect(r.response).toBe('immediate_response');
    expect(r.immediate_response?.status?.code).toBe(403);
    expect(body(r)).toBe('Forbidden by picket');
    expect(sets(r.immediate_response?.headers)).toEqual([['x-why', 'denied', 'overwrite']]);
    expect(r.immediate_response?.details).toBe('picket_block');
    expect(await s.finish()).toBeUndefined();
  });

  it('redirect ⇒ ImmediateResponse 3xx with location', async () => {
    const { stream } = await start();
    const s = stream();
    const r = await s.exchange(requestHeaders('/redirect'));
    expect(r.immediate_response?.status?.code).toBe(301);
    expect(sets(r.immediate_response?.headers)).toEqual([
      ['location', 'https://login.example/?next=%2F', 'overwrite'],
    ]);
    await s.finish();
  });

  it('challenge ⇒ ImmediateResponse 403 with the challenge as JSON', async () => {
    const { stream } = await start();
    const s = stream();
    const r = await s.exchange(requestHeaders('/challenge'));
    expect(r.immediate_response?.status?.code).toBe(403);
    expect(JSON.parse(body(r))).toEqual({ challenge_type: 'captcha', params: { site: 'k1' } });
    await s.finish();
  });

  it('serves the reference DenylistAgent: blocked path, blocked client address, allowed', async () => {
    const agent = new DenylistAgent({ blockedPaths: ['/admin'], blockedIps: ['10.0.0.0/8'] });
    const { stream } = await start(agent);
    const attrs = (ip: string) => ({
      'envoy.filters.http.ext_proc': {
        fields: { 'source.address': { stringValue: `${ip}:1234` } },
      },
    });
    const ask = async (path: string, ip: string) => {
      const s = stream();
      const r = await s.exchange(requestHeaders(path, { attributes: attrs(ip) }));
      await s.finish();
      return r;
    };
    const path = await ask('/admin/users', '192.0.2.1');
    expect(path.immediate_response?.status?.code).toBe(403);
    const ip = await ask('/', '10.1.2.3');
    expect(ip.immediate_response?.status?.code).toBe(403);
    const ok = await ask('/', '192.0.2.1');
    expect(ok.response).toBe('request_headers');
  });
});

describe('handler failures never continue', () => {
  for (const path of ['/throw', '/garbage', '/bad-redirect']) {
    it(`${path} ⇒ ImmediateResponse 500`, async () => {
      const { stream } = await start();
      const s = stream();
      const r = await s.exchange(requestHeaders(path));
      expect(r.response).toBe('immediate_response');
      expect(r.immediate_response?.status?.code).toBe(500);
      expect(body(r)).toBe('Agent handler error');
      expect(await s.finish()).toBeUndefined();
    });
  }

  it('an answer over the message limit ⇒ ImmediateResponse 500', async () => {
    const { stream } = await start(new TestAgent(), { maxMessageSize: 200_000 });
    const s = stream();
    const r = await s.exchange(requestHeaders('/huge'));
    expect(r.immediate_response?.status?.code).toBe(500);
    await s.finish();
  });

  it("errorPolicy 'close' ends the stream with INTERNAL instead", async () => {
    const { stream } = await start(new TestAgent(), { errorPolicy: 'close' });
    const s = stream();
    s.send(requestHeaders('/throw'));
    const err = await s.done;
    expect(err?.code).toBe(13);
    expect(err?.details).toMatch(/agent failed: .*handler exploded/);
  });

  it('an errorPolicy function that allows is replaced by the 500 block', async () => {
    const { stream } = await start(new TestAgent(), { errorPolicy: () => allow() });
    const s = stream();
    const r = await s.exchange(requestHeaders('/throw'));
    expect(r.immediate_response?.status?.code).toBe(500);
    await s.finish();
  });

  it('a failing body handler ⇒ ImmediateResponse 500 for the body', async () => {
    const handler = {
      capabilities: () => new TestAgent().capabilities(),
      onRequestBodyChunk: () => {
        throw new Error('body hook exploded');
      },
    };
    const { stream } = await start(handler);
    const s = stream();
    await s.exchange(requestHeaders('/', { method: 'POST', endOfStream: false }));
    const r = await s.exchange({ request_body: { body: Buffer.from('x'), end_of_stream: true } });
    expect(r.immediate_response?.status?.code).toBe(500);
    await s.finish();
  });
});
