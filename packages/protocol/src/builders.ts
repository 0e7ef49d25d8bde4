import { PROTOCOL_VERSION } from './constants.js';
import type {
  AgentResponse,
  AuditMetadata,
  BodyMutation,
  Decision,
  GuardrailResponse,
  HeaderOp,
  WebSocketDecision,
} from './types.js';

/** Everything besides the decision that a response can carry; all optional. */
export interface ResponseOptions {
  requestHeaders?: HeaderOp[];
  responseHeaders?: HeaderOp[];
  routingMetadata?: Record<string, string>;
  tags?: string[];
  ruleIds?: string[];
  reasonCodes?: string[];
  confidence?: number | null;
  custom?: Record<string, unknown>;
  needsMore?: boolean;
  requestBodyMutation?: BodyMutation | null;
  responseBodyMutation?: BodyMutation | null;
  websocketDecision?: WebSocketDecision | null;
}

/** An empty audit record, as Rust's `AuditMetadata::default()`. */
export function emptyAudit(): AuditMetadata {
  return { tags: [], rule_ids: [], confidence: null, reason_codes: [], custom: {} };
}

/** Builds a complete AgentResponse around `decision`. */
export function agentResponse(decision: Decision, o: ResponseOptions = {}): AgentResponse {
  return {
    version: PROTOCOL_VERSION,
    decision,
    request_headers: o.requestHeaders ?? [],
    response_headers: o.responseHeaders ?? [],
    routing_metadata: o.routingMetadata ?? {},
    audit: {
      tags: o.tags ?? [],
      rule_ids: o.ruleIds ?? [],
      confidence: o.confidence ?? null,
      reason_codes: o.reasonCodes ?? [],
      custom: o.custom ?? {},
    },
    needs_more: o.needsMore ?? false,
    request_body_mutation: o.requestBodyMutation ?? null,
    response_body_mutation: o.responseBodyMutation ?? null,
    websocket_decision: o.websocketDecision ?? null,
  };
}

/** `allow()`, or `allow({ requestHeaders: [setHeader('x-user', id)] })`. */
export function allow(o?: ResponseOptions): AgentResponse {
  return agentResponse('allow', o);
}

export interface BlockOptions extends ResponseOptions {
  body?: string | null;
  /** headers of the block response sent to the client */
  headers?: Record<string, string> | null;
}

/** `block(403, { body: 'Forbidden', reasonCodes: ['PATH_BLOCKED'] })` */
export function block(status = 403, o: BlockOptions = {}): AgentResponse {
  const { body = null, headers = null, ...rest } = o;
  return agentResponse({ block: { status, body, headers } }, rest);
}

/** `redirect('https://login.example/')` — 302 unless told otherwise. */
export function redirect(url: string, status = 302, o?: ResponseOptions): AgentResponse {
  return agentResponse({ redirect: { url, status } }, o);
}

/** `challenge('captcha', { site_key: 'k' })` */
export function challenge(
  challengeType: string,
  params: Record<string, string> = {},
  o?: ResponseOptions,
): AgentResponse {
  return agentResponse({ challenge: { challenge_type: challengeType, params } }, o);
}

/** Allow for now but ask for more body (the agent buffers chunks). */
export function needsMore(o?: ResponseOptions): AgentResponse {
  return agentResponse('allow', { ...o, needsMore: true });
}

export const setHeader = (name: string, value: string): HeaderOp => ({ set: { name, value } });
export const addHeader = (name: string, value: string): HeaderOp => ({ add: { name, value } });
export const removeHeader = (name: string): HeaderOp => ({ remove: { name } });

/** Replace a body chunk with `text` (`""` drops the chunk). */
export const replaceBody = (text: string, chunkIndex = 0): BodyMutation => ({
  data: text,
  chunk_index: chunkIndex,
});

/** WebSocket frame verdicts. */
export const websocketAllow = (o?: ResponseOptions): AgentResponse =>
  agentResponse('allow', { ...o, websocketDecision: 'allow' });
export const websocketDrop = (o?: ResponseOptions): AgentResponse =>
  agentResponse('allow', { ...o, websocketDecision: 'drop' });
export const websocketClose = (code: number, reason: string, o?: ResponseOptions): AgentResponse =>
  agentResponse('allow', { ...o, websocketDecision: { close: { code, reason } } });

/** Guardrail verdicts travel as a JSON string in `routing_metadata.guardrail_response`. */
export function guardrailResult(result: GuardrailResponse, o?: ResponseOptions): AgentResponse {
  return agentResponse('allow', {
    ...o,
    routingMetadata: { ...o?.routingMetadata, guardrail_response: JSON.stringify(result) },
  });
}

/** Which kind of decision this is: `'allow' | 'block' | 'redirect' | 'challenge'`. */
export function decisionKind(d: Decision): 'allow' | 'block' | 'redirect' | 'challenge' {
  if (d === 'allow') return 'allow';
  if ('block' in d) return 'block';
  if ('redirect' in d) return 'redirect';
  return 'challenge';
}
