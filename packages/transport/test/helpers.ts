/** Test helpers: temp dirs, openssl certificates made at test time, agent servers. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EchoAgent } from '@picket/agents';
import { GrpcAgentServerV2 } from '@picket/grpc';
import type { AgentHandler, AgentResponse, AgentTransport } from '@picket/protocol';
import { UdsAgentServerV2, silentLogger as udsSilent } from '@picket/uds';
import { AgentServer, silentLogger as v1Silent } from '@picket/v1';

/** A fresh temp dir, removed by `cleanup()`. */
export function tempDir(): { dir: string; path(name: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'picket-'));
  return {
    dir,
    path: (name) => join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Closes everything registered, in reverse order; for afterEach. */
export class Closer {
  private items: (() => Promise<unknown> | unknown)[] = [];
  add<T>(item: T, close: (t: T) => Promise<unknown> | unknown): T {
    this.items.push(() => close(item));
    return item;
  }
  async closeAll(): Promise<void> {
    const items = this.items.splice(0).reverse();
    for (const f of items)
      await Promise.resolve()
        .then(f)
        .catch(() => {});
  }
}

export interface Certs {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

let certs: Certs | undefined;

/** A CA, a server certificate for localhost / 127.0.0.1 and a client certificate (EC P-256). */
export function testCerts(): Certs {
  if (certs) return certs;
  const { dir, cleanup } = tempDir();
  process.on('exit', cleanup);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=picket transport test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  const leaf = (name: string, cn: string, ext: string) => {
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    );
  };
  leaf(
    'server',
    'localhost',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n',
  );
  leaf('client', 'picket-proxy', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  certs = {
    ca: read('ca.crt'),
    serverCert: read('server.crt'),
    serverKey: read('server.key'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
  };
  return certs;
}

/** An echo agent with a given id. */
export const echo = (agentId: string): AgentHandler => new EchoAgent({ agentId });

export async function startUds(path: string, handler: AgentHandler): Promise<UdsAgentServerV2> {
  const server = new UdsAgentServerV2(path, handler, { logger: udsSilent });
  await server.listen();
  return server;
}

export async function startV1(path: string, handler: AgentHandler): Promise<AgentServer> {
  const server = new AgentServer('v1-agent', path, handler, { logger: v1Silent });
  await server.run();
  return server;
}

/** A gRPC agent on 127.0.0.1 (a free port), plaintext or TLS / mTLS. */
export async function startGrpc(
  handler: AgentHandler,
  tls?: { mtls?: boolean },
): Promise<{ server: GrpcAgentServerV2; port: number }> {
  const c = tls ? testCerts() : undefined;
  const server = new GrpcAgentServerV2(handler, {
    ...(c && {
      tls: { cert: c.serverCert, key: c.serverKey, ...(tls?.mtls && { ca: c.ca }) },
    }),
  });
  const bound = await server.listen('127.0.0.1:0');
  return { server, port: bound.port };
}

let seq = 0;
/** A request-headers event. */
export function headers(uri = '/', correlationId = `cid-${process.pid}-${++seq}`) {
  return {
    metadata: {
      correlation_id: correlationId,
      request_id: correlationId,
      client_ip: '127.0.0.1',
      client_port: 40000,
      protocol: 'HTTP/1.1',
      timestamp: '2026-01-01T00:00:00Z',
    },
    method: 'GET',
    uri,
    headers: { host: ['example.com'] },
  };
}

/** The value of a header the agent set, if any. */
export function setHeader(r: AgentResponse, name: string): string | undefined {
  for (const op of r.request_headers) {
    if ('set' in op && op.set.name.toLowerCase() === name.toLowerCase()) return op.set.value;
  }
  return undefined;
}

/** Sends request headers and checks the echo agent answered on this transport. */
export async function roundTrip(t: AgentTransport, uri = '/hello'): Promise<AgentResponse> {
  return t.sendRequestHeaders(headers(uri), { timeoutMs: 5000 });
}
