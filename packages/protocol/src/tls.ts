/**
 * The one TLS settings type of every picket transport and both roles, in Node's `tls` names.
 */

/** PEM text (a string containing `-----BEGIN`), PEM bytes, or a path to a PEM file. */
export type PemSource = string | Uint8Array;

/**
 * TLS settings, the same shape for the gRPC client and server, the reverse listener and agent,
 * the `@picket/transport` facade and the CLI.
 *
 * - Dialing (a proxy towards a gRPC agent, a reverse agent towards the proxy): `ca` verifies the
 *   peer's certificate (default: Node's public roots); `cert` + `key` for mTLS; `servername` is
 *   the name the peer's certificate must carry (default: the host dialled);
 *   `rejectUnauthorized: false` turns verification off (tests only).
 * - Listening (gRPC server, reverse listener): `cert` + `key` are required; `ca` verifies
 *   client certificates; `requireClientCert` (default: true when `ca` is set) refuses peers
 *   without one. With `requireClientCert: false` and a `ca`, a certificate is asked for but
 *   not required.
 */
export interface TlsOptions {
  /** CA certificate(s) to verify the peer against */
  ca?: PemSource;
  /** own certificate chain (listening: required; dialing: for mTLS, with `key`) */
  cert?: PemSource;
  /** private key of `cert` (unencrypted) */
  key?: PemSource;
  /** dialing: the name the peer's certificate must carry, instead of the host dialled */
  servername?: string;
  /** dialing: verify the peer's certificate (default true; `false` is for tests only) */
  rejectUnauthorized?: boolean;
  /** listening: refuse peers without a client certificate signed by `ca` (default: `ca` is set) */
  requireClientCert?: boolean;
}
