import type { RequestHeadersEvent } from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import { DenylistAgent, EchoAgent } from '../src/index.js';

function headers(uri: string, clientIp = '127.0.0.1'): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: 'req-1',
      request_id: 'req-1',
      client_ip: clientIp,
      client_port: 54321,
      protocol: 'HTTP/1.1',
      timestamp: '2026-01-01T00:00:00Z',
    },
    method: 'GET',
    uri,
    headers: { host: ['example.com'], 'user-agent': ['curl/8'] },
  };
}

describe('EchoAgent', () => {
  it('v1 mode adds exactly one request header, X-Echo-Agent = correlation id', () => {
    const r = new EchoAgent({ mode: 'v1' }).onRequestHeaders(headers('/'));
    expect(r.decision).toBe('allow');
    expect(r.request_headers).toEqual([{ set: { name: 'X-Echo-Agent', value: 'req-1' } }]);
    expect(r.audit.tags).toEqual(['echo']);
  });

  it('v2 mode echoes agent, correlation id, request number, method and path', () => {
    const agent = new EchoAgent();
    agent.onRequestHeaders(headers('/a'));
    const r = agent.onRequestHeaders(headers('/b?q=1'));
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

  it('verbose mode adds client ip, timestamp, user agent and header count', () => {
    const r = new EchoAgent({ verbose: true, prefix: 'X-E-' }).onRequestHeaders(headers('/'));
    const names = r.request_headers.map((op) => ('set' in op ? op.set.name : ''));
    expect(names).toContain('X-E-Client-Ip');
    expect(names).toContain('X-E-User-Agent');
    expect(names).toContain('X-E-Header-Count');
  });

  it('echoes body chunks and response events', () => {
    const agent = new EchoAgent();
    const chunk = agent.onRequestBodyChunk({
      correlation_id: 'req-1',
      data: new Uint8Array(5),
      is_last: true,
      total_size: 5,
      chunk_index: 0,
      bytes_received: 5,
    });
    expect(chunk.request_headers).toContainEqual({
      set: { name: 'X-Echo-Body-Total-Size', value: '5' },
    });
    const resp = agent.onResponseHeaders({ correlation_id: 'req-1', status: 201, headers: {} });
    expect(resp.response_headers[0]).toEqual({
      set: { name: 'X-Echo-Response-Status', value: '201' },
    });
    const ws = agent.onWebSocketFrame({
      correlation_id: 'req-1',
      opcode: 'text',
      data: new Uint8Array(2),
      client_to_server: true,
      frame_index: 0,
      fin: true,
      client_ip: '127.0.0.1',
    });
    expect(ws.websocket_decision).toBe('allow');
    expect(agent.capabilities().agent_id).toBe('echo-agent');
  });
});

describe('DenylistAgent', () => {
  const agent = new DenylistAgent({
    blockedPaths: ['/admin'],
    blockedIps: ['10.0.0.5', '192.168.0.0/16', '2001:db8::/32'],
  });

  it('blocks /admin/secret with 403 "Forbidden path" (spec 1.5)', () => {
    const r = agent.onRequestHeaders(headers('/admin/secret'));
    expect(r.decision).toEqual({ block: { status: 403, body: 'Forbidden path', headers: null } });
    expect(r.audit.tags).toEqual(['denylist', 'blocked_path']);
    expect(r.audit.reason_codes).toEqual(['PATH_BLOCKED']);
  });

  it('checks the path before the client IP', () => {
    const r = agent.onRequestHeaders(headers('/admin', '10.0.0.5'));
    expect(r.audit.reason_codes).toEqual(['PATH_BLOCKED']);
  });

  it('blocks exact IPs and CIDR ranges (v4, v6, v4-mapped v6)', () => {
    for (const ip of ['10.0.0.5', '192.168.3.4', '2001:db8::1', '::ffff:192.168.9.9']) {
      const r = agent.onRequestHeaders(headers('/', ip));
      expect(r.decision, ip).toEqual({
        block: { status: 403, body: 'Forbidden IP', headers: null },
      });
      expect(r.audit.tags).toEqual(['denylist', 'blocked_ip']);
      expect(r.audit.reason_codes).toEqual(['IP_BLOCKED']);
    }
  });

  it('allows everything else', () => {
    for (const ip of ['10.0.0.6', '192.169.0.1', '2001:db9::1', 'not-an-ip']) {
      expect(agent.onRequestHeaders(headers('/public', ip)).decision).toBe('allow');
    }
  });

  it('rejects malformed list entries clearly', () => {
    expect(() => new DenylistAgent({ blockedIps: ['10.0.0.0/33'] })).toThrow(/invalid prefix/);
    expect(() => new DenylistAgent({ blockedIps: ['nope'] })).toThrow(/not an IP/);
  });
});
