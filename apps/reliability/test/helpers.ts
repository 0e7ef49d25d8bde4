/**
 * Shared helpers of the limits-and-abuse tests: temp dirs that clean up, a polling wait
 * used only as a hang guard, and a certificate set made with the openssl CLI at test time
 * (including expired certificates and one for the wrong host name).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const cleanups: (() => unknown)[] = [];

/** Registers `fn` to run in `runCleanups()` (call it from afterEach). */
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}

/** Runs every registered cleanup, newest first. */
export async function runCleanups(): Promise<void> {
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      await fn();
    } catch {
      // one failing cleanup must not keep the others from running
    }
  }
}

/** A fresh temp dir, removed at cleanup. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'picket-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Resolves once `check()` holds; rejects after `timeoutMs` (a hang guard, not a timing assertion). */
export async function until(
  check: () => boolean,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True when the openssl CLI can be run. */
export { hasOpenssl } from '@picket/compliance/testkit';

/** PEM text of every certificate and key the TLS tests use. */
export interface Certs {
  ca: string;
  /** an unrelated CA (for "wrong CA") */
  otherCa: string;
  /** server certificate for localhost / 127.0.0.1, signed by `ca` */
  server: { cert: string; key: string };
  /** the same names, but expired (2020-01-01 → 2020-01-02) */
  serverExpired: { cert: string; key: string };
  /** signed by `ca`, valid, but only for wrong.example */
  serverWrongName: { cert: string; key: string };
  /** client certificate signed by `ca` */
  client: { cert: string; key: string };
  /** client certificate signed by `ca`, expired */
  clientExpired: { cert: string; key: string };
}

let cached: Certs | undefined;

/**
 * Makes the certificates once per test file with `openssl req` / `openssl ca` (EC P-256,
 * fast). Expired ones come from `openssl ca -startdate/-enddate` with dates in 2020, which
 * every openssl since 1.1 supports (`x509 -not_before` needs 3.4+).
 */
export function certs(): Certs {
  if (cached !== undefined) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'picket-certs-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = (name: string): void =>
    ssl(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-subj',
      `/CN=picket test ${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
  makeCa('ca');
  makeCa('other-ca');
  writeFileSync(
    join(dir, 'ca.cnf'),
    [
      '[ ca ]',
      'default_ca = CA_default',
      '[ CA_default ]',
      'dir = .',
      'database = index.txt',
      'new_certs_dir = .',
      'serial = serial',
      'default_md = sha256',
      'policy = policy_any',
      'unique_subject = no',
      '[ policy_any ]',
      'commonName = supplied',
      '[ server ]',
      'subjectAltName = DNS:localhost,IP:127.0.0.1',
      'extendedKeyUsage = serverAuth',
      '[ wrong_name ]',
      'subjectAltName = DNS:wrong.example',
      'extendedKeyUsage = serverAuth',
      '[ client ]',
      'extendedKeyUsage = clientAuth',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  const leaf = (name: string, cn: string, ext: string, dates: 'valid' | 'expired') => {
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    const validity =
      dates === 'valid'
        ? ['-days', '2']
        : ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z'];
    ssl(
      'ca',
      '-batch',
      '-config',
      'ca.cnf',
      '-cert',
      'ca.crt',
      '-keyfile',
      'ca.key',
      '-in',
      `${name}.csr`,
      '-out',
      `${name}.crt`,
      '-extensions',
      ext,
      '-notext',
      ...validity,
    );
    return {
      cert: readFileSync(join(dir, `${name}.crt`), 'utf8'),
      key: readFileSync(join(dir, `${name}.key`), 'utf8'),
    };
  };
  cached = {
    ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    otherCa: readFileSync(join(dir, 'other-ca.crt'), 'utf8'),
    server: leaf('server', 'localhost', 'server', 'valid'),
    serverExpired: leaf('server-expired', 'localhost', 'server', 'expired'),
    serverWrongName: leaf('server-wrong-name', 'wrong.example', 'wrong_name', 'valid'),
    client: leaf('client', 'picket-proxy', 'client', 'valid'),
    clientExpired: leaf('client-expired', 'picket-proxy', 'client', 'expired'),
  };
  return cached;
}
