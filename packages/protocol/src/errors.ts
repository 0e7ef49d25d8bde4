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

/**
 * The brand every AgentProtocolError carries. `Symbol.for` makes it the same symbol in
 * every copy of this module, so an error made by another installed copy of
 * `@picket/protocol` (two versions in one `node_modules` tree) is still recognised.
 */
const BRAND = Symbol.for('picket.AgentProtocolError');
const ownInstance = Function.prototype[Symbol.hasInstance];

/** Options of an {@link AgentProtocolError}. */
export interface AgentProtocolErrorOptions {
  cause?: unknown;
  /**
   * Whether the event may have reached the agent: `false` when the transport knows it
   * never wrote it (so a retry elsewhere cannot duplicate it), `true` once it was
   * written, absent when unknown or not about a call.
   */
  sent?: boolean;
}

/** One error class for the whole toolkit: a code from a closed set, a message naming what and where, a cause. */
export class AgentProtocolError extends Error {
  override readonly name = 'AgentProtocolError';
  readonly code: ErrorCode;
  /** See {@link AgentProtocolErrorOptions.sent}; absent when unknown. */
  declare readonly sent?: boolean;

  constructor(code: ErrorCode, message: string, options?: AgentProtocolErrorOptions) {
    super(
      message,
      options !== undefined && 'cause' in options ? { cause: options.cause } : undefined,
    );
    this.code = code;
    if (options?.sent !== undefined) (this as { sent?: boolean }).sent = options.sent;
  }

  /**
   * `err instanceof AgentProtocolError` is also true for an error made by another copy
   * of this package (it carries the shared brand and a known code): the pool's retry and
   * failure decisions must not depend on which copy of @picket/protocol a transport
   * loaded. Subclasses keep the ordinary prototype check.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: the class instanceof asks about, maybe a subclass
    if (ownInstance.call(this, value)) return true;
    // biome-ignore lint/complexity/noThisInStatic: only the base class accepts other copies
    if (this !== AgentProtocolError) return false;
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[BRAND] === true &&
      AgentProtocolError.isCode((value as { code?: unknown }).code)
    );
  }

  static isCode(value: unknown): value is ErrorCode {
    return typeof value === 'string' && CODES.has(value);
  }

  /**
   * Wraps anything thrown into an AgentProtocolError. An AgentProtocolError (of any
   * copy of this package) is returned as is; anything else gets `fallback` and keeps the
   * original as `cause`.
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
Object.defineProperty(AgentProtocolError.prototype, BRAND, { value: true });

/** Shorthand for the validation error that names the offending field. */
export function invalidMessage(where: string, problem: string): AgentProtocolError {
  return new AgentProtocolError(ErrorCode.InvalidMessage, `invalid ${where}: ${problem}`);
}
