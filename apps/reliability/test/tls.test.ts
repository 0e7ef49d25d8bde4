/**
 * TLS / mTLS refusals the owning packages do not test yet: expired server and client
 * certificates (gRPC and reverse), and a reverse listener whose certificate names another
 * host. Wrong CA, wrong server name (gRPC), missing and foreign client certificates are
 * tested in packages/grpc/test/failures.test.ts and packages/reverse/test/tls.test.ts.
 */
import { EchoAgent } from '@picket/agents';
import { AgentClientV2, GrpcAgentServerV2 } from '@picket/grpc';
import { AgentProtocolError, silentLogger } from '@picket/protocol';
import {
  connectReverse,
  type RegistrationRejection,
  ReverseConnectionListener,
} from '@picket/reverse';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Certs, certs, hasOpenssl, onCleanup, runCleanups, until } from './helpers.js';

afterEach(runCleanups);

async function rejection(p: Promise<unknown>): Promise<AgentProtocolError> {
  const err = await p.then(
    (ok) => {
      if (ok instanceof AgentClientV2) onCleanup(() => ok.close());
      throw new Error('expected the connection to be refused');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentProtocolError);
  return err as AgentProtocolError;
}

describe.skipIf(!hasOpenssl())('gRPC', () => {
  let pki: Certs;
  beforeAll(() => {
    pki = certs();
  });

  async function agent(server: { cert: string; key: string }, clientCa?: string): Promise<number> {
    const s = new GrpcAgentServerV2(new EchoAgent(), {
      logger: silentLogger,
      tls: {
        cert: server.cert,
        key: server.key,
        ...(clientCa === undefined ? {} : { ca: clientCa }),
      },
    });
    onCleanup(() => s.forceShutdown());
    return (await s.listen('127.0.0.1:0')).port;
  }

  it('refuses an agent whose certificate has expired', async () => {
    const port = await agent(pki.serverExpired);
    const err = await rejection(
      AgentClientV2.connectWithTls(
        'echo',
        `localhost:${port}`,
        { ca: pki.ca },
        { timeoutMs: 10_000 },
      ),
    );
    expect(err.code).toBe('CONNECTION_FAILED');
    expect(err.message).toMatch(/expired/i);
  });

  it('the same agent with a valid certificate is accepted (control)', async () => {
    const port = await agent(pki.server);
    const t = await AgentClientV2.connectWithTls(
      'echo',
      `localhost:${port}`,
      { ca: pki.ca },
      { timeoutMs: 10_000 },
    );
    onCleanup(() => t.close());
    expect(await t.ping()).toBeGreaterThanOrEqual(0);
  });

  it('mTLS: an agent refuses a proxy whose client certificate has expired', async () => {
    const port = await agent(pki.server, pki.ca);
    const err = await rejection(
      AgentClientV2.connectWithTls(
        'echo',
        `localhost:${port}`,
        { ca: pki.ca, cert: pki.clientExpired.cert, key: pki.clientExpired.key },
        { timeoutMs: 10_000 },
      ),
    );
    expect(['CONNECTION_FAILED', 'HANDSHAKE_FAILED']).toContain(err.code);
    expect(err.message).toMatch(/TLS|certificate|expired/i);
  });
});

describe.skipIf(!hasOpenssl())('reverse connections over TLS', () => {
  let pki: Certs;
  beforeAll(() => {
    pki = certs();
  });

  async function listen(server: { cert: string; key: string }, requireClientCert = false) {
    const listener = await ReverseConnectionListener.bindTcp('127.0.0.1:0', {
      logger: silentLogger,
      handshakeTimeout: 3000,
      tls: { cert: server.cert, key: server.key, ca: pki.ca, requireClientCert },
    });
    onCleanup(() => listener.close());
    const rejected: RegistrationRejection[] = [];
    listener.on('rejected', (r) => rejected.push(r));
    return { listener, rejected };
  }

  function dial(endpoint: string, tls: Parameters<typeof connectReverse>[0]['tls']) {
    const agent = connectReverse({
      endpoint,
      agentId: 'waf',
      handler: new EchoAgent({ agentId: 'waf' }),
      tls,
      logger: silentLogger,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    });
    onCleanup(() => agent.stop());
    const failures: AgentProtocolError[] = [];
    agent.on('registrationFailed', (e) => failures.push(e));
    return { agent, failures };
  }

  it('an agent refuses a proxy whose certificate has expired and never registers', async () => {
    const { listener } = await listen(pki.serverExpired);
    const { agent, failures } = dial(listener.endpoint, { ca: pki.ca, servername: 'localhost' });
    await until(() => failures.length >= 1, 10_000, 'a registration failure');
    expect(failures[0]?.message).toMatch(/expired/i);
    expect(agent.connected).toBe(0);
    expect(listener.connectionCount).toBe(0);
  });

  it('an agent refuses a proxy whose certificate names another host', async () => {
    const { listener } = await listen(pki.serverWrongName);
    const { agent, failures } = dial(listener.endpoint, { ca: pki.ca, servername: 'localhost' });
    await until(() => failures.length >= 1, 10_000, 'a registration failure');
    expect(failures[0]?.message).toMatch(/altnames|does not match|certificate/i);
    expect(agent.connected).toBe(0);
    expect(listener.connectionCount).toBe(0);
  });

  it('a listener requiring client certificates refuses an expired one', async () => {
    const { listener, rejected } = await listen(pki.server, true);
    const { agent } = dial(listener.endpoint, {
      ca: pki.ca,
      servername: 'localhost',
      cert: pki.clientExpired.cert,
      key: pki.clientExpired.key,
    });
    // Several attempts, all refused in the TLS handshake, each naming the expiry.
    await until(() => rejected.length >= 3, 10_000, 'three TLS rejections');
    for (const r of rejected) {
      expect(r).toMatchObject({ stage: 'tls', responded: false });
      expect(r.reason).toMatch(/CERT_HAS_EXPIRED/);
    }
    expect(agent.connected).toBe(0);
    expect(listener.connectionCount).toBe(0);
  });

  it('the same listener accepts a valid client certificate (control)', async () => {
    const { listener } = await listen(pki.server, true);
    const { agent } = dial(listener.endpoint, {
      ca: pki.ca,
      servername: 'localhost',
      cert: pki.client.cert,
      key: pki.client.key,
    });
    await agent.ready({ timeoutMs: 10_000 });
    expect(listener.list('waf')[0]?.info.authorized).toBe(true);
  });
});
