/**
 * `@picket/protocol/internal`: machinery shared by the picket packages themselves. Not
 * part of the public API and outside semver: it may change in any release.
 */
export * from './backoff.js';
export * from './batch-clock.js';
export * from './calls.js';
export * from './calls-transport.js';
export * from './dispatch.js';
export * from './id-table.js';
export * from './node-errors.js';
export * from './sent.js';
export * from './socket-file.js';
export * from './tls.js';
export * from './tracing.js';
