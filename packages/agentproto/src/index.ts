// @picket/agentproto: MachineProxy's agentproto (see README.md).
export * from './cbor.js';
export * from './frames.js';
