/**
 * The behaviour every adapter must have, run against each framework over a real socket
 * with a real agent on a Unix socket. Each framework test file supplies `serve`: the same
 * small application (echo the request as JSON; `/rewrite-response` answers `original`),
 * behind the adapter with the given agent chain.
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentSpec, agentSpec, type PicketOptions } from '../src/index.js';
import { type AgentFixture, startAgent, until } from './adapters-agent.js';

/** What the application answers: the request as it reached it. */
export interface Echo {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface Served {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** requests that reached the application */
  calls: string[];
  close(): Promise<void>;
}

/** Starts the framework's server: the echo application behind the adapter. */
export type Serve = (options: PicketOptions) => Promise<Served>;

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function send(
  base: string,
  path: string,
  o: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${base}${path}`,
      { method: o.method ?? (o.body === undefined ? 'GET' : 'POST'), headers: o.headers },
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
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Sends `head` as written (no client normalises it) and resolves with the status code. */
export function rawStatus(base: string, head: string): Promise<number> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(head));
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m) resolve(Number(m[1]));
      else reject(new Error(`no HTTP response: ${JSON.stringify(text.slice(0, 80))}`));
    });
  });
}

const ALL_EVENTS = [
  'request_headers',
  'request_body',
  'response_headers',
  'response_body',
] as const;

export function adapterScenarios(framework: string, serve: Serve): void {
  describe(`${framework} adapter (real agent over UDS)`, () => {
    let fx: AgentFixture;
    let main: Served;
    let open: Served;
    let closed: Served;
    const chain = (spec: AgentSpec): PicketOptions => ({ pool: fx.pool, agents: [spec] });

    beforeAll(async () => {
      fx = await startAgent();
      main = await serve(chain(agentSpec('test', { events: ALL_EVENTS, timeoutMs: 10_000 })));
      open = await serve(chain(agentSpec('down-open', { failureMode: 'open' })));
      closed = await serve(chain(agentSpec('down-closed', { failureMode: 'closed' })));
    });
    afterAll(async () => {
      await Promise.all([main?.close(), open?.close(), closed?.close()]);
      await fx?.close();
    });

    it('a blocking agent answers without calling the application', async () => {
      const r = await send(main.url, '/blocked/page');
      expect(r.status).toBe(403);
      expect(r.body).toBe('blocked by agent\n');
      expect(main.calls).not.toContain('/blocked/page');
    });

    it('a redirect is answered with its status and Location', async () => {
      const r = await send(main.url, '/redirect');
      expect(r.status).toBe(307);
      expect(r.headers.location).toBe('https://login.example/next');
      expect(main.calls).not.toContain('/redirect');
    });

    it('header ops reach the application and the client', async () => {
      const r = await send(main.url, '/headers?q=1', {
        headers: { 'x-remove-me': 'gone', 'x-keep': 'kept' },
      });
      expect(r.status).toBe(200);
      const echo = JSON.parse(r.body) as Echo;
      expect(echo.url).toBe('/headers?q=1');
      expect(echo.headers['x-agent-req']).toBe('yes');
      expect(echo.headers['x-remove-me']).toBeUndefined();
      expect(echo.headers['x-keep']).toBe('kept');
      // response ops from the request phase and from the response phase
      expect(r.headers['x-agent-resp']).toBe('yes');
      expect(r.headers['x-agent-resp-phase']).toBe('200');
      expect(r.headers['x-app']).toBe('1');
      // the agent saw the application's response status and headers
      const seen = fx.agent.responses.at(-1);
      expect(seen?.status).toBe(200);
      expect(seen?.headers['x-app']).toEqual(['1']);
    });

    it('x-forwarded-* reach the application as the client sent them; agents see the peer', async () => {
      const r = await send(main.url, '/forwarded', { headers: { 'x-forwarded-proto': 'https' } });
      const echo = JSON.parse(r.body) as Echo;
      expect(echo.headers['x-forwarded-proto']).toBe('https');
      expect(echo.headers['x-forwarded-for']).toBeUndefined();
      expect(echo.headers['x-forwarded-host']).toBeUndefined();
      // what the engine adds for the agents, as a proxy would
      const seen = fx.agent.seen.find((e) => e.uri === '/forwarded');
      expect(seen?.headers['x-forwarded-for']).toEqual(['127.0.0.1']);
      expect(echo.headers['x-request-id']).toBe(seen?.metadata.request_id);
    });

    it('a request body rewrite reaches the application with a correct content-length', async () => {
      const r = await send(main.url, '/body', {
        headers: { 'content-type': 'text/plain' },
        body: 'please replace-me now',
      });
      expect(r.status).toBe(200);
      const echo = JSON.parse(r.body) as Echo;
      expect(echo.body).toBe('the agent rewrote this body ✓');
      expect(echo.headers['content-length']).toBe(
        String(Buffer.byteLength('the agent rewrote this body ✓')),
      );
      expect(fx.agent.requestBodies).toContain('please replace-me now');
      // an untouched body arrives as sent
      const plain = await send(main.url, '/body', {
        headers: { 'content-type': 'text/plain' },
        body: 'just text',
      });
      expect((JSON.parse(plain.body) as Echo).body).toBe('just text');
    });

    it('a response body rewrite reaches the client with a correct content-length', async () => {
      const r = await send(main.url, '/rewrite-response');
      expect(r.status).toBe(200);
      expect(r.body).toBe('{"rewritten":"ja, straße"}');
      expect(r.headers['content-length']).toBe(String(Buffer.byteLength(r.body)));
    });

    it('a response-phase block replaces what the application answered', async () => {
      const r = await send(main.url, '/response-blocked');
      expect(r.status).toBe(451);
      expect(r.body).toBe('the agent refused this response\n');
      expect(r.headers['x-app']).toBeUndefined();
      expect(main.calls).toContain('/response-blocked');
    });

    it('a client disconnect reaches the agent as a cancel', async () => {
      const before = fx.agent.hanging.length;
      const req = httpRequest(`${main.url}/hang`);
      req.on('error', () => {});
      req.end();
      const cid = await until(() => fx.agent.hanging[before], 'the agent to hold the request');
      req.destroy();
      const cancel = await until(
        () => fx.agent.cancels.find((c) => c.cid === cid),
        'the cancel to reach the agent',
      );
      expect(cancel.reason).toBe('client_disconnect');
      expect(main.calls).not.toContain('/hang');
    });

    it('hop-by-hop headers named by Connection are not visible to agents or the application', async () => {
      const r = await send(main.url, '/hygiene', {
        headers: { connection: 'keep-alive, x-secret', 'x-secret': 'for the next hop only' },
      });
      expect(r.status).toBe(200);
      const seen = fx.agent.seen.find((e) => e.uri === '/hygiene');
      expect(seen).toBeDefined();
      expect(seen?.headers['x-secret']).toBeUndefined();
      expect(seen?.headers.connection).toBeUndefined();
      expect((JSON.parse(r.body) as Echo).headers['x-secret']).toBeUndefined();
    });

    it('one path: dot segments and escapes cannot sidestep the agent (raw socket)', async () => {
      for (const path of ['/public/../blocked/x', '//blocked/x', '/%62locked/x', '/./blocked/x']) {
        const status = await rawStatus(
          main.url,
          `GET ${path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n`,
        );
        expect(status, path).toBe(403);
      }
      expect(main.calls.filter((c) => c.includes('/blocked'))).toEqual([]);
    });

    it('one Host: two Host lines are refused before any agent or the application sees them', async () => {
      const seen = fx.agent.seen.length;
      const status = await rawStatus(
        main.url,
        'GET /two-hosts HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n',
      );
      expect(status).toBe(400);
      expect(fx.agent.seen.length).toBe(seen);
      expect(main.calls).not.toContain('/two-hosts');
    });

    it('an agent down on a fail-open route lets the request through', async () => {
      const r = await send(open.url, '/open-route');
      expect(r.status).toBe(200);
      expect(open.calls).toContain('/open-route');
    });

    it('an agent down on a fail-closed route never lets the request reach the application', async () => {
      const r = await send(closed.url, '/closed-route', { body: 'some body' });
      expect(r.status).toBe(503);
      expect(closed.calls).toEqual([]);
    });
  });
}
