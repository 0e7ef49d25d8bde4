/** Helpers of the host-side tests: the fixture plugin, events, a collecting logger. */
import { fileURLToPath } from 'node:url';
import type { Logger, RequestHeadersEvent } from '@picket/protocol';
import { type ProxConnectOptions, ProxPluginTransport } from '../src/index.js';

/** The spec-only fixture plugin (test/fixtures/spec-plugin.mjs). */
export const FIXTURE = fileURLToPath(new URL('./fixtures/spec-plugin.mjs', import.meta.url));

/** argv running the fixture with `flags`. */
export const fixtureCommand = (...flags: string[]): string[] => [
  process.execPath,
  FIXTURE,
  ...flags,
];

/** A logger that keeps every line (message + fields as JSON). */
export function collectingLogger(): Logger & { lines: string[]; text(): string } {
  const lines: string[] = [];
  const add =
    (level: string) =>
    (m: string, f?: Record<string, unknown>): void => {
      lines.push(`${level} ${m}${f === undefined ? '' : ` ${JSON.stringify(f)}`}`);
    };
  return {
    lines,
    text: () => lines.join('\n'),
    debug: add('debug'),
    info: add('info'),
    warn: add('warn'),
    error: add('error'),
  };
}

const open: ProxPluginTransport[] = [];

/** Starts the fixture with `flags` as a transport; closed by {@link closeAll}. */
export async function startFixture(
  flags: string[] = [],
  o: ProxConnectOptions = {},
): Promise<ProxPluginTransport> {
  const t = await ProxPluginTransport.connect('fx', fixtureCommand(...flags), {
    stopGraceMs: 2_000,
    backoff: { initialMs: 50, maxMs: 200 },
    ...o,
  });
  open.push(t);
  return t;
}

export async function closeAll(): Promise<void> {
  await Promise.all(open.splice(0).map((t) => t.close()));
}

let seq = 0;

/** A request-headers event; `uri` may carry a query. */
export function requestHeaders(
  uri: string,
  headers: Record<string, string[]> = {},
  o: { method?: string; routeId?: string } = {},
): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: `c-${++seq}`,
      request_id: `r-${seq}`,
      client_ip: '192.0.2.7',
      client_port: 40_001,
      server_name: 'api.example.com',
      protocol: 'HTTP/1.1',
      route_id: o.routeId ?? 'gw:0',
      timestamp: '2026-01-01T00:00:00.000+00:00',
    },
    method: o.method ?? 'GET',
    uri,
    headers: { host: ['api.example.com:8443'], ...headers },
  };
}

/** Resolves with the first event `name` emits (with a hang guard). */
export function nextEvent<T extends unknown[]>(
  emitter: { once(e: string, l: (...a: T) => void): unknown },
  name: string,
  ms = 20_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} event within ${ms} ms`)), ms);
    emitter.once(name, (...a: T) => {
      clearTimeout(timer);
      resolve(a);
    });
  });
}

/** Polls `check` until it is true (hang guard `ms`). */
export async function until(check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
