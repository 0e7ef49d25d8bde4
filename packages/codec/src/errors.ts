import { AgentProtocolError, ErrorCode } from '@picket/protocol';

/** Short text of anything thrown, for wrapping into an AgentProtocolError message. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  try {
    return String(err);
  } catch {
    return 'unprintable error';
  }
}

/**
 * Runs `fn` and turns whatever it throws into `INVALID_MESSAGE`. Validation
 * errors (already INVALID_MESSAGE, naming the field) pass through unchanged;
 * anything else (a parser error, a RangeError from a too-deep input) becomes
 * `<prefix>: <message>`, e.g. `invalid msgpack in RequestHeaders payload: …`.
 * Bad bytes must never surface as another kind of exception, or a transport
 * might take a peer's garbage for its own bug.
 */
export function guardDecode<T>(prefix: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof AgentProtocolError && err.code === ErrorCode.InvalidMessage) throw err;
    throw new AgentProtocolError(ErrorCode.InvalidMessage, `${prefix}: ${errorText(err)}`, {
      cause: err,
    });
  }
}

/** Parses `bytes` with `parse`, then validates with `validate`, each failure named after `what`. */
export function decodeMessage<T>(
  encodingLabel: string,
  what: string,
  bytes: Uint8Array,
  parse: (bytes: Uint8Array) => unknown,
  validate: (value: unknown) => T,
): T {
  if (!(bytes instanceof Uint8Array)) {
    throw new AgentProtocolError(ErrorCode.InvalidArgument, `${what} payload must be a Uint8Array`);
  }
  const raw = guardDecode(`invalid ${encodingLabel} in ${what} payload`, () => parse(bytes));
  return guardDecode(`invalid ${what} payload`, () => validate(raw));
}

/** A value handed to an encoder that cannot go on the wire (a caller bug, not a peer's). */
export function cannotEncode(path: string, problem: string): AgentProtocolError {
  return new AgentProtocolError(ErrorCode.InvalidArgument, `cannot encode ${path}: ${problem}`);
}

/**
 * Runs `encode` and turns a foreign exception (e.g. a BigInt JSON.stringify
 * cannot write, a cyclic object) into `INVALID_ARGUMENT` naming the message.
 */
export function guardEncode<T>(encoding: string, what: string, encode: () => T): T {
  try {
    return encode();
  } catch (err) {
    if (err instanceof AgentProtocolError) throw err;
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `cannot encode ${what} as ${encoding}: ${errorText(err)}`,
      { cause: err },
    );
  }
}
