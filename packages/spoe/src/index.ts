/**
 * @picket/spoe: serve any picket AgentHandler to HAProxy over SPOP (an SPOE agent).
 */
export {
  decodeActions,
  decodeFrame,
  decodeKvList,
  decodeMessages,
  decodeVarint,
  encodeActions,
  encodeFrame,
  encodeKvList,
  encodeMessages,
  encodeVarint,
  SPOP_MIN_FRAME_SIZE,
  SPOP_STATUS_TEXT,
  type SpopAction,
  SpopActionType,
  SpopDataType,
  SpopError,
  type SpopFrame,
  SpopFrameFlag,
  SpopFrameType,
  type SpopKv,
  type SpopMessage,
  SpopStatus,
  type SpopValue,
  SpopVarScope,
  type SpopVarScopeName,
} from './codec.js';
export { SPOP_VERSION, supportsVersion } from './connection.js';
export {
  encodeBinaryHeaderBlock,
  parseBinaryHeaderBlock,
  parseTextHeaderBlock,
} from './headers.js';
export {
  headerVarName,
  MAX_VAR_NAME_LENGTH,
  type MappedRequest,
  mergeAnswers,
  type ResponseActions,
  requestFromArgs,
  responseActions,
  SPOE_ARGS,
  type SpoeVarScope,
} from './mapping.js';
export {
  DEFAULT_SPOE_MAX_FRAME_SIZE,
  SpoeAgentServer,
  type SpoeAgentServerOptions,
  type SpoeServerStats,
} from './server.js';
