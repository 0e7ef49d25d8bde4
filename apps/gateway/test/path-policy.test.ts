/** Unit tests: the path normaliser, the Host / request-target checks, policy-aware routing. */
import { DEFAULT_PATH_POLICY, normalizePath, type PathPolicy } from '@picket/http';
import { hostProblem, lenientPath, readTarget, removeDotSegments } from '@picket/http/internal';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, type RouteConfig } from '../src/config.js';
import { routeRequest } from '../src/routes.js';

const strict = DEFAULT_PATH_POLICY;
const ok = (target: string, policy: PathPolicy = strict) => {
  const r = normalizePath(target, policy);
  if (!r.ok) throw new Error(`${target}: ${r.reason}`);
  return r.path;
};
const refused = (target: string, policy: PathPolicy = strict) => {
  const r = normalizePath(target, policy);
  if (r.ok) throw new Error(`${target} was accepted as ${r.path}`);
  return r.reason;
};

describe('normalizePath (default policy)', () => {
  it('removes dot segments, merges slashes, decodes unreserved escapes', () => {
    expect(ok('/ok/../admin/x')).toBe('/admin/x');
    expect(ok('//admin/x')).toBe('/admin/x');
    expect(ok('/%61dmin/x')).toBe('/admin/x');
    expect(ok('/./admin/x')).toBe('/admin/x');
    expect(ok('/a/b/..')).toBe('/a/');
    expect(ok('/a/.')).toBe('/a/');
    expect(ok('/.')).toBe('/');
    expect(ok('/x/%2e%2E/admin')).toBe('/admin');
    expect(ok('/a%7e%2D%5f')).toBe('/a~-_');
    expect(ok('/a//..//b')).toBe('/b');
    expect(ok('/')).toBe('/');
  });

  it('upper-cases the hex of other escapes and escapes raw characters a path may not carry', () => {
    expect(ok('/caf%c3%a9')).toBe('/caf%C3%A9');
    expect(ok('/a%20b')).toBe('/a%20b');
    expect(ok('/a|b"<>')).toBe('/a%7Cb%22%3C%3E');
    expect(ok("/a:b@c!$&'()*+,;=")).toBe("/a:b@c!$&'()*+,;=");
  });

  it('keeps the query string exactly as sent', () => {
    expect(ok('/a/../b?x=/../%2F&y=%00%zz')).toBe('/b?x=/../%2F&y=%00%zz');
    expect(ok('/%61?')).toBe('/a?');
  });

  it('refuses what stays ambiguous, saying what was wrong', () => {
    expect(refused('/a%2Fb')).toMatch(/encoded "\/" \(%2F\)/);
    expect(refused('/a%2fb')).toMatch(/%2F/);
    expect(refused('/a%5cb')).toMatch(/encoded "\\" \(%5C\)/);
    expect(refused('/a\\b')).toMatch(/backslash/);
    expect(refused('/..')).toMatch(/climbs above the root/);
    expect(refused('/a/../../etc')).toMatch(/climbs above the root/);
    expect(refused('/%2e%2e/x')).toMatch(/climbs above the root/);
    expect(refused('/a%00b')).toMatch(/NUL/);
    expect(refused('/a\u0000b')).toMatch(/NUL/);
    expect(refused('/a\u0001b')).toMatch(/control character/);
    expect(refused('/a%zzb')).toMatch(/invalid percent-escape/);
    expect(refused('/a%4')).toMatch(/invalid percent-escape/);
    expect(refused('/a#frag')).toMatch(/fragment/);
    expect(refused('/..;/admin')).toMatch(/dot segment with a ";" parameter/);
    expect(refused('/x/.;a/admin')).toMatch(/";" parameter/);
    expect(refused('/x/%2e%2e;/admin')).toMatch(/";" parameter/);
    expect(ok('/a;b/c..;d/.x;')).toBe('/a;b/c..;d/.x;');
    expect(refused('a/b')).toMatch(/must start with/);
  });
});

