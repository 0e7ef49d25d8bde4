// @picket/agentproto: MachineProxy's agentproto (see README.md).
export * from './cbor.js';
export * from './frames.js';
export * from './fileops/index.js';
export * from './recording.js';
export * from './mux.js';
export * from './local.js';
export * from './agent/index.js';
