/**
 * `@picket/reverse/internal`: pieces of the reverse transport picket's own packages and tests
 * reuse (first-frame reader, host:port helpers, token redaction, reconnect delays). Not part of
 * the public API and outside semver: it may change in any release.
 */
export { redact } from './auth.js';
export { reconnectDelay } from './backoff.js';
export { formatHostPort, type HostPort, parseHostPort } from './endpoint.js';
export { type FirstFrame, type FirstFrameOptions, readFirstFrame } from './first-frame.js';
export { defaultLogger } from './logger.js';
