/**
 * Test utilities shared by every picket package's tests: temp dirs and socket
 * paths, a logger that records, a polling hang guard, TLS material made at
 * test time with the openssl CLI, and the spec's golden vectors.
 *
 * Free of vitest, so a plain Node program (the fuzz harness) can import it as
 * `@picket/compliance/testkit`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogFields, Logger, RequestHeadersEvent } from '@picket/protocol';

/** A fresh temp dir, removed by `cleanup()`. */
export function tempDir(): { dir: string; path(name: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'picket-'));
  return {
    dir,
    path: (name) => join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A fresh temp dir with a socket path in it; `cleanup()` removes it. */
export function tempSocket(name = 'agent.sock'): { dir: string; path: string; cleanup(): void } {
  const t = tempDir();
  return { dir: t.dir, path: t.path(name), cleanup: t.cleanup };
}

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields?: LogFields;
}

/** A logger that records everything (debug included), to assert on logged reasons. */
export function captureLogger(): Logger & { entries: LogEntry[]; text(): string } {
  const entries: LogEntry[] = [];
  const at =
    (level: LogEntry['level']) =>
    (message: string, fields?: LogFields): void => {
      entries.push({ level, message, fields });
    };
  const show = (_k: string, v: unknown): unknown =>
    v instanceof Error ? `${v.message} ${String(v.cause ?? '')}` : v;
  return {
    entries,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    text: () =>
      entries.map((e) => `${e.level} ${e.message} ${JSON.stringify(e.fields, show)}`).join('\n'),
  };
}

/** Resolves when `check()` holds (polling); rejects after `timeoutMs`. A hang guard, not a timing assertion. */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** True when the openssl CLI can be run. */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface TestCerts {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** a CA that signed none of the above, for "wrong CA" tests */
  otherCaCert: string;
  paths: {
    caCert: string;
    serverCert: string;
    serverKey: string;
    clientCert: string;
    clientKey: string;
  };
}

let cached: TestCerts | undefined;

/**
 * A CA, a server certificate for `localhost` / `127.0.0.1`, a client
 * certificate and an unrelated CA, made once per process with the openssl CLI
 * (EC P-256 keeps it fast) and removed at exit.
 */
export function testCerts(): TestCerts {
  if (cached) return cached;
  const { dir, cleanup } = tempDir();
  process.on('exit', cleanup);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string, cn: string) =>
    ssl(
      'req',
      '-x509',
      ...ec,
      ...['-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`],
      ...['-addext', 'basicConstraints=critical,CA:TRUE'],
      ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    );
  const leaf = (name: string, cn: string, ext: string) => {
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    ssl(
      ...['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key'],
      ...['-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`],
    );
  };
  ca('ca', 'picket test CA');
  ca('other-ca', 'unrelated test CA');
  leaf(
    'server',
    'localhost',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n',
  );
  leaf('client', 'picket-proxy', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  const path = (f: string) => join(dir, f);
  const read = (f: string) => readFileSync(path(f), 'utf8');
  cached = {
    dir,
    caCert: read('ca.crt'),
    serverCert: read('server.crt'),
    serverKey: read('server.key'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
    otherCaCert: read('other-ca.crt'),
    paths: {
      caCert: path('ca.crt'),
      serverCert: path('server.crt'),
      serverKey: path('server.key'),
      clientCert: path('client.crt'),
      clientKey: path('client.key'),
    },
  };
  return cached;
}

/** One golden vector of discrepancies-and-vectors.md Part B: a UDS, reverse or v1 frame. */
export interface GoldenVector {
  /** V1, V1b … V11d, as the spec names it */
  id: string;
  title: string;
  kind: 'uds' | 'reverse' | 'v1';
  /** the frame's type byte (null for v1, whose frames have none) */
  type: number | null;
  payloadLength: number;
  /** the whole frame, header included, as hex */
  frameHex: string;
  /** the exact UTF-8 payload, for the JSON vectors */
  payloadText?: string;
}

let goldenCache: readonly GoldenVector[] | undefined;

/**
 * Every golden vector, in spec order. Read once from this package's
 * `fixtures/golden-frames.json` (a verbatim copy of the spec's frames, kept in
 * the repo so tests do not depend on anything outside it).
 */
export function goldenVectors(): readonly GoldenVector[] {
  goldenCache ??= (
    JSON.parse(
      readFileSync(new URL('../fixtures/golden-frames.json', import.meta.url), 'utf8'),
    ) as { vectors: GoldenVector[] }
  ).vectors;
  return goldenCache;
}

/** Golden vector `id`; throws when the spec has no such vector. */
export function goldenVector(id: string): GoldenVector {
  const v = goldenVectors().find((x) => x.id === id);
  if (v === undefined) throw new Error(`no golden vector ${id}`);
  return v;
}

/** Golden frame `id` as fresh bytes, header included (v2: 5 bytes; v1: 4). */
export function goldenFrame(id: string): Buffer {
  return Buffer.from(goldenVector(id).frameHex, 'hex');
}

/** The payload of golden frame `id`: the frame without its 5-byte (v1: 4-byte) header. */
export function goldenPayload(id: string): Buffer {
  const v = goldenVector(id);
  return Buffer.from(v.frameHex, 'hex').subarray(v.kind === 'v1' ? 4 : 5);
}

/**
 * The request the golden vectors V3, V4, V10a and G6 encode (`GET /admin/secret`
 * from 127.0.0.1:54321, correlation id `req-1`), or the same request with
 * another correlation id (also used as request id) and uri.
 */
export function goldenRequestHeaders(
  correlationId = 'req-1',
  uri = '/admin/secret',
): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: correlationId,
      request_id: correlationId,
      client_ip: '127.0.0.1',
      client_port: 54321,
      server_name: 'example.com',
      protocol: 'HTTP/1.1',
      tls_version: null,
      tls_cipher: null,
      route_id: 'default',
      upstream_id: null,
      timestamp: '2026-01-01T00:00:00Z',
    },
    method: 'GET',
    uri,
    headers: { host: ['example.com'] },
  };
}
