/**
 * Package-private call options (not exported from index.ts), for the transport: its call
 * engine already keeps the deadline and the cancel of every call, so the caller needs neither
 * a timer nor an AbortSignal of its own per call.
 */
import type { PluginCallOptions } from './caller.js';

/** The caller hands its cancel function to this; no timer is armed for the call. */
export const externalDeadline: unique symbol = Symbol('prox.externalDeadline');

export interface InternalCallOptions extends PluginCallOptions {
  /**
   * Whoever calls keeps the deadline and cancels through the function it is given (a
   * cancelled call fails CANCELLED and its connection is discarded, as an abort does).
   */
  [externalDeadline]?: (cancel: () => void) => void;
}
