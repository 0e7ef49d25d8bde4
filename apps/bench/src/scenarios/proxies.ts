/**
 * Reference proxies the gateway is compared with, on the same upstream and load:
 * - `plainProxy`: the floor of what a Node proxy costs — node:http in, an undici
 *   Pool out, the body streamed with `pipeline`, hop-by-hop headers dropped and
 *   nothing else (no ids, no timeouts, no agents, no logging);
 * - HAProxy (when `haproxy` is on PATH): a minimal http-mode config written at run time.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import type { Hosted } from '../worker.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus `host`, which undici sets from the origin. */
const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
]);

function endToEnd(headers: Record<string, string | string[] | undefined>) {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const v = headers[name];
    if (v !== undefined && !HOP.has(name)) out[name] = v;
  }
  return out;
}

/** Worker factory: the plain Node proxy in front of `upstream`. */
export async function plainProxy(args: { upstream: string; connections: number }): Promise<Hosted> {
  const http = await import('node:http');
  const { pipeline } = await import('node:stream');
  const { Pool } = await import('undici');
  const pool = new Pool(args.upstream, { connections: args.connections, pipelining: 1 });
  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const hasBody = method !== 'GET' && method !== 'HEAD';
    pool
      .request({
        path: req.url ?? '/',
        method: method as 'GET',
        headers: endToEnd(req.headers),
        ...(hasBody ? { body: req } : {}),
      })
      .then(
        (up) => {
          res.writeHead(
            up.statusCode,
            endToEnd(up.headers as Record<string, string | string[] | undefined>),
          );
          pipeline(up.body, res, () => {});
        },
        () => {
          res.statusCode = 502;
          res.end();
        },
      );
    if (!hasBody) req.resume();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    info: { origin: `http://127.0.0.1:${port}` },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.close();
    },
  };
}

/** Path of the `haproxy` binary, or undefined when it is not on PATH. */
export function haproxyBinary(): string | undefined {
  try {
    const out = execFileSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).trim();
    return out === '' ? undefined : out;
  } catch {
    return undefined;
  }
}

/** A free TCP port on 127.0.0.1 (listen on 0, read it, close). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on `port` (polls for up to 10 s). */
async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode})`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = createConnection({ host: '127.0.0.1', port });
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('haproxy did not listen within 10 s');
}

/**
 * Starts HAProxy with one thread (the Node processes each have one JS thread too),
 * http mode, keep-alive on both sides, the same upstream.
 */
export async function startHaproxy(
  binary: string,
  upstream: string,
  dir: string,
): Promise<{ child: ChildProcess; origin: string }> {
  const up = new URL(upstream);
  const port = await freePort();
  const cfg = [
    'global',
    '  nbthread 1',
    '  maxconn 4096',
    'defaults',
    '  mode http',
    '  option http-keep-alive',
    '  http-reuse always',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    'frontend bench',
    `  bind 127.0.0.1:${port}`,
    '  default_backend origin',
    'backend origin',
    `  server o1 ${up.hostname}:${up.port}`,
    '',
  ].join('\n');
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, cfg);
  const child = spawn(binary, ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  await waitForPort(port, child);
  return { child, origin: `http://127.0.0.1:${port}` };
}
