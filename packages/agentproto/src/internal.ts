/**
 * Package-private knobs (not exported from index.ts): a decode option the Mux uses for frames
 * whose bytes it owns.
 */
import type { CborDecodeOptions } from './cbor.js';

/**
 * With this option set, definite-length byte strings decode as `Buffer` views of the input
 * instead of copies. Only for input nobody writes to afterwards (chunks a Readable emitted).
 */
export const byteStringViews: unique symbol = Symbol('agentproto.byteStringViews');

export interface InternalDecodeOptions extends CborDecodeOptions {
  [byteStringViews]?: boolean;
}
