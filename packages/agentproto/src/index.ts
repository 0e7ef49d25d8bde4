// @picket/agentproto: MachineProxy's agentproto (see README.md).

export * from './agent/index.js';
export type { CborDecodeOptions, CborEncodable, CborValue } from './cbor.js';
export {
  CborSequenceDecoder,
  CborSimple,
  CborTag,
  DEFAULT_MAX_DEPTH,
  DEFAULT_MAX_ITEM_SIZE,
  decodeCbor,
  decodeCborSequence,
  encodeCbor,
  encodeCborSequence,
} from './cbor.js'; // not encodeCborParts (package-private)
export * from './fileops/index.js';
export * from './frames.js';
export * from './local.js';
export * from './mux.js';
export * from './recording.js';
