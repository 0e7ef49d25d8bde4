// @picket/agentproto: MachineProxy's agentproto (see README.md).
export * from './cbor.js';
export * from './frames.js';
export * from './fileops/index.js';
export * from './recording.js';
