/**
 * TLS material and grpc-js credentials for both roles. Certificate and key fields accept
 * PEM text (a string containing `-----BEGIN`), PEM bytes (Buffer / Uint8Array) or a path
 * to a PEM file.
 */
import { readFileSync } from 'node:fs';
import { type ChannelCredentials, credentials, ServerCredentials } from '@grpc/grpc-js';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';

/** PEM text, PEM bytes, or a file path. */
export type PemSource = string | Uint8Array;

/** Proxy-side TLS settings (the seed's `TlsConfig`, plus `serverNameOverride`). */
export interface TlsConfig {
  /** CA certificate(s) that sign the agent's certificate; default: Node's public root store */
  caCert?: PemSource;
  /** client certificate chain, for mTLS (needs `clientKey`) */
  clientCert?: PemSource;
  /** client private key, for mTLS (needs `clientCert`) */
  clientKey?: PemSource;
  /** verify the agent's certificate chain and name (default true). `false` is for tests only. */
  verifyServer?: boolean;
  /** name to verify the agent's certificate against instead of the target host (`grpc.ssl_target_name_override`) */
  serverNameOverride?: string;
}

/** Agent-side TLS settings. */
export interface ServerTlsConfig {
  /** server certificate chain */
  cert: PemSource;
  /** server private key */
  key: PemSource;
  /** CA certificate(s) that sign client certificates (enables mTLS) */
  ca?: PemSource;
  /** refuse clients without a certificate signed by `ca` (default: true when `ca` is set) */
  requireClientCert?: boolean;
}

/** Reads a PEM source into a Buffer; `what` names the field in errors. */
export function loadPem(source: PemSource, what: string): Buffer {
  if (typeof source !== 'string')
    return Buffer.from(source.buffer, source.byteOffset, source.byteLength);
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

/** grpc-js channel credentials for a TLS config. */
export function clientCredentials(tls: TlsConfig): ChannelCredentials {
  if ((tls.clientCert === undefined) !== (tls.clientKey === undefined)) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      'tls: clientCert and clientKey must be given together',
    );
  }
  const ca = tls.caCert !== undefined ? loadPem(tls.caCert, 'tls.caCert') : null;
  const key = tls.clientKey !== undefined ? loadPem(tls.clientKey, 'tls.clientKey') : null;
  const cert = tls.clientCert !== undefined ? loadPem(tls.clientCert, 'tls.clientCert') : null;
  return credentials.createSsl(
    ca,
    key,
    cert,
    tls.verifyServer === false ? { rejectUnauthorized: false } : {},
  );
}

/** grpc-js server credentials: insecure without TLS, TLS or mTLS otherwise. */
export function serverCredentials(tls: ServerTlsConfig | undefined): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  const ca = tls.ca !== undefined ? loadPem(tls.ca, 'tls.ca') : null;
  const requireClientCert = tls.requireClientCert ?? ca !== null;
  if (requireClientCert && !ca) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      'tls.requireClientCert needs tls.ca to verify client certificates against',
    );
  }
  return ServerCredentials.createSsl(
    ca,
    [{ cert_chain: loadPem(tls.cert, 'tls.cert'), private_key: loadPem(tls.key, 'tls.key') }],
    requireClientCert,
  );
}
