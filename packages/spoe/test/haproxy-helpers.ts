/**
 * Starts a real HAProxy (the Debian package's /usr/sbin/haproxy) as a child
 * process in front of a node:http upstream, with the SPOE filter pointed at a
 * picket SpoeAgentServer, using the configuration the README shows
 * (examples/haproxy.cfg and examples/spoe-picket.conf) with test ports.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The haproxy binary ($HAPROXY_BIN, else `haproxy` on PATH) and its version line, or why there is none. */
export function findHaproxy(): { bin: string; version: string } | { missing: string } {
  const given = process.env.HAPROXY_BIN;
  for (const bin of given ? [given] : ['haproxy', '/usr/sbin/haproxy']) {
    const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
    if (r.status === 0) return { bin, version: r.stdout.split('\n')[0] ?? '' };
  }
  return {
    missing: `${given ? `HAPROXY_BIN=${given} does not run` : 'haproxy is not installed'}: the HAProxy end-to-end tests are SKIPPED (install it with \`apt-get install -y haproxy\`; .ci/run does so)`,
  };
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** An upstream that answers with the request it saw (method, url, headers) as JSON. */
export async function startUpstream(): Promise<{ port: number; server: http.Server }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, server };
}

const example = (name: string): string =>
  readFileSync(new URL(`../examples/${name}`, import.meta.url), 'utf8');

/** `text` with `from` replaced; throws if `from` is not there (the example drifted). */
function swap(text: string, from: string, to: string): string {
  if (!text.includes(from))
    throw new Error(`the example configuration lacks ${JSON.stringify(from)}`);
  return text.split(from).join(to);
}

/** The README's haproxy.cfg (examples/haproxy.cfg) around test ports and paths. */
export function haproxyCfg(o: {
  dir: string;
  frontPort: number;
  upstreamPort: number;
  agentPort: number;
}): string {
  let cfg = example('haproxy.cfg');
  cfg = swap(cfg, '/run/haproxy/admin.sock', `${o.dir}/admin.sock`);
  cfg = swap(cfg, 'bind :8080', `bind 127.0.0.1:${o.frontPort}`);
  cfg = swap(cfg, '/etc/haproxy/spoe-picket.conf', `${o.dir}/spoe.conf`);
  cfg = swap(cfg, '127.0.0.1:8000', `127.0.0.1:${o.upstreamPort}`);
  cfg = swap(cfg, '127.0.0.1:12345', `127.0.0.1:${o.agentPort}`);
  // quicker health checks, so "agent down" is seen sooner
  return swap(cfg, 'check inter 2s fall 2 rise 1', 'check inter 300ms fall 1 rise 1');
}

export interface Haproxy {
  frontPort: number;
  dir: string;
  output: () => string;
  stop: () => Promise<void>;
}

/** Writes the configuration, checks it with `haproxy -c`, starts HAProxy in the foreground. */
export async function startHaproxy(
  bin: string,
  upstreamPort: number,
  agentPort: number,
): Promise<Haproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'picket-spoe-'));
  const frontPort = await freePort();
  writeFileSync(join(dir, 'spoe.conf'), example('spoe-picket.conf'));
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyCfg({ dir, frontPort, upstreamPort, agentPort }));
  const check = spawnSync(bin, ['-c', '-f', cfg], { encoding: 'utf8' });
  if (check.status !== 0) {
    throw new Error(`haproxy -c refused the configuration:\n${check.stdout}${check.stderr}`);
  }
  let out = '';
  const child: ChildProcess = spawn(bin, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`haproxy exited:\n${out}`);
    return canConnect(frontPort);
  }, 'haproxy to listen');
  return {
    frontPort,
    dir,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Polls `check` until it is true (a hang guard of `timeoutMs`, not a time budget). */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `show stat` over the admin socket: the row of one server, as a name → value map. */
export async function serverStat(
  dir: string,
  backend: string,
  server: string,
): Promise<Record<string, string>> {
  const text = await new Promise<string>((resolve, reject) => {
    const s = net.connect(join(dir, 'admin.sock'));
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString()));
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.write('show stat\n');
  });
  const lines = text.split('\n');
  const head = (lines[0] ?? '').replace(/^# /, '').split(',');
  for (const line of lines.slice(1)) {
    const cells = line.split(',');
    if (cells[0] === backend && cells[1] === server) {
      return Object.fromEntries(head.map((h, i) => [h, cells[i] ?? '']));
    }
  }
  throw new Error(`no stat row for ${backend}/${server}:\n${text}`);
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request on a fresh connection (no pooling between tests). */
export function request(
  port: number,
  path: string,
  o: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: o.method ?? 'GET',
        headers: { connection: 'close', ...o.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}
