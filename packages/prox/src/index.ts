// @picket/prox: being built (see README.md).
export * from './wire/index.js';
