/**
 * A tiny upstream for demos and tests: answers every request with JSON
 * describing what it received (method, path, headers, body).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the echo upstream answers. */
export interface EchoReply {
  upstream: string;
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** the body as UTF-8 text */
  body: string;
  body_length: number;
}

/** A running echo upstream. */
export interface EchoUpstream {
  server: Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Starts the echo upstream on `host:port` (port 0 = any free port). A path
 * starting with `/slow` waits `?ms=` milliseconds (default 5 000) before answering;
 * a path containing `/drip` sends `drip 1`, `drip 2` and then the JSON as three
 * chunks `?gap=` milliseconds apart (default 20).
 */
export async function startEchoUpstream(
  name = 'echo',
  host = '127.0.0.1',
  port = 0,
): Promise<EchoUpstream> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const reply: EchoReply = {
        upstream: name,
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: req.headers,
        body: body.toString('utf8'),
        body_length: body.length,
      };
      const text = `${JSON.stringify(reply, null, 2)}\n`;
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
          'x-upstream': name,
        });
        res.end(text);
      };
      const url = new URL(req.url ?? '/', 'http://upstream');
      if (url.pathname.includes('/drip')) {
        // two small pieces first, then the JSON, `?gap=` ms apart (default 20; chunked)
        const gap = Number(url.searchParams.get('gap') ?? 20);
        res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': name });
        const pieces = ['drip 1\n', 'drip 2\n', text];
        const next = () => {
          const p = pieces.shift();
          if (p === undefined || res.destroyed) return void res.end();
          res.write(p);
          setTimeout(next, gap);
        };
        next();
      } else if (url.pathname.startsWith('/slow')) {
        const t = setTimeout(send, Number(url.searchParams.get('ms') ?? 5_000));
        res.on('close', () => clearTimeout(t));
      } else send();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    server,
    port: bound,
    url: `http://${host}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
