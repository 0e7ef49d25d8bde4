/** grpc-js statuses → AgentProtocolError, in one place. */
import { type ServiceError, status } from '@grpc/grpc-js';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';

const TLS_HINT =
  /certificate|self[- ]signed|altnames|ssl|tls|handshake|alert|unable to verify|unknown ca|CERT_|ERR_TLS/i;

/** True when a grpc-js error looks like a TLS / certificate failure. */
export function isTlsFailure(err: unknown): boolean {
  const e = err as Partial<ServiceError>;
  return TLS_HINT.test(`${e.details ?? ''} ${e.message ?? ''}`);
}

/** A readable `CODE_NAME: details` for a grpc-js error. */
export function describeGrpcError(err: unknown): string {
  const e = err as Partial<ServiceError>;
  if (typeof e.code === 'number') {
    const name = status[e.code] ?? String(e.code);
    // grpc-js appends an empty "Resolution note:"; drop it
    const details = (e.details || e.message || 'no details').replace(/\s*Resolution note:\s*$/, '');
    return `${name}: ${details}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The status code of a grpc-js error, if it has one. */
export function grpcCode(err: unknown): number | undefined {
  const c = (err as Partial<ServiceError>).code;
  return typeof c === 'number' ? c : undefined;
}

/** Maps an error of an established stream (every pending call fails with CONNECTION_CLOSED). */
export function streamError(err: unknown, where: string): AgentProtocolError {
  if (err instanceof AgentProtocolError) return err;
  return new AgentProtocolError(
    ErrorCode.ConnectionClosed,
    `${where}: stream failed (${describeGrpcError(err)})`,
    { cause: err },
  );
}
