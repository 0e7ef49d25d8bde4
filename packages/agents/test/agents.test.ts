/**
 * The reference agents driven through @picket/testing: every event goes through the
 * same dispatch and codec as on a real connection, so these answers are what a proxy gets.
 */
import { createHarness, expectAllow, expectBlock, type RequestHeadersInit } from '@picket/testing';
import { describe, expect, it } from 'vitest';
import { DenylistAgent, EchoAgent } from '../src/index.js';

function headers(uri: string, clientIp = '127.0.0.1'): RequestHeadersInit {
  return {
    method: 'GET',
    uri,
    headers: { host: 'example.com', 'user-agent': 'curl/8' },
    metadata: { client_ip: clientIp, client_port: 54321 },
  };
}

describe('EchoAgent', () => {
  it('v1 mode adds exactly one request header, X-Echo-Agent = correlation id', async () => {
    const r = await createHarness(new EchoAgent({ mode: 'v1' })).requestHeaders(headers('/'));
    expect(r.decision).toBe('allow');
    expect(r.request_headers).toEqual([{ set: { name: 'X-Echo-Agent', value: 'req-1' } }]);
    expect(r.audit.tags).toEqual(['echo']);
  });

  it('v2 mode echoes agent, correlation id, request number, method and path', async () => {
    const h = createHarness(new EchoAgent());
    await h.request('req-0').requestHeaders(headers('/a'));
    const r = await h.request('req-1').requestHeaders(headers('/b?q=1'));
    expect(r.request_headers).toEqual([
      { set: { name: 'X-Echo-Agent', value: 'echo-agent/1.0' } },
      { set: { name: 'X-Echo-Correlation-Id', value: 'req-1' } },
      { set: { name: 'X-Echo-Request-Num', value: '2' } },
      { set: { name: 'X-Echo-Method', value: 'GET' } },
      { set: { name: 'X-Echo-Path', value: '/b?q=1' } },
    ]);
    expect(r.audit.tags).toEqual(['echo', 'request_headers']);
    expect(r.audit.custom).toEqual({ request_num: 2, method: 'GET', uri: '/b?q=1' });
  });

  it('verbose mode adds client ip, timestamp, user agent and header count', async () => {
    const h = createHarness(new EchoAgent({ verbose: true, prefix: 'X-E-' }));
    const r = await h.requestHeaders(headers('/'));
    const names = r.request_headers.map((op) => ('set' in op ? op.set.name : ''));
    expect(names).toContain('X-E-Client-Ip');
    expect(names).toContain('X-E-User-Agent');
    expect(names).toContain('X-E-Header-Count');
  });

  it('echoes body chunks and response events', async () => {
    const h = createHarness(new EchoAgent());
    const req = h.request('req-1');
    const chunk = await req.requestBodyChunk(new Uint8Array(5), { last: true, totalSize: 5 });
    expect(chunk.request_headers).toContainEqual({
      set: { name: 'X-Echo-Body-Total-Size', value: '5' },
    });
    const resp = await req.responseHeaders({ status: 201 });
    expect(resp.response_headers[0]).toEqual({
      set: { name: 'X-Echo-Response-Status', value: '201' },
    });
    const ws = await req.webSocketFrame({ opcode: 'text', data: new Uint8Array(2) });
    expect(ws.websocket_decision).toBe('allow');
    expect((await h.handshake()).agent_id).toBe('echo-agent');
  });

  it('answers every event of a whole request with allow', async () => {
    const f = await createHarness(new EchoAgent()).flow({
      ...headers('/'),
      requestBody: ['ab', 'c'],
      response: { status: 204 },
      responseBody: 'x',
    });
    expect(f.decision).toBe('allow');
    expect(f.answers).toHaveLength(6);
    for (const { response } of f.answers) expectAllow(response);
  });
});

describe('DenylistAgent', () => {
  const h = createHarness(
    new DenylistAgent({
      blockedPaths: ['/admin'],
      blockedIps: ['10.0.0.5', '192.168.0.0/16', '2001:db8::/32'],
    }),
  );

  it('blocks /admin/secret with 403 "Forbidden path" (spec 1.5)', async () => {
    const r = await h.requestHeaders(headers('/admin/secret'));
    expect(r.decision).toEqual({ block: { status: 403, body: 'Forbidden path', headers: null } });
    expect(r.audit.tags).toEqual(['denylist', 'blocked_path']);
    expect(r.audit.reason_codes).toEqual(['PATH_BLOCKED']);
  });

  it('checks the path before the client IP', async () => {
    const r = await h.requestHeaders(headers('/admin', '10.0.0.5'));
    expect(r.audit.reason_codes).toEqual(['PATH_BLOCKED']);
  });

  it('blocks exact IPs and CIDR ranges (v4, v6, v4-mapped v6)', async () => {
    for (const ip of ['10.0.0.5', '192.168.3.4', '2001:db8::1', '::ffff:192.168.9.9']) {
      const r = await h.requestHeaders(headers('/', ip));
      expect(expectBlock(r, 403), ip).toEqual({ status: 403, body: 'Forbidden IP', headers: null });
      expect(r.audit.tags).toEqual(['denylist', 'blocked_ip']);
      expect(r.audit.reason_codes).toEqual(['IP_BLOCKED']);
    }
  });

  it('allows everything else', async () => {
    for (const ip of ['10.0.0.6', '192.169.0.1', '2001:db9::1', 'not-an-ip']) {
      expect((await h.requestHeaders(headers('/public', ip))).decision).toBe('allow');
    }
  });

  it('a blocked request never reaches the upstream, and completes with 403', async () => {
    const f = await h.flow({ ...headers('/admin'), requestBody: 'x', responseBody: 'y' });
    expect(f.decidedAt).toBe('request_headers');
    expect(f.answers.map((a) => a.type)).toEqual(['request_headers', 'request_complete']);
  });

  it('rejects malformed list entries clearly', () => {
    expect(() => new DenylistAgent({ blockedIps: ['10.0.0.0/33'] })).toThrow(/invalid prefix/);
    expect(() => new DenylistAgent({ blockedIps: ['nope'] })).toThrow(/not an IP/);
  });
});
