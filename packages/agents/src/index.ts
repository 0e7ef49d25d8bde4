export { DenylistAgent, type DenylistAgentOptions } from './denylist.js';
export { EchoAgent, type EchoAgentOptions } from './echo.js';
