// @picket/agentproto: MachineProxy's agentproto (see README.md).

export * from './agent/index.js';
export * from './cbor.js';
export * from './fileops/index.js';
export * from './frames.js';
export * from './local.js';
export * from './mux.js';
export * from './recording.js';