describe('normalizePath (other policies)', () => {
  const keep: PathPolicy = { ...strict, escapedSlashes: 'keep' };
  const decode: PathPolicy = { ...strict, escapedSlashes: 'decode' };
  const raw: PathPolicy = { normalize: false, mergeSlashes: false, escapedSlashes: 'keep' };

  it('escaped_slashes keep: %2F/%5C stay encoded (upper-case), a raw backslash is encoded', () => {
    expect(ok('/a%2fb/../c', keep)).toBe('/c');
    expect(ok('/a%2fb', keep)).toBe('/a%2Fb');
    expect(ok('/a\\b', keep)).toBe('/a%5Cb');
  });

  it('escaped_slashes decode: they become "/" before dot segments are resolved', () => {
    expect(ok('/a%2F..%2Fadmin', decode)).toBe('/admin');
    expect(ok('/a\\b', decode)).toBe('/a/b');
    expect(refused('/%2F..%2F..', decode)).toMatch(/climbs above the root/);
  });

  it('normalize false: the path stays as sent; policy-independent errors still apply', () => {
    expect(ok('/ok/../%61dmin//x', raw)).toBe('/ok/../%61dmin//x');
    expect(ok('/a\\b%2f', raw)).toBe('/a\\b%2f');
    expect(ok('//a//b', { ...raw, mergeSlashes: true })).toBe('/a/b');
    expect(refused('/a%2Fb', { ...raw, escapedSlashes: 'reject' })).toMatch(/%2F/);
    expect(refused('/a%00', raw)).toMatch(/NUL/);
    expect(refused('/a%g0', raw)).toMatch(/invalid percent-escape/);
  });

  it('removeDotSegments follows RFC 3986 §5.2.4 examples', () => {
    expect(removeDotSegments('/a/b/c/./../../g')).toBe('/a/g');
    expect(removeDotSegments('/mid/content=5/../6')).toBe('/mid/6');
    expect(removeDotSegments('/a//../b')).toBe('/a/b');
    expect(removeDotSegments('/../g')).toBeUndefined();
  });

  it('lenientPath reads the path as the most lenient server would', () => {
    expect(lenientPath('/x/../../admin')).toBe('/admin');
    expect(lenientPath('/x/..;/admin;a')).toBe('/admin;a');
    expect(lenientPath('/x%2f..%5C..\\admin%2Fy?q')).toBe('/admin/y?q');
    expect(lenientPath('/a%00')).toBeUndefined();
  });
});

describe('Host and request target', () => {
  it('accepts host names, IPv4 and [IPv6] with an optional port', () => {
    for (const h of ['example.com', 'a-b.c_d', '10.0.0.1:8080', '[::1]', '[::1]:443', 'x:65535']) {
      expect(hostProblem(h), h).toBeUndefined();
    }
  });

  it('refuses lists, userinfo, two ports, empty, bad ports and bad IPv6', () => {
    for (const h of [
      'a,b',
      'x@internal',
      'h:80:80',
      'h:',
      'h:x',
      'h:65536',
      'h:123456',
      '[zz]',
      'a b',
      'a%41',
    ]) {
      expect(hostProblem(h), h).toBeDefined();
    }
    expect(hostProblem('')).toBe('empty Host');
  });

  it('more than one Host, a missing Host on HTTP/1.1 and an odd target form are refused', () => {
    expect(readTarget('/', ['a', 'b'], '1.1')).toMatchObject({
      ok: false,
      reason: 'more than one Host header',
    });
    expect(readTarget('/', undefined, '1.1')).toMatchObject({
      ok: false,
      reason: 'missing Host header',
    });
    expect(readTarget('/', undefined, '1.0')).toMatchObject({ ok: true, host: undefined });
    expect(readTarget('*', ['a'], '1.1')).toMatchObject({ ok: false });
    expect(readTarget('ftp://a/b', ['a'], '1.1')).toMatchObject({ ok: false });
  });

  it('absolute-form: the authority replaces Host, the path is kept raw for the path policy', () => {
    expect(readTarget('http://Example.com:81/x/../y?q', ['other'], '1.1')).toEqual({
      ok: true,
      host: 'Example.com:81',
      fromTarget: true,
      pathAndQuery: '/x/../y?q',
    });
    expect(readTarget('HTTPS://a', ['a'], '1.1')).toMatchObject({ pathAndQuery: '/' });
    expect(readTarget('http://a?q=1', ['a'], '1.1')).toMatchObject({ pathAndQuery: '/?q=1' });
    expect(readTarget('http://u@a/', ['a'], '1.1')).toMatchObject({ ok: false });
    expect(readTarget('http:///x', ['a'], '1.1')).toMatchObject({ ok: false });
  });
});

