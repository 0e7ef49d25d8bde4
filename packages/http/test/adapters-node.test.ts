import { Agent, createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentSpec, wrapListener } from '../src/index.js';
import { type AgentFixture, startAgent, until } from './adapters-agent.js';
import { adapterScenarios, type Served, send } from './adapters-scenarios.js';
import { listen } from './adapters-serve.js';

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

adapterScenarios('node:http', async (options) => {
  const calls: string[] = [];
  const listener = wrapListener(async (req, res) => {
    calls.push(req.url ?? '');
    const body = await readBody(req);
    res.setHeader('x-app', '1');
    if (req.url === '/rewrite-response') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '8' });
      res.end('original');
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
  }, options);
  const server = createServer(listener);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const served: Served = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return served;
});

describe('node:http adapter: streaming and failures', () => {
  let fx: AgentFixture;
  beforeAll(async () => {
    fx = await startAgent();
  });
  afterAll(async () => {
    await fx?.close();
  });

  it('streams the response when no agent asks for its body (the client sees data before the end)', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const listener = wrapListener(
      async (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first;');
        await released; // only once the client has the first part
        res.end('second');
      },
      {
        pool: fx.pool,
        agents: [agentSpec('test', { events: ['request_headers', 'response_headers'] })],
      },
    );
    const served = await listen(createServer(listener));
    try {
      const text = await new Promise<string>((resolve, reject) => {
        httpRequest(`${served.url}/stream`, (res) => {
          let got = '';
          res.on('data', (c: Buffer) => {
            got += c.toString('utf8');
            if (got === 'first;') release();
          });
          res.on('end', () => resolve(got));
          res.on('error', reject);
        })
          .on('error', reject)
          .end();
      });
      expect(text).toBe('first;second');
    } finally {
      await served.close();
    }
  });

  it('a large response respects backpressure both ways and arrives whole', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const count = 64; // 4 MiB
    const listener = wrapListener(
      async (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        for (let i = 0; i < count; i++) {
          if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
        }
        res.end();
      },
      { pool: fx.pool, agents: ['test'] },
    );
    const served = await listen(createServer(listener));
    try {
      const size = await new Promise<number>((resolve, reject) => {
        httpRequest(`${served.url}/large`, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
            // a slow reader: the socket fills up and the writes have to wait
            res.pause();
            setTimeout(() => res.resume(), 1);
          });
          res.on('end', () => resolve(n));
          res.on('error', reject);
        })
          .on('error', reject)
          .end();
      });
      expect(size).toBe(count * chunk.length);
    } finally {
      await served.close();
    }
  });

  it('a blocked request with a large body leaves a keep-alive connection usable', async () => {
    const listener = wrapListener(
      async (req, res) => {
        await readBody(req);
        res.end('app');
      },
      { pool: fx.pool, agents: ['test'] },
    );
    const served = await listen(createServer(listener));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const post = (path: string, body: Buffer) =>
      new Promise<{ status: number; text: string; socket: unknown }>((resolve, reject) => {
        const req = httpRequest(`${served.url}${path}`, { method: 'POST', agent }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString('utf8');
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text, socket: req.socket }));
        });
        req.on('error', reject);
        req.end(body);
      });
    try {
      const first = await post('/blocked/upload', Buffer.alloc(1024 * 1024, 'a'));
      expect(first.status).toBe(403);
      const second = await post('/after', Buffer.from('small'));
      expect(second.status).toBe(200);
      expect(second.text).toBe('app');
    } finally {
      agent.destroy();
      await served.close();
    }
  });

  it('a stream-mode body rewrite reaches the application as a chunked body', async () => {
    let seen: { body: string; headers: IncomingMessage['headers'] } | undefined;
    const listener = wrapListener(
      async (req, res) => {
        seen = { body: await readBody(req), headers: req.headers };
        res.end('ok');
      },
      {
        pool: fx.pool,
        agents: [
          agentSpec('test', { events: ['request_headers', 'request_body'], bodyMode: 'stream' }),
        ],
      },
    );
    const served = await listen(createServer(listener));
    try {
      const r = await send(served.url, '/stream-body', { body: 'please replace-me' });
      expect(r.status).toBe(200);
      expect(seen?.body).toBe('the agent rewrote this body ✓');
      expect(seen?.headers['content-length']).toBeUndefined();
      expect(seen?.headers['transfer-encoding']).toBe('chunked');
    } finally {
      await served.close();
    }
  });

  it('a stream-mode block in the middle of the body: the app sees the body fail, the client the block', async () => {
    let appSaw: string | undefined;
    let started!: () => void;
    const appStarted = new Promise<void>((r) => {
      started = r;
    });
    const listener = wrapListener(
      async (req, res) => {
        started();
        try {
          appSaw = `complete: ${await readBody(req)}`;
        } catch (e) {
          appSaw = `failed: ${(e as Error).message}`;
        }
        if (!res.headersSent) res.end('app answered');
      },
      {
        pool: fx.pool,
        agents: [
          agentSpec('test', { events: ['request_headers', 'request_body'], bodyMode: 'stream' }),
        ],
      },
    );
    const served = await listen(createServer(listener));
    try {
      const reply = new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest(`${served.url}/upload`, { method: 'POST' }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString('utf8');
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.write('a good first part;');
        // the rest only once the application is reading the body
        void appStarted.then(() => req.end('then an evil part'));
      });
      const r = await reply;
      expect(r.status).toBe(403);
      expect(r.body).toBe('evil chunk\n');
      await until(() => appSaw, 'the application to finish');
      expect(appSaw).toMatch(/^failed: /);
    } finally {
      await served.close();
    }
  });

  it('an application that throws before answering is a 500, never an allow', async () => {
    const listener = wrapListener(
      () => {
        throw new Error('boom');
      },
      { pool: fx.pool, agents: ['test'] },
    );
    const served = await listen(createServer(listener));
    try {
      const r = await send(served.url, '/throws');
      expect(r.status).toBe(500);
    } finally {
      await served.close();
    }
  });

  it('a listener whose body was read before picket is refused (500), and the error is logged escaped', async () => {
    const lines: string[] = [];
    const log = { debug() {}, info() {}, warn() {}, error: (m: string) => lines.push(m) };
    const wrapped = wrapListener(() => {}, { pool: fx.pool, agents: ['test'], log });
    const thrower = wrapListener(
      () => {
        throw new Error('bad\nline from a client');
      },
      { pool: fx.pool, agents: ['test'], log },
    );
    const served = await listen(
      createServer(async (req, res) => {
        if (req.url === '/read-first') {
          await readBody(req);
          wrapped(req, res);
        } else thrower(req, res);
      }),
    );
    try {
      const r = await send(served.url, '/read-first', { body: 'already read' });
      expect(r.status).toBe(500);
      expect(lines.some((l) => l.includes('install picket before any body parser'))).toBe(true);
      const t = await send(served.url, '/throws');
      expect(t.status).toBe(500);
      const logged = lines.find((l) => l.includes('application failed'));
      expect(logged).toContain('bad\\nline');
      expect(logged).not.toContain('\n');
    } finally {
      await served.close();
    }
  });

  it('refuses bad options with an error naming what is wrong', () => {
    expect(() => wrapListener(() => {}, { pool: fx.pool, agents: 'test' as never })).toThrow(
      /options\.agents must be an array/,
    );
    expect(() => wrapListener(() => {}, { pool: {} as never, agents: [] })).toThrow(
      /options\.pool must be an AgentPool/,
    );
  });
});
