/**
 * The server as an AgentServer: listen (plaintext, TLS, mTLS) and its endpoints, bad
 * options, and drain / close letting open streams finish while refusing new ones.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, status } from '@grpc/grpc-js';
import { hasOpenssl, testCerts } from '@picket/compliance';
import {
  AgentProtocolError,
  allow,
  type RequestHeadersEvent,
  silentLogger,
} from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import { ExtProcServer } from '../src/index.js';
import { requestHeaders, responseHeaders, start, TestAgent } from './helpers.js';

describe('listen', () => {
  it('resolves to extproc://host:port with the real port, and to nothing after close', async () => {
    const server = new ExtProcServer(new TestAgent(), {
      address: 'extproc://127.0.0.1:0',
      logger: silentLogger,
    });
    expect(server.endpoints).toEqual([]);
    const [endpoint] = await server.listen();
    expect(endpoint).toMatch(/^extproc:\/\/127\.0\.0\.1:\d+$/);
    expect(endpoint).not.toMatch(/:0$/);
    expect(server.endpoints).toEqual([endpoint]);
    await server.close();
    expect(server.endpoints).toEqual([]);
  });

  it('refuses addresses and options it cannot serve, naming the problem', async () => {
    const bad = async (address: string | undefined, o = {}) => {
      const s = new ExtProcServer(new TestAgent(), { address, logger: silentLogger, ...o });
      try {
        await s.listen();
        return 'listened';
      } catch (err) {
        expect(err).toBeInstanceOf(AgentProtocolError);
        return (err as Error).message;
      } finally {
        await s.close();
      }
    };
    expect(await bad(undefined)).toMatch(/needs options.address/);
    expect(await bad('grpc://127.0.0.1:0')).toMatch(/use host:port, extproc:\/\/host:port/);
    expect(await bad('extprocs://127.0.0.1:0')).toMatch(/asks for TLS: give options.tls/);
    expect(await bad('127.0.0.1:0', { tls: {} })).toMatch(/needs cert and key/);
    expect(await bad('999.1.1.1:0')).toMatch(/cannot listen on 999\.1\.1\.1:0/);
    expect(() => new ExtProcServer(new TestAgent(), { maxMessageSize: 0 })).toThrow(
      /maxMessageSize must be a positive integer/,
    );
    expect(() => new ExtProcServer(new TestAgent(), { errorPolicy: 'allow' as never })).toThrow(
      /never becomes allow/,
    );
  });
});

describe('Unix socket', () => {
  it('listens on extproc+unix:/path with mode 0660 and removes the file on close', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'picket-extproc-'));
    try {
      const path = join(dir, 'extproc.sock');
      const { server, endpoint, stream } = await start(new TestAgent(), {
        address: `extproc+unix:${path}`,
      });
      expect(endpoint).toBe(`extproc+unix:${path}`);
      expect(statSync(path).mode & 0o777).toBe(0o660);
      const s = stream();
      expect((await s.exchange(requestHeaders('/block'))).immediate_response?.status?.code).toBe(
        403,
      );
      await s.finish();
      await server.close();
      expect(existsSync(path)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses TLS on a Unix socket', async () => {
    const s = new ExtProcServer(new TestAgent(), {
      address: 'extproc+unix:/tmp/never.sock',
      tls: { cert: 'x', key: 'y' },
      logger: silentLogger,
    });
    await expect(s.listen()).rejects.toThrow(/is a Unix socket: TLS is for extprocs/);
  });
});

describe.skipIf(!hasOpenssl())('TLS', () => {
  it('serves extprocs:// to a client that trusts the CA', async () => {
    const c = testCerts();
    const agent = new TestAgent();
    const { endpoint, stream } = await start(
      agent,
      { address: 'extprocs://127.0.0.1:0', tls: { cert: c.serverCert, key: c.serverKey } },
      credentials.createSsl(Buffer.from(c.caCert)),
    );
    expect(endpoint).toMatch(/^extprocs:\/\/127\.0\.0\.1:\d+$/);
    const s = stream();
    expect((await s.exchange(requestHeaders('/block'))).immediate_response?.status?.code).toBe(403);
    expect(await s.finish()).toBeUndefined();
  });

  it('with a ca requires the client certificate (mTLS)', async () => {
    const c = testCerts();
    const tls = { cert: c.paths.serverCert, key: c.paths.serverKey, ca: c.paths.caCert };
    const withCert = credentials.createSsl(
      Buffer.from(c.caCert),
      Buffer.from(c.clientKey),
      Buffer.from(c.clientCert),
    );
    const ok = await start(new TestAgent(), { address: 'extprocs://127.0.0.1:0', tls }, withCert);
    const s = ok.stream();
    expect((await s.exchange(requestHeaders('/'))).response).toBe('request_headers');
    await s.finish();

    const anon = await start(
      new TestAgent(),
      { address: 'extprocs://127.0.0.1:0', tls },
      credentials.createSsl(Buffer.from(c.caCert)),
    );
    const refused = anon.stream();
    refused.send(requestHeaders('/'));
    const err = await refused.done;
    expect(err?.code).toBe(status.UNAVAILABLE);
  });

  it('a plaintext client cannot talk to a TLS server', async () => {
    const c = testCerts();
    const { stream } = await start(
      new TestAgent(),
      { address: 'extprocs://127.0.0.1:0', tls: { cert: c.serverCert, key: c.serverKey } },
      credentials.createInsecure(),
    );
    const s = stream();
    s.send(requestHeaders('/'));
    expect((await s.done)?.code).toBe(status.UNAVAILABLE);
  });
});

describe('drain and close', () => {
  it('let an open stream finish, refuse new streams, then stop', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const handler = {
      capabilities: () => new TestAgent().capabilities(),
      onRequestHeaders: async (e: RequestHeadersEvent) => {
        if (e.uri === '/slow') await gate;
        return allow();
      },
    };
    const { server, stream } = await start(handler);
    const open = stream();
    const answer = open.exchange(requestHeaders('/slow', { endOfStream: false }));
    await new Promise((r) => setTimeout(r, 50));
    const drained = server.drain(10_000);
    const late = stream();
    late.send(requestHeaders('/'));
    const err = await late.done;
    expect(err?.code).toBe(status.UNAVAILABLE);
    release();
    expect((await answer).response).toBe('request_headers');
    await drained;
    expect(server.endpoints).toEqual([]);
  });

  it('ends streams still open after the grace with UNAVAILABLE and aborts their handlers', async () => {
    const agent = new TestAgent();
    const { server, stream } = await start(agent);
    const s = stream();
    s.send(requestHeaders('/hang'));
    for (let i = 0; i < 200 && agent.seen.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await server.drain(50);
    const err = await s.done;
    expect(err?.code).toBe(status.UNAVAILABLE);
    expect(err?.details).toMatch(/agent server closing/);
    expect(agent.seen[0]?.ctx.signal.aborted).toBe(true);
  });

  it('a finished stream ends with OK once Envoy half-closes', async () => {
    const { server, stream } = await start();
    const s = stream();
    await s.exchange(requestHeaders('/', { endOfStream: true }));
    await s.exchange(responseHeaders('200'));
    expect(await s.finish()).toBeUndefined();
    expect(server.streams).toBe(0);
  });
});
