import { readFileSync } from 'node:fs';
import { AgentProtocolError, ErrorCode } from '../errors.js';
import type { PemSource, TlsOptions } from '../tls.js';

/** Reads a PEM source into a Buffer; `what` names the option in errors (e.g. `tls.ca`). */
export function loadPem(source: PemSource, what: string): Buffer {
  if (typeof source !== 'string') {
    return Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  }
  if (source.includes('-----BEGIN')) return Buffer.from(source, 'utf8');
  try {
    return readFileSync(source);
  } catch (err) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `${what}: not PEM text and not a readable file (${source}): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** The PEM material of a {@link TlsOptions}, loaded (only the fields that are set). */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * Loads `ca`, `cert` and `key`. `role` says which side: listening needs `cert` and `key`, and
 * `requireClientCert` needs a `ca`; dialing needs `cert` and `key` together or not at all.
 * Errors are `INVALID_ARGUMENT` naming the field under `prefix` (default `tls`).
 */
export function loadTlsMaterial(
  t: TlsOptions,
  role: 'dial' | 'listen',
  prefix = 'tls',
): TlsMaterial {
  if (role === 'listen' && (t.cert === undefined || t.key === undefined)) {
    throw new AgentProtocolError(ErrorCode.InvalidArgument, `${prefix} needs cert and key`);
  }
  if ((t.cert === undefined) !== (t.key === undefined)) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `${prefix}: cert and key must be given together`,
    );
  }
  if (role === 'listen' && t.requireClientCert === true && t.ca === undefined) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `${prefix}.requireClientCert needs ${prefix}.ca to verify client certificates against`,
    );
  }
  const out: TlsMaterial = {};
  if (t.ca !== undefined) out.ca = loadPem(t.ca, `${prefix}.ca`);
  if (t.cert !== undefined) out.cert = loadPem(t.cert, `${prefix}.cert`);
  if (t.key !== undefined) out.key = loadPem(t.key, `${prefix}.key`);
  return out;
}

/** Whether a listener must refuse peers without a client certificate (default: a `ca` is set). */
export const requiresClientCert = (t: TlsOptions): boolean =>
  t.requireClientCert ?? t.ca !== undefined;
