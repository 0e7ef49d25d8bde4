import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentProtocolError, ErrorCode, type TlsOptions } from '../src/index.js';
import { loadTlsMaterial, requiresClientCert } from '../src/internal/index.js';

const PEM = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
const dir = mkdtempSync(join(tmpdir(), 'picket-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function refusal(t: TlsOptions, role: 'dial' | 'listen'): AgentProtocolError {
  try {
    loadTlsMaterial(t, role);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect((err as AgentProtocolError).code).toBe(ErrorCode.InvalidArgument);
    return err as AgentProtocolError;
  }
  throw new Error('expected a refusal');
}

describe('TlsOptions material (one loader for every transport)', () => {
  it('takes PEM text, PEM bytes and file paths alike', () => {
    const path = join(dir, 'ca.pem');
    writeFileSync(path, PEM);
    const bytes = new TextEncoder().encode(PEM);
    for (const ca of [PEM, bytes, path]) {
      expect(loadTlsMaterial({ ca }, 'dial').ca?.toString('utf8')).toBe(PEM);
    }
  });

  it('loads only the fields that are set', () => {
    expect(loadTlsMaterial({}, 'dial')).toEqual({});
    expect(Object.keys(loadTlsMaterial({ cert: PEM, key: PEM }, 'dial')).sort()).toEqual([
      'cert',
      'key',
    ]);
  });

  it('an unreadable path is refused naming the field', () => {
    expect(refusal({ ca: join(dir, 'missing.pem') }, 'dial').message).toMatch(
      /^tls\.ca: not PEM text and not a readable file/,
    );
  });

  it('cert without key (or key without cert) is refused', () => {
    expect(refusal({ cert: PEM }, 'dial').message).toBe('tls: cert and key must be given together');
    expect(refusal({ key: PEM }, 'dial').message).toBe('tls: cert and key must be given together');
  });

  it('a listener needs cert and key; requireClientCert needs a ca', () => {
    expect(refusal({ ca: PEM }, 'listen').message).toBe('tls needs cert and key');
    expect(refusal({ cert: PEM, key: PEM, requireClientCert: true }, 'listen').message).toBe(
      'tls.requireClientCert needs tls.ca to verify client certificates against',
    );
  });

  it('client certificates are required by default exactly when a ca is set', () => {
    expect(requiresClientCert({ cert: PEM, key: PEM })).toBe(false);
    expect(requiresClientCert({ cert: PEM, key: PEM, ca: PEM })).toBe(true);
    expect(requiresClientCert({ cert: PEM, key: PEM, ca: PEM, requireClientCert: false })).toBe(
      false,
    );
  });
});
