/**
 * Sibling-only helpers (the gateway, the adapters): header hygiene, target
 * checks, body stages, error classification. Not a stable surface.
 */
export {
  bodyPipeline,
  bufferStage,
  type ChunkInfo,
  collect,
  DecisionSignal,
  type StageHooks,
  streamStage,
} from './body.js';
export { errorResponse } from './decisions.js';
export { errorCode, TIMEOUT_CODES } from './failure.js';
export {
  applyHeaderOps,
  cloneHeaders,
  dropHopByHopFields,
  firstForwardedAddress,
  newTraceparent,
  normaliseIp,
  parseTraceparent,
  rfc3339,
  setContentLength,
  stripHopByHop,
  toHeaderMap,
  toOutgoing,
  validHeader,
} from './http-util.js';
export { lenientPath, removeDotSegments } from './path-policy.js';
export { hostProblem, readTarget, type TargetResult } from './target.js';
