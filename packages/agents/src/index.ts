export { EchoAgent, type EchoAgentOptions } from './echo.js';
export { DenylistAgent, type DenylistAgentOptions } from './denylist.js';
