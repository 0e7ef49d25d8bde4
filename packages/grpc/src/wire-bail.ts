/**
 * Thrown by the wire primitives and the one-pass encoders/decoders for a value or input
 * they do not handle; fast-paths.ts catches it (and anything else) and returns undefined,
 * so the caller takes the general protobufjs path. It never escapes the fast paths.
 */
export const BAIL: { readonly bail: true } = { bail: true };