describe('routeRequest with per-route path policies', () => {
  const route = (
    name: string,
    pathPrefix: string,
    path: Partial<PathPolicy> = {},
  ): RouteConfig => ({
    name,
    host: undefined,
    pathPrefix,
    upstream: 'u',
    agents: [],
    path: { ...strict, ...path },
  });

  it('matches the normalised path and hands it on', () => {
    const routes = [route('admin', '/admin'), route('rest', '/')];
    expect(routeRequest(routes, 'h', '/ok/../admin/x?q')).toEqual({
      route: routes[0],
      uri: '/admin/x?q',
    });
  });

  it('a route that refuses a path answers for it; a laxer later route does not pick it up', () => {
    const routes = [route('api', '/api'), route('files', '/', { escapedSlashes: 'keep' })];
    expect(routeRequest(routes, 'h', '/api/a%2Fb')).toEqual({ error: 'encoded "/" (%2F) in path' });
    expect(routeRequest(routes, 'h', '/other/a%2Fb')).toEqual({
      route: routes[1],
      uri: '/other/a%2Fb',
    });
  });

  it('a refused path aimed at a strict route is not handed to a laxer catch-all', () => {
    const routes = [
      route('admin', '/admin'),
      route('rest', '/', { normalize: false, mergeSlashes: false, escapedSlashes: 'keep' }),
    ];
    for (const target of ['/x/../../admin', '/x/..;/admin', '/admin%2Fx', '/x\\..\\admin']) {
      expect(routeRequest(routes, 'h', target), target).toHaveProperty('error');
    }
    // not aimed at /admin: the raw route takes it as sent
    expect(routeRequest(routes, 'h', '/x/../../y')).toEqual({
      route: routes[1],
      uri: '/x/../../y',
    });
  });

  it('a refused path that no route takes is still a 400, not a 404', () => {
    const routes = [route('api', '/api')];
    expect(routeRequest(routes, 'h', '/other/a%2Fb')).toEqual({
      error: 'encoded "/" (%2F) in path',
    });
    expect(routeRequest(routes, 'h', '/other')).toBeUndefined();
  });

  it('an opted-out route sees the raw path', () => {
    const routes = [
      route('raw', '/static', { normalize: false, mergeSlashes: false }),
      route('rest', '/'),
    ];
    expect(routeRequest(routes, 'h', '/static/../x')).toEqual({
      route: routes[0],
      uri: '/static/../x',
    });
    expect(routeRequest(routes, 'h', '/s/../x')).toEqual({ route: routes[1], uri: '/x' });
    // a strict route listed first that the path is not aimed at does not refuse it
    const behind = [route('strict', '/keep'), ...routes];
    expect(routeRequest(behind, 'h', '/static/../../x')).toEqual({
      route: routes[0],
      uri: '/static/../../x',
    });
  });
});

describe('route path policy in the config', () => {
  const withPath = (path: unknown, prefix = '/') => ({
    upstreams: { app: 'http://127.0.0.1:9000' },
    routes: [{ upstream: 'app', path_prefix: prefix, path }],
  });
  const problems = (raw: unknown): readonly string[] => {
    try {
      parseConfig(raw);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as ConfigError).problems;
    }
    throw new Error('config was accepted');
  };

  it('defaults to the strict policy and takes every option', () => {
    expect(parseConfig(withPath(undefined)).routes[0]?.path).toEqual(DEFAULT_PATH_POLICY);
    expect(
      parseConfig(withPath({ normalize: true, merge_slashes: false, escaped_slashes: 'decode' }))
        .routes[0]?.path,
    ).toEqual({ normalize: true, mergeSlashes: false, escapedSlashes: 'decode' });
  });

  it('names each bad field', () => {
    expect(problems(withPath('strict'))).toEqual([
      'routes[0].path: must be an object (normalize, merge_slashes, escaped_slashes)',
    ]);
    expect(problems(withPath({ normalize: 'yes', merge_slashes: 1, escaped: 'x' }))).toEqual([
      'routes[0].path.escaped: unknown field (expected one of normalize, merge_slashes, escaped_slashes)',
      'routes[0].path.normalize: must be true or false',
      'routes[0].path.merge_slashes: must be true or false',
    ]);
    expect(problems(withPath({ escaped_slashes: 'redirect' }))).toEqual([
      'routes[0].path.escaped_slashes: must be one of "reject", "keep", "decode"',
    ]);
    expect(problems(withPath({ normalize: false, escaped_slashes: 'decode' }))).toEqual([
      'routes[0].path.escaped_slashes: "decode" needs normalize: true',
    ]);
  });

  it("refuses a path_prefix that the route's own path form can never match", () => {
    expect(problems(withPath(undefined, '/a/../b'))).toEqual([
      'routes[0].path_prefix: "/a/../b" never matches a normalised path; write it as "/b"',
    ]);
    expect(problems(withPath(undefined, '/%61pi'))[0]).toMatch(/write it as "\/api"/);
    expect(problems(withPath(undefined, '/a%2Fb'))[0]).toMatch(/never matches: encoded "\/"/);
    expect(
      parseConfig(withPath({ normalize: false, merge_slashes: false }, '/a//b')).routes[0]
        ?.pathPrefix,
    ).toBe('/a//b');
  });
});
