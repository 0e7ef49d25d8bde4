/** The closed set of error codes every picket package reports. */
export const ErrorCode = {
  /** could not connect (refused, no socket file, DNS, TLS setup) */
  ConnectionFailed: 'CONNECTION_FAILED',
  /** the connection or stream ended while the call was pending */
  ConnectionClosed: 'CONNECTION_CLOSED',
  /** no answer within the time allowed */
  Timeout: 'TIMEOUT',
  /** a peer sent something that is not a valid protocol message */
  InvalidMessage: 'INVALID_MESSAGE',
  /** a frame or message exceeds the size limit */
  MessageTooLarge: 'MESSAGE_TOO_LARGE',
  /** the peer speaks another protocol version */
  VersionMismatch: 'VERSION_MISMATCH',
  /** the agent refused the handshake, or it could not be completed */
  HandshakeFailed: 'HANDSHAKE_FAILED',
  /** credentials missing or wrong (reverse registration, mTLS) */
  Unauthenticated: 'UNAUTHENTICATED',
  /** the agent paused traffic with flow control */
  FlowControlPaused: 'FLOW_CONTROL_PAUSED',
  /** the call was cancelled or its signal aborted */
  Cancelled: 'CANCELLED',
  /** no usable connection (none healthy, circuit open, pool closed) */
  Unavailable: 'UNAVAILABLE',
  /** the call itself is wrong (e.g. a correlation id already in flight) */
  InvalidArgument: 'INVALID_ARGUMENT',
  /** the transport or agent cannot do this (e.g. guardrail over gRPC to a Rust proxy) */
  Unsupported: 'UNSUPPORTED',
  /** an agent handler threw */
  HandlerError: 'HANDLER_ERROR',
  /** a bug: an invariant of picket itself was broken */
  Internal: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const CODES = new Set<string>(Object.values(ErrorCode));

/** One error class for the whole toolkit: a code from a closed set, a message naming what and where, a cause. */
export class AgentProtocolError extends Error {
  override readonly name = 'AgentProtocolError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  static isCode(value: unknown): value is ErrorCode {
    return typeof value === 'string' && CODES.has(value);
  }

  /**
   * Wraps anything thrown into an AgentProtocolError. An AgentProtocolError is
   * returned as is; anything else gets `fallback` and keeps the original as `cause`.
   */
  static from(
    err: unknown,
    fallback: ErrorCode = ErrorCode.Internal,
    context?: string,
  ): AgentProtocolError {
    if (err instanceof AgentProtocolError) return err;
    const text = err instanceof Error ? err.message : String(err);
    return new AgentProtocolError(fallback, context ? `${context}: ${text}` : text, { cause: err });
  }
}

/** Shorthand for the validation error that names the offending field. */
export function invalidMessage(where: string, problem: string): AgentProtocolError {
  return new AgentProtocolError(ErrorCode.InvalidMessage, `invalid ${where}: ${problem}`);
}
