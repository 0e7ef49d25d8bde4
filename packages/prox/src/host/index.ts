/**
 * The host side of prox plugins: run a prox plugin under a supervisor and call it as a
 * picket `AgentTransport` (`prox+exec:` endpoints).
 */

export type { PluginCallerStats, PluginCallOptions } from './caller.js';
export {
  isProxExecEndpoint,
  PROX_EXEC_SCHEME,
  type ProxExecEndpoint,
  parseProxExec,
  splitCommandLine,
} from './endpoint.js';
export {
  type ProxHostEventMap,
  type ProxLogPush,
  ProxPluginHost,
  type ProxPluginHostOptions,
  type ProxPluginHostStats,
  type ProxReadyInfo,
  type ProxRouteBinding,
  type ProxSpeedPush,
  type ProxTargetsPush,
} from './host.js';
export { canonicalHeaderKey, MAX_CAPTURED_BODY, PROX_METADATA } from './mapping.js';
export {
  type ProxConnectOptions,
  ProxPluginTransport,
  type ProxTransportEventMap,
  type ProxTransportOptions,
} from './transport.js';
