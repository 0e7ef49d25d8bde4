/**
 * The one mapper from Node's socket errors (errno codes, TLS and OpenSSL codes) to an
 * {@link AgentProtocolError}: a code from the closed set, a message naming the endpoint
 * and saying in words what went wrong, and the original error as `cause` (tools such as
 * the CLI read its errno code from there).
 */
import { AgentProtocolError, ErrorCode } from '../errors.js';
import { MAX_SOCKET_PATH_BYTES } from './socket-file.js';

/** What the socket was doing when it failed. */
export type SocketOperation =
  /** dialling: the event was certainly not sent */
  | 'connect'
  /** binding a server */
  | 'listen'
  /** reading or writing an established connection */
  | 'io';

/** The text OpenSSL gives a certificate verification code, for the codes a peer is likely to hit. */
const VERIFY_ERRORS: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: 'certificate has expired',
  CERT_NOT_YET_VALID: 'certificate is not yet valid',
  CERT_REVOKED: 'certificate revoked',
  CERT_SIGNATURE_FAILURE: 'certificate signature failure',
  CERT_UNTRUSTED: 'certificate not trusted',
  CERT_REJECTED: 'certificate rejected',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate',
  SELF_SIGNED_CERT_IN_CHAIN:
    'self-signed certificate in certificate chain; not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT: 'unable to get issuer certificate; not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    'unable to get local issuer certificate; not signed by a trusted CA',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unable to verify the first certificate',
  INVALID_PURPOSE: 'unsuitable certificate purpose',
  INVALID_CA: 'invalid CA certificate',
  PATH_LENGTH_EXCEEDED: 'path length constraint exceeded',
  ERR_TLS_CERT_ALTNAME_INVALID: "the certificate does not name the host (altnames don't match)",
};

/** Words for the errno codes of sockets, read after "cannot connect to <endpoint>:". */
const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused (is anything listening there?)',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a component of the path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EPIPE: 'broken pipe (the peer closed the connection)',
  ECONNRESET: 'connection reset by the peer',
  ECONNABORTED: 'connection aborted',
  ETIMEDOUT: 'timed out (the host did not answer)',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'no such address on this machine',
  ENAMETOOLONG: `path too long for a Unix socket (${MAX_SOCKET_PATH_BYTES - 1} bytes at most)`,
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed temporarily',
  ERR_TLS_HANDSHAKE_TIMEOUT: 'handshake timed out',
  ERR_SSL_WRONG_VERSION_NUMBER: 'the peer does not speak TLS (wrong version number)',
};

/** The text for an OpenSSL certificate verification code, if it is one picket knows. */
export function tlsVerifyText(code: string): string | undefined {
  return VERIFY_ERRORS[code];
}

/** The string `code` of `err` or of the first of its causes that has one. */
export function nodeErrorCode(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  for (let e = err; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code !== '') return code;
  }
  return undefined;
}

/** True for the codes of a failed TLS handshake or certificate check. */
function isTlsCode(code: string): boolean {
  return (
    code in VERIFY_ERRORS ||
    code.startsWith('ERR_TLS_') ||
    code.startsWith('ERR_SSL_') ||
    code.startsWith('ERR_OSSL_')
  );
}

/**
 * Words for a Node socket error: "connection refused (is anything listening there?)
 * (ECONNREFUSED)", "TLS: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)". An
 * unknown code keeps Node's own message.
 */
export function describeNodeError(err: unknown): string {
  const code = nodeErrorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === undefined) return message;
  const known = ERRNO_TEXT[code] ?? VERIFY_ERRORS[code];
  if (isTlsCode(code)) {
    // OpenSSL errors carry a short `reason` besides their long message
    const reason = (err as { reason?: unknown }).reason;
    const text = known ?? (typeof reason === 'string' && reason !== '' ? reason : message);
    return `TLS: ${text} (${code})`;
  }
  return `${known ?? message} (${code})`;
}

const VERBS: Readonly<Record<SocketOperation, string>> = {
  connect: 'cannot connect to',
  listen: 'cannot listen on',
  io: 'connection to',
};

/**
 * The AgentProtocolError for a Node socket error during `op` on `endpoint`
 * (`unix:/run/waf.sock`, `tls://10.0.0.5:7443` …): CONNECTION_FAILED for `connect` and
 * `listen`, CONNECTION_CLOSED for `io`. The message is
 * `[<who>: ]cannot connect to <endpoint>: <words> (<CODE>)`; `err` stays the cause. An
 * AgentProtocolError is returned as is. `sent` is recorded when given; a failed connect
 * is always `sent: false` (nothing was written).
 */
export function socketError(
  err: unknown,
  op: SocketOperation,
  endpoint: string,
  options: { who?: string; sent?: boolean } = {},
): AgentProtocolError {
  if (err instanceof AgentProtocolError) return err;
  const code = nodeErrorCode(err);
  let words = describeNodeError(err);
  const path = endpoint.startsWith('unix:') ? endpoint.slice(5) : undefined;
  const bytes = path === undefined ? 0 : Buffer.byteLength(path);
  if (
    (code === 'ENOENT' || code === 'ENAMETOOLONG' || code === 'EINVAL') &&
    bytes >= MAX_SOCKET_PATH_BYTES
  ) {
    // Node 20 truncates a long path for connect() and reports the truncated one as missing;
    // Node 24 refuses it with EINVAL
    words = `the socket path is ${bytes} bytes, longer than a Unix socket path can be (${MAX_SOCKET_PATH_BYTES - 1} bytes) (${code})`;
  }
  const prefix = options.who === undefined ? '' : `${options.who}: `;
  const what = op === 'io' ? `${VERBS.io} ${endpoint} failed` : `${VERBS[op]} ${endpoint}`;
  const sent = op === 'connect' ? false : options.sent;
  return new AgentProtocolError(
    op === 'io' ? ErrorCode.ConnectionClosed : ErrorCode.ConnectionFailed,
    `${prefix}${what}: ${words}`,
    sent === undefined ? { cause: err } : { cause: err, sent },
  );
}
