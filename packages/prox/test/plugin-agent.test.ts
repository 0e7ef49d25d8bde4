/**
 * A picket AgentHandler run as a prox plugin (child process), driven over its hook socket:
 * the mapping table of the README, row by row.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeAuthorizeResult,
  decodeConnResult,
  decodeResponseModResult,
  encodeConfigureLine,
  encodeConnInfo,
  encodeDisconnectInfo,
  encodeEnvelope,
  encodeProxFrame,
  encodeRequestInfo,
  encodeResponsePair,
  HookType,
  type RequestInfoInput,
} from '../src/index.js';
import { HookConn, PluginChild } from './prox-peer.js';

const frame = (hook: number, inner: Uint8Array): Uint8Array =>
  encodeProxFrame(encodeEnvelope(hook, inner));
const request = (info: RequestInfoInput): Uint8Array =>
  frame(
    HookType.Request,
    encodeRequestInfo({ routeId: 'gw:0', remoteAddr: '[2001:db8::1]:4000', ...info }),
  );

describe('an AgentHandler as a prox plugin', () => {
  let p: PluginChild;
  let c: HookConn;

  beforeAll(async () => {
    p = new PluginChild(['agent']);
    const ready = await p.configure(encodeConfigureLine({ routeId: 'gw:0' }));
    expect(ready.hooks).toEqual(['on_request', 'on_response', 'on_connect', 'on_disconnect']);
    c = await HookConn.open(ready.socket);
  });
  afterAll(() => {
    c.close();
    p.kill();
  });

  it('allow + header ops → ok + h (remove becomes an empty value); uri = path?query; client ip:port', async () => {
    const a = decodeAuthorizeResult(
      await c.call(
        request({
          path: '/a',
          query: 'x=1',
          host: 'a.example',
          headers: { Authorization: 'secret' },
        }),
      ),
    );
    expect(a).toMatchObject({
      allow: true,
      headers: {
        'X-Uri': '/a?x=1',
        'X-Client': '2001:db8::1:4000',
        'X-Host': 'a.example',
        Authorization: '',
      },
    });
  });

  it('routing_metadata prox.rewrite_path → rp', async () => {
    expect(decodeAuthorizeResult(await c.call(request({ path: '/rewrite' }))).rewritePath).toBe(
      '/v2',
    );
  });

  it('block → ok:false with its status, body and headers', async () => {
    expect(decodeAuthorizeResult(await c.call(request({ path: '/block' })))).toMatchObject({
      allow: false,
      status: 451,
      body: 'nope',
      headers: { 'X-Why': 'test' },
    });
  });

  it('redirect → ok:false, its status, Location', async () => {
    expect(decodeAuthorizeResult(await c.call(request({ path: '/redirect' })))).toMatchObject({
      allow: false,
      status: 307,
      headers: { Location: 'https://example.com/login' },
    });
  });

  it('challenge (bearer) → 401 with WWW-Authenticate and a JSON body', async () => {
    const a = decodeAuthorizeResult(await c.call(request({ path: '/challenge' })));
    expect(a).toMatchObject({ allow: false, status: 401 });
    expect(a.headers['WWW-Authenticate']).toBe('Bearer realm="api"');
    expect(JSON.parse(a.body)).toEqual({ challenge_type: 'bearer', params: { realm: 'api' } });
  });

  it('a handler that throws → the handler-error answer (deny 500), never allow', async () => {
    expect(decodeAuthorizeResult(await c.call(request({ path: '/throw' })))).toMatchObject({
      allow: false,
      status: 500,
      body: 'Agent handler error',
    });
  });

  it('bd → a request-body chunk event; its header ops merge, its block wins', async () => {
    const ok = decodeAuthorizeResult(
      await c.call(
        request({ method: 'POST', path: '/up', contentLength: 4, body: Buffer.from('fine') }),
      ),
    );
    expect(ok).toMatchObject({ allow: true, headers: { 'X-Uri': '/up', 'X-Body-Bytes': '4' } });
    const evil = decodeAuthorizeResult(
      await c.call(
        request({ method: 'POST', path: '/up', contentLength: 4, body: Buffer.from('evil') }),
      ),
    );
    expect(evil).toMatchObject({ allow: false, status: 403, body: 'evil body' });
  });

  it('on_response → response-headers event; set → h, remove → rm', async () => {
    const pair = encodeResponsePair({
      req: { path: '/a' },
      resp: { status: 201, headers: { Server: 'x' } },
    });
    expect(decodeResponseModResult(await c.call(frame(HookType.Response, pair)))).toEqual({
      status: 0,
      headers: { 'X-Status': '201' },
      remove: ['Server'],
    });
  });

  it('on_connect → a CONNECT request-headers event: allow → ok, block → deny', async () => {
    const conn = (domain: string) =>
      frame(HookType.Connect, encodeConnInfo({ routeId: 'gw:0', domain, remoteAddr: '1.2.3.4:5' }));
    expect(decodeConnResult(await c.call(conn('a.example'))).allow).toBe(true);
    expect(decodeConnResult(await c.call(conn('blocked.example'))).allow).toBe(false);
  });

  it('on_disconnect → a request-complete event, unanswered; the connection is reused', async () => {
    c.write(
      frame(
        HookType.Disconnect,
        encodeDisconnectInfo({ routeId: 'gw:0', bytesRx: 10, bytesTx: 20, durationMs: 30 }),
      ),
    );
    const before = c.frames.length;
    expect(decodeAuthorizeResult(await c.call(request({ path: '/after' }))).allow).toBe(true);
    expect(c.frames.length).toBe(before + 1);
    await p.until(
      () => p.stderr.includes('complete rx=10 tx=20 ms=30'),
      'the request-complete event',
    );
  });
});
