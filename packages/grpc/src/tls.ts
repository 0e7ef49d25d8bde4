/**
 * grpc-js credentials for both roles from the one `TlsOptions` of `@picket/protocol`
 * (PEM text, PEM bytes or a path to a PEM file in `ca` / `cert` / `key`).
 */
import { type ChannelCredentials, credentials, ServerCredentials } from '@grpc/grpc-js';
import type { TlsOptions } from '@picket/protocol';
import { loadTlsMaterial, requiresClientCert } from '@picket/protocol/internal';

/** grpc-js channel credentials for the dialing side. */
export function clientCredentials(tls: TlsOptions): ChannelCredentials {
  const m = loadTlsMaterial(tls, 'dial');
  return credentials.createSsl(
    m.ca ?? null,
    m.key ?? null,
    m.cert ?? null,
    tls.rejectUnauthorized === false ? { rejectUnauthorized: false } : {},
  );
}

/** grpc-js server credentials: insecure without TLS, TLS or mTLS otherwise. */
export function serverCredentials(tls: TlsOptions | undefined): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  const m = loadTlsMaterial(tls, 'listen');
  return ServerCredentials.createSsl(
    m.ca ?? null,
    [{ cert_chain: m.cert as Buffer, private_key: m.key as Buffer }],
    requiresClientCert(tls),
  );
}
