import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cid, requestHeaders } from '@picket/compliance';
import type { AgentProtocolError } from '@picket/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connectReverse,
  type RegistrationRejection,
  type ReverseAgent,
  type ReverseConnectionConfig,
  ReverseConnectionListener,
  type TokenVerifyInfo,
} from '../src/index.js';
import { captureLogger, stampHandler, until } from './helpers.js';

const hasOpenssl = spawnSync('which', ['openssl']).status === 0;

interface Pki {
  ca: Buffer;
  otherCa: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
}

/** A CA, a server cert (127.0.0.1 / localhost), a client cert, and an unrelated CA, via the openssl CLI. */
function makePki(dir: string): Pki {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string) =>
    ssl(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
  const leaf = (name: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    ssl(
      'req',
      '-new',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${name}`,
    );
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    );
  };
  ca('ca');
  ca('other-ca');
  leaf('server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('waf-client', 'extendedKeyUsage=clientAuth\n');
  const read = (f: string) => readFileSync(join(dir, f));
  return {
    ca: read('ca.pem'),
    otherCa: read('other-ca.pem'),
    serverCert: read('server.pem'),
    serverKey: read('server.key'),
    clientCert: read('waf-client.pem'),
    clientKey: read('waf-client.key'),
  };
}

describe.skipIf(!hasOpenssl)('TLS', () => {
  let dir: string;
  let pki: Pki;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'picket-'));
    pki = makePki(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

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
        return token === 't' && info.peerCertificate?.subject?.CN === 'waf-client';
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
    expect(log.text()).toMatch(/TLS handshake failed/);
    // TLS 1.3: the client learns of the refusal on its first read, as an alert.
    expect(agent.lastError?.message).toMatch(/certificate required|alert|ECONNRESET|closed/i);
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
