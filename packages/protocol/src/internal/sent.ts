import type { AgentProtocolError } from '../errors.js';

/**
 * Records on `err` whether its call's event may have reached the agent (see
 * `AgentProtocolError.sent`), unless the transport already stated it: the fact closest to
 * the wire wins. Returns `err` itself, so a close error shared by every pending call stays
 * one object.
 */
export function withSent(err: AgentProtocolError, sent: boolean): AgentProtocolError {
  if (err.sent === undefined) {
    Object.defineProperty(err, 'sent', { value: sent, enumerable: true });
  }
  return err;
}
