/**
 * Route matching: the first route whose host and path prefix both match wins.
 */
import { normalizePath } from '@picket/http';
import { lenientPath } from '@picket/http/internal';
import type { RouteConfig } from './config.js';

/** The host part of a Host header, lower-cased, without port or trailing dot. */
export function hostWithoutPort(hostHeader: string | undefined): string {
  if (!hostHeader) return '';
  let h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end === -1 ? h : h.slice(0, end + 1);
  }
  const colon = h.lastIndexOf(':');
  if (colon !== -1 && h.indexOf(':') === colon) h = h.slice(0, colon);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

/**
 * Host rule: none matches any host; `example.com` matches exactly;
 * `*.example.com` matches any subdomain (`a.example.com`, `a.b.example.com`)
 * but not `example.com` itself.
 */
export function hostMatches(pattern: string | undefined, host: string): boolean {
  if (pattern === undefined) return true;
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1); // ".example.com"
    return host.length > suffix.length && host.endsWith(suffix);
  }
  return host === pattern;
}

/**
 * Path rule, on segment boundaries: `/api` matches `/api`, `/api/…` and
 * `/api?…` but not `/apix`; a prefix ending in `/` (like `/`) is a plain prefix.
 */
export function pathMatches(prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false;
  if (prefix.endsWith('/') || path.length === prefix.length) return true;
  const next = path[prefix.length];
  return next === '/' || next === '?';
}

/** Finds the route for a request: first match wins; `undefined` when none matches. */
export function matchRoute(
  routes: readonly RouteConfig[],
  hostHeader: string | undefined,
  path: string,
): RouteConfig | undefined {
  const host = hostWithoutPort(hostHeader);
  return routes.find((r) => hostMatches(r.host, host) && pathMatches(r.pathPrefix, path));
}

/** The route and the path it sees, or why the path is refused (400). */
export type Routing<R = RouteConfig> = { route: R; uri: string } | { error: string } | undefined;

/** What routing reads of a route. */
type Routable = Pick<RouteConfig, 'host' | 'pathPrefix' | 'path'>;

/**
 * Finds the route for an origin-form target (`/path?query`): each route puts
 * the path into its own form ({@link normalizePath}) and matches that; first
 * match wins. A route whose policy refuses the path answers 400 for it when
 * its prefix matches the path as a lenient server might read it
 * ({@link lenientPath}), so a laxer route listed later cannot pick up what an
 * earlier one refused. A refused path no route takes is a 400, not a 404.
 */
export function routeRequest<R extends Routable>(
  routes: readonly R[],
  hostHeader: string | undefined,
  target: string,
): Routing<R> {
  const host = hostWithoutPort(hostHeader);
  let refused: string | undefined;
  let lenient: string | null | undefined;
  for (const r of routes) {
    if (!hostMatches(r.host, host)) continue;
    const n = normalizePath(target, r.path);
    if (n.ok) {
      if (pathMatches(r.pathPrefix, n.path)) return { route: r, uri: n.path };
      continue;
    }
    refused ??= n.reason;
    if (lenient === undefined) lenient = lenientPath(target) ?? null;
    if (lenient === null || pathMatches(r.pathPrefix, lenient)) return { error: n.reason };
  }
  return refused === undefined ? undefined : { error: refused };
}
