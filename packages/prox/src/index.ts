// @picket/prox: being built (see README.md).

export * from './host/index.js';
export * from './plugin/index.js';
export * from './wire/index.js';
