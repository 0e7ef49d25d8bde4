/**
 * An upstream's servers: its configured `url`, or the targets a prox plugin pushed
 * (`targets_from`), balanced round robin, each with its own undici connection pool.
 */
import { jsonForLog } from '@picket/protocol';
import type { ProxTargetsPush } from '@picket/prox';
import { Pool } from 'undici';
import type { RouteConfig, UpstreamConfig } from './config.js';

/** One server of an upstream. */
export interface UpstreamTarget {
  /** `http://host:port` */
  origin: string;
  /** the configured url's path (without a trailing `/`), prepended to each request path */
  basePath: string;
  dispatcher: Pool;
}

/** More targets than this in one push is refused (each one is a connection pool). */
export const MAX_PUSHED_TARGETS = 1_024;

/**
 * A pushed target as an origin: `host:port`, `[v6]:port` (as prox's balancers take them) or
 * `http(s)://host:port`. Throws an Error naming the problem for anything else (a path, a
 * query, credentials, another scheme).
 */
export function targetOrigin(target: string): string {
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(target);
  let u: URL;
  try {
    u = new URL(hasScheme ? target : `http://${target}`);
  } catch {
    throw new Error(`target ${jsonForLog(target)} is not host:port or an http(s):// URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new Error(`target ${jsonForLog(target)}: only http:// and https:// are supported`);
  }
  if (u.pathname !== '/' || u.search || u.hash || u.username || u.password || u.host === '') {
    throw new Error(
      `target ${jsonForLog(target)} must be host:port (no path, query or credentials)`,
    );
  }
  return u.origin;
}

/** An upstream and its connection pools; `pick()` gives the server for the next attempt. */
export class Upstream {
  readonly #targets = new Map<string, UpstreamTarget>();
  #order: UpstreamTarget[] = [];
  #next = 0;
  #pushed = false;

  constructor(readonly config: UpstreamConfig) {
    if (config.url) {
      this.#order = [this.#target(config.url.origin, config.url.pathname.replace(/\/$/, ''))];
    }
  }

  /** The server for the next attempt (round robin), or undefined when there is none. */
  pick(): UpstreamTarget | undefined {
    if (this.#order.length === 0) return undefined;
    const t = this.#order[this.#next % this.#order.length] as UpstreamTarget;
    this.#next = (this.#next + 1) % this.#order.length;
    return t;
  }

  /** The current servers' origins. */
  get targets(): string[] {
    return this.#order.map((t) => t.origin);
  }

  /** Why `pick()` found nothing, for the 503 body and the log. */
  get noTargetsReason(): string {
    return this.config.targetsFrom !== undefined && !this.#pushed
      ? `upstream "${this.config.name}" has no targets yet: waiting for agent "${this.config.targetsFrom}" to push set_targets`
      : `upstream "${this.config.name}" has no targets: agent "${this.config.targetsFrom}" pushed an empty list`;
  }

  /**
   * Replaces the servers wholesale (a `set_targets` push). Servers kept keep their
   * connections; the others' pools close once their requests are done. Throws (keeping the
   * current servers) for a bad target or too many.
   */
  setTargets(targets: readonly string[]): void {
    if (targets.length > MAX_PUSHED_TARGETS) {
      throw new Error(`${targets.length} targets are more than the ${MAX_PUSHED_TARGETS} allowed`);
    }
    const origins = [...new Set(targets.map(targetOrigin))];
    this.#pushed = true;
    this.#order = origins.map((o) => this.#targets.get(o) ?? this.#target(o, ''));
    this.#next = 0;
    const keep = new Set(origins);
    for (const [origin, t] of this.#targets) {
      if (keep.has(origin)) continue;
      this.#targets.delete(origin);
      t.dispatcher.close().catch(() => {});
    }
  }

  /** Closes every connection pool. */
  async close(): Promise<void> {
    const all = [...this.#targets.values()];
    this.#targets.clear();
    this.#order = [];
    await Promise.allSettled(all.map((t) => t.dispatcher.close()));
  }

  #target(origin: string, basePath: string): UpstreamTarget {
    const c = this.config;
    const t: UpstreamTarget = {
      origin,
      basePath,
      dispatcher: new Pool(origin, {
        connect: { timeout: c.connectTimeoutMs },
        headersTimeout: c.timeoutMs,
        bodyTimeout: c.timeoutMs,
      }),
    };
    this.#targets.set(origin, t);
    return t;
  }
}

/**
 * Whether a `set_targets` push is for `upstream` (whose targets come from the pushing
 * agent): `route_id: "*"`, `action` = the upstream's name (prox's action is the gateway's
 * upstream), or `route_id` = a route that uses the upstream.
 */
export function pushIsFor(
  push: ProxTargetsPush,
  upstream: string,
  routes: readonly RouteConfig[],
): boolean {
  if (push.action !== '') return push.action === upstream;
  if (push.routeId === '*') return true;
  return routes.some((r) => r.name === push.routeId && r.upstream === upstream);
}
