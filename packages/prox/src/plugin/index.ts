/**
 * The plugin side: a Node program becomes a prox plugin, from prox-native hooks or from any
 * picket AgentHandler.
 */
export { type AgentHooksOptions, agentHooks } from './agent.js';
export type { ProxHookContext, ProxHooks } from './hooks.js';
export {
  ProxPlugin,
  type ProxPluginOptions,
  serveAgentAsProxPlugin,
  serveProxPlugin,
  stderrLogger,
} from './plugin.js';
