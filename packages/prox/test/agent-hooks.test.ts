/** agentHooks in process: the edges of the AgentHandler mapping. */
import {
  type AgentHandler,
  allow,
  block,
  challenge,
  createCapabilities,
  redirect,
  silentLogger,
} from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import { agentHooks, type ProxHookContext, type RequestInfo } from '../src/index.js';

const ctx: ProxHookContext = {
  signal: new AbortController().signal,
  connectionId: 't',
  logger: silentLogger,
};

const req = (path: string): RequestInfo => ({
  routeId: 'r',
  method: 'GET',
  path,
  query: '',
  domain: 'a.example',
  host: '',
  proto: '',
  remoteAddr: '1.2.3.4:5',
  contentLength: 0,
  headers: {},
  body: undefined,
  matchDomain: '',
  matchGlob: '',
  matchPath: '',
  vars: {},
  target: '',
});

function hooksAnswering(answer: (uri: string) => unknown) {
  const handler: AgentHandler = {
    capabilities: () =>
      createCapabilities({ agentId: 'a', name: 'a', version: '1', events: ['request_headers'] }),
    onRequestHeaders: (e) => answer(e.uri) as ReturnType<typeof allow>,
  };
  return agentHooks(handler);
}

describe('agentHooks', () => {
  it('declares only the events the agent lists in its capabilities', () => {
    const hooks = hooksAnswering(() => allow());
    expect(Object.keys(hooks).sort()).toEqual(['onConnect', 'onRequest']);
  });

  it('challenge: an auth scheme is a 401 with WWW-Authenticate; `constructor` is no scheme; a 4xx params.status overrides', async () => {
    const answers: Record<string, unknown> = {
      '/basic': challenge('BASIC', { realm: 'a "b"', 'bad key': 'x' }),
      '/ctor': challenge('constructor', {}),
      '/status': challenge('captcha', { status: '429', site: 'k' }),
      '/bad-status': challenge('captcha', { status: '200' }),
    };
    const hooks = hooksAnswering((uri) => answers[uri]);
    const basic = await hooks.onRequest?.(req('/basic'), ctx);
    expect(basic).toMatchObject({ allow: false, status: 401 });
    expect(basic?.headers?.['WWW-Authenticate']).toBe('Basic realm="a \\"b\\""');
    const ctor = await hooks.onRequest?.(req('/ctor'), ctx);
    expect(ctor).toMatchObject({ allow: false, status: 403 });
    expect(ctor?.headers?.['WWW-Authenticate']).toBeUndefined();
    const status = await hooks.onRequest?.(req('/status'), ctx);
    expect(status).toMatchObject({ allow: false, status: 429 });
    expect(JSON.parse(status?.body ?? '')).toEqual({
      challenge_type: 'captcha',
      params: { site: 'k' },
    });
    expect(await hooks.onRequest?.(req('/bad-status'), ctx)).toMatchObject({ status: 403 });
  });

  it('a block status outside 4xx/5xx is 403, a redirect status outside 3xx is 302', async () => {
    const hooks = hooksAnswering((uri) =>
      uri === '/b' ? block(200, { body: 'x' }) : redirect('/login', 200),
    );
    expect(await hooks.onRequest?.(req('/b'), ctx)).toMatchObject({
      allow: false,
      status: 403,
      body: 'x',
    });
    expect(await hooks.onRequest?.(req('/r'), ctx)).toMatchObject({
      allow: false,
      status: 302,
      headers: { Location: '/login' },
    });
  });

  it('drop and fallback markers on a block, speed limit and clean query on an allow', async () => {
    const hooks = hooksAnswering((uri) =>
      uri === '/drop'
        ? block(403, { routingMetadata: { 'prox.drop': 'true' } })
        : uri === '/fb'
          ? block(403, { routingMetadata: { 'prox.fallback': 'true' } })
          : allow({
              routingMetadata: {
                'prox.clean_query': 'true',
                'prox.speed_download_mbps': '2.5',
                'prox.speed_upload_mbps': 'junk',
                'prox.speed_group_key': 'u1',
              },
            }),
    );
    expect(await hooks.onRequest?.(req('/drop'), ctx)).toMatchObject({ allow: false, drop: true });
    expect(await hooks.onRequest?.(req('/fb'), ctx)).toMatchObject({
      allow: false,
      fallback: true,
    });
    expect(await hooks.onRequest?.(req('/ok'), ctx)).toMatchObject({
      allow: true,
      cleanQuery: true,
      speedLimit: { downloadMbps: 2.5, uploadMbps: 0, groupKey: 'u1' },
    });
  });

  it('an answer that is not an AgentResponse, or a rejected promise, is the handler-error deny', async () => {
    for (const bad of [{ decision: 'maybe' }, null, Promise.reject(new Error('x'))]) {
      const hooks = hooksAnswering(() => bad);
      expect(await hooks.onRequest?.(req('/x'), ctx)).toMatchObject({
        allow: false,
        status: 500,
        body: 'Agent handler error',
      });
    }
    const connect = hooksAnswering(() => {
      throw new Error('x');
    });
    expect(
      await connect.onConnect?.(
        { routeId: 'r', domain: 'd', remoteAddr: '', matchDomain: '', matchGlob: '' },
        ctx,
      ),
    ).toEqual({
      allow: false,
    });
  });
});
