import * as tls from 'node:tls';
import { cid, hasOpenssl, requestHeaders, testCerts } from '@picket/compliance';
import type { AgentProtocolError } from '@picket/protocol';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connectReverse,
  type RegistrationRejection,
  type ReverseAgent,
  type ReverseConnectionConfig,
  ReverseConnectionListener,
  type TokenVerifyInfo,
} from '../src/index.js';
import { captureLogger, stampHandler, until } from './helpers.js';

interface Pki {
  ca: Buffer;
  otherCa: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
}

/** The shared test certificates, as Buffers. */
function makePki(): Pki {
  const c = testCerts();
  return {
    ca: Buffer.from(c.caCert),
    otherCa: Buffer.from(c.otherCaCert),
    serverCert: Buffer.from(c.serverCert),
    serverKey: Buffer.from(c.serverKey),
    clientCert: Buffer.from(c.clientCert),
    clientKey: Buffer.from(c.clientKey),
  };
}

describe.skipIf(!hasOpenssl())('TLS', () => {
  let pki: Pki;
  beforeAll(() => {
    pki = makePki();
  });

  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function bind(config: ReverseConnectionConfig & { requireClientCert?: boolean } = {}) {
    const { requireClientCert, ...rest } = config;
    const log = captureLogger();
    const listener = await ReverseConnectionListener.bindTcp('127.0.0.1:0', {
      logger: log,
      tls: {
        cert: pki.serverCert,
        key: pki.serverKey,
        ca: pki.ca,
        requireClientCert: requireClientCert === true,
      },
      ...rest,
    });
    const rejected: RegistrationRejection[] = [];
    listener.on('rejected', (r) => rejected.push(r));
    cleanups.push(() => listener.close());
    return { listener, log, rejected };
  }

  function start(
    options: Partial<Parameters<typeof connectReverse>[0]> & { endpoint: string },
  ): ReverseAgent {
    const agent = connectReverse({
      agentId: 'waf-1',
      handler: stampHandler('waf-1'),
      reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
      logger: captureLogger(),
      ...options,
    });
    cleanups.push(() => agent.stop());
    return agent;
  }

  it('registers over TLS and serves requests', async () => {
    const { listener } = await bind();
    expect(listener.endpoint).toMatch(/^tls:\/\/127\.0\.0\.1:\d+$/);
    const agent = start({ endpoint: listener.endpoint, tls: { ca: pki.ca } });
    await agent.ready({ timeoutMs: 5000 });
    const conn = listener.list('waf-1')[0];
    expect(conn?.info.transport).toBe('tls');
    const r = await conn?.sendRequestHeaders(requestHeaders(cid(), '/'), { timeoutMs: 5000 });
    expect(r?.request_headers).toContainEqual({ set: { name: 'x-agent', value: 'waf-1' } });
  });

  it('client certificate required: presented ⇒ accepted and visible to the verifier', async () => {
    const seen: TokenVerifyInfo[] = [];
    const { listener } = await bind({
      requireClientCert: true,
      verifyToken: (_id, token, info) => {
        seen.push(info);
        return token === 't' && info.peerCertificate?.subject?.CN === 'picket-proxy';
      },
    });
    const agent = start({
      endpoint: listener.endpoint,
      authToken: 't',
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
    });
    await agent.ready({ timeoutMs: 5000 });
    expect(seen[0]).toMatchObject({ transport: 'tls', authorized: true });
    expect(listener.list('waf-1')[0]?.info.authorized).toBe(true);
  });

  it('client certificate required and missing ⇒ refused', async () => {
    const { listener, rejected, log } = await bind({ requireClientCert: true });
    const agent = start({ endpoint: listener.endpoint, tls: { ca: pki.ca } });
    const failures: AgentProtocolError[] = [];
    agent.on('registrationFailed', (e) => failures.push(e));
    await until(() => failures.length >= 2 && rejected.length >= 2, 5000, 'refusals');
    expect(agent.connected).toBe(0);
    expect(listener.connectionCount).toBe(0);
    expect(rejected[0]).toMatchObject({ stage: 'tls', responded: false });
    expect(rejected[0]?.reason).toMatch(/TLS handshake failed/);
    expect(rejected[0]?.reason).toMatch(/presented no client certificate/);
    expect(rejected[0]?.remoteAddress).toBe('127.0.0.1');
    expect(log.text()).toMatch(
      /TLS handshake failed: the agent from 127\.0\.0\.1:\d+ presented no/,
    );
    // TLS 1.3: the client learns of the refusal on its first read, as an alert.
    expect(agent.lastError?.message).toMatch(/certificate required|alert|ECONNRESET|closed/i);
  });

  it('a ca without requireClientCert requires client certificates (the TlsOptions default)', async () => {
    const listener = await ReverseConnectionListener.bindTcp('127.0.0.1:0', {
      logger: captureLogger(),
      tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca },
    });
    cleanups.push(() => listener.close());
    const rejected: RegistrationRejection[] = [];
    listener.on('rejected', (r) => rejected.push(r));
    const agent = start({ endpoint: listener.endpoint, tls: { ca: pki.ca } });
    await until(() => rejected.length >= 1, 5000, 'refusal');
    expect(agent.connected).toBe(0);
    expect(rejected[0]?.reason).toMatch(/presented no client certificate/);
  });

  // Node reports a client certificate that fails verification as "socket hang up" on the
  // server (TLS 1.3 and 1.2 alike); the listener must log the certificate problem instead.
  const untrustedCases = [
    ['TLS 1.3, through connectReverse', 'TLSv1.3'],
    ['TLS 1.2, from a raw TLS client', 'TLSv1.2'],
  ] as const;
  for (const [name, version] of untrustedCases) {
    it(`${name}: an untrusted client certificate is logged as refused, naming the peer`, async () => {
      // the listener trusts only the other CA, so the agent's certificate is untrusted
      const { listener, rejected, log } = await bind({
        tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.otherCa, requireClientCert: true },
      });
      if (version === 'TLSv1.3') {
        const agent = start({
          endpoint: listener.endpoint,
          tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
        });
        await until(() => rejected.length >= 2, 5000, 'refusals');
        expect(agent.connected).toBe(0);
      } else {
        const { port } = listener.address();
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          ca: pki.ca,
          servername: 'localhost',
          cert: pki.clientCert,
          key: pki.clientKey,
          maxVersion: 'TLSv1.2',
        });
        socket.on('error', () => undefined);
        cleanups.push(() => void socket.destroy());
        await until(() => rejected.length >= 1, 5000, 'a refusal');
      }
      expect(listener.connectionCount).toBe(0);
      expect(rejected[0]).toMatchObject({
        stage: 'tls',
        responded: false,
        code: 'UNAUTHENTICATED',
        remoteAddress: '127.0.0.1',
      });
      expect(rejected[0]?.reason).toMatch(
        /^TLS handshake failed: client certificate from 127\.0\.0\.1:\d+ refused: [A-Z_]+ \(.*not signed by a trusted CA\)$/,
      );
      const text = log.text();
      expect(text).toMatch(
        /warn dropping reverse connection: TLS handshake failed: client certificate from 127\.0\.0\.1:\d+ refused/,
      );
      expect(text).not.toMatch(/socket hang up/);
    });
  }

  it('a server certificate presented as a client certificate is refused for its purpose', async () => {
    const { listener, rejected, log } = await bind({ requireClientCert: true });
    const agent = start({
      endpoint: listener.endpoint,
      tls: { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey },
    });
    await until(() => rejected.length >= 1, 5000, 'a refusal');
    expect(agent.connected).toBe(0);
    expect(rejected[0]?.reason).toMatch(
      /client certificate from 127\.0\.0\.1:\d+ refused: INVALID_PURPOSE \(unsuitable certificate purpose/,
    );
    expect(log.text()).toMatch(/refused: INVALID_PURPOSE/);
    expect(log.text()).not.toMatch(/socket hang up/);
  });

  it('wrong CA ⇒ the agent reports a certificate error and never registers', async () => {
    const { listener } = await bind();
    const agent = start({ endpoint: listener.endpoint, tls: { ca: pki.otherCa } });
    const [err] = await new Promise<[AgentProtocolError]>((r) =>
      agent.once('registrationFailed', (e) => r([e])),
    );
    expect(err.code).toBe('CONNECTION_FAILED');
    expect(err.message).toMatch(/cannot connect to tls:\/\/127\.0\.0\.1:\d+: .*certificate/i);
    expect(agent.connected).toBe(0);
    expect(listener.connectionCount).toBe(0);
  });

  it('a plain TCP agent against a TLS listener is dropped, not registered', async () => {
    const { listener, rejected } = await bind({ handshakeTimeout: 300 });
    const { port } = listener.address();
    const agent = start({ endpoint: `tcp://127.0.0.1:${port}`, registrationTimeoutMs: 500 });
    const failures: AgentProtocolError[] = [];
    agent.on('registrationFailed', (e) => failures.push(e));
    await until(() => failures.length >= 1 && rejected.length >= 1, 5000, 'a failure');
    expect(listener.connectionCount).toBe(0);
    expect(rejected[0]?.stage).toBe('tls');
  });
});
