export { type PicketMiddleware, picket } from './express.js';
export { type FastifyLike, picketFastify } from './fastify.js';
export { type FetchAdapterOptions, type FetchHandler, withAgents } from './fetch.js';
export { type RequestListener, wrapListener } from './node.js';
export type { PicketConfig, PicketOptions } from './options.js';
