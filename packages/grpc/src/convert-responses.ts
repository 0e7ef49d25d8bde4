/** Converters (see convert.ts): AgentResponse both ways. */
import {
  type AgentResponse,
  type AuditMetadata,
  type BodyMutation,
  type Decision,
  emptyAudit,
  type HeaderOp,
  invalidMessage,
  PROTOCOL_VERSION,
  putOwn,
  type WebSocketDecision,
} from '@picket/protocol';
import { header, jsonText, parseJsonLoose, strMap } from './convert-helpers.js';
import type { zentinel } from './generated/agent_v2.js';
import { f32, type IAgentResponse, type IAuditMetadata, type IHeaderOp } from './proto.js';

type PbAgentResponse = zentinel.agent.v2.IAgentResponse;

// ---------------------------------------------------------------- responses

function decisionToProto(d: Decision, out: IAgentResponse): void {
  if (d === 'allow') {
    out.allow = {};
  } else if (typeof d !== 'object' || d === null) {
    throw invalidMessage('AgentResponse.decision', `unknown decision ${JSON.stringify(d)}`);
  } else if ('block' in d) {
    const b = d.block;
    const block: NonNullable<IAgentResponse['block']> = {};
    if (b.status) block.status = b.status;
    if (b.body != null) block.body = b.body;
    if (b.headers) {
      const hs = Object.keys(b.headers).map((k) => header(k, b.headers?.[k] ?? ''));
      if (hs.length) block.headers = hs;
    }
    out.block = block;
  } else if ('redirect' in d) {
    const r: NonNullable<IAgentResponse['redirect']> = {};
    if (d.redirect.url) r.url = d.redirect.url;
    if (d.redirect.status) r.status = d.redirect.status;
    out.redirect = r;
  } else if ('challenge' in d) {
    const c: NonNullable<IAgentResponse['challenge']> = {};
    if (d.challenge.challenge_type) c.challenge_type = d.challenge.challenge_type;
    if (d.challenge.params && Object.keys(d.challenge.params).length) c.params = d.challenge.params;
    out.challenge = c;
  } else {
    throw invalidMessage('AgentResponse.decision', `unknown decision ${JSON.stringify(d)}`);
  }
}

function headerOpsToProto(ops: readonly HeaderOp[]): IHeaderOp[] {
  return ops.map((op): IHeaderOp => {
    if ('set' in op) return { set: header(op.set.name, op.set.value) };
    if ('add' in op) return { add: header(op.add.name, op.add.value) };
    if ('remove' in op) return { remove: op.remove.name };
    throw invalidMessage('AgentResponse header op', JSON.stringify(op));
  });
}

/** Audit with custom values as JSON text, as a Rust agent sends them. */
function auditToProto(a: AuditMetadata): IAuditMetadata {
  const out: IAuditMetadata = {};
  if (a.tags?.length) out.tags = a.tags;
  if (a.rule_ids?.length) out.rule_ids = a.rule_ids;
  if (a.confidence != null) out.confidence = a.confidence;
  if (a.reason_codes?.length) out.reason_codes = a.reason_codes;
  const keys = a.custom ? Object.keys(a.custom) : [];
  if (keys.length) {
    const custom: Record<string, string> = {};
    for (const k of keys) putOwn(custom, k, jsonText(a.custom[k]));
    out.custom = custom;
  }
  return out;
}

function mutationToProto(m: BodyMutation): NonNullable<IAgentResponse['request_body_mutation']> {
  const out: NonNullable<IAgentResponse['request_body_mutation']> = {};
  if (m.data != null) out.data = m.data;
  if (m.chunk_index) out.chunk_index = m.chunk_index;
  return out;
}

function wsDecisionToProto(
  d: WebSocketDecision,
): NonNullable<IAgentResponse['websocket_decision']> {
  if (d === 'allow') return { allow: {} };
  if (d === 'drop') return { drop: {} };
  const close: { code?: number; reason?: string } = {};
  if (d.close.code) close.code = d.close.code;
  if (d.close.reason) close.reason = d.close.reason;
  return { close };
}

/**
 * AgentResponse → proto as a Rust agent server writes it: the given correlation id,
 * `audit` and `processing_time_ms` always present; picket extension fields only when set.
 */
export function agentResponseToProto(
  r: AgentResponse,
  correlationId: string,
  processingTimeMs: number,
): IAgentResponse {
  const out: IAgentResponse = {};
  if (correlationId) out.correlation_id = correlationId;
  decisionToProto(r.decision, out);
  if (r.request_headers?.length) out.request_headers = headerOpsToProto(r.request_headers);
  if (r.response_headers?.length) out.response_headers = headerOpsToProto(r.response_headers);
  out.audit = auditToProto(r.audit ?? emptyAudit());
  out.processing_time_ms = Math.max(0, Math.round(processingTimeMs));
  if (r.needs_more) out.needs_more = true;
  if (r.routing_metadata && Object.keys(r.routing_metadata).length) {
    out.routing_metadata = r.routing_metadata;
  }
  if (r.request_body_mutation) out.request_body_mutation = mutationToProto(r.request_body_mutation);
  if (r.response_body_mutation) {
    out.response_body_mutation = mutationToProto(r.response_body_mutation);
  }
  if (r.websocket_decision) out.websocket_decision = wsDecisionToProto(r.websocket_decision);
  return out;
}

function decisionFromProto(r: PbAgentResponse): Decision {
  if (r.block) {
    const hs = r.block.headers ?? [];
    let headers: Record<string, string> | null = null;
    if (hs.length) {
      headers = {};
      for (const h of hs) putOwn(headers, h.name ?? '', h.value ?? '');
    }
    return { block: { status: r.block.status ?? 0, body: r.block.body ?? null, headers } };
  }
  if (r.redirect)
    return { redirect: { url: r.redirect.url ?? '', status: r.redirect.status ?? 0 } };
  if (r.challenge) {
    return {
      challenge: {
        challenge_type: r.challenge.challenge_type ?? '',
        params: strMap(r.challenge.params),
      },
    };
  }
  return 'allow'; // allow, or no decision at all (Rust: none ⇒ allow)
}

function headerOpsFromProto(ops: readonly IHeaderOp[]): HeaderOp[] {
  const out: HeaderOp[] = [];
  for (const op of ops) {
    if (op.set) out.push({ set: { name: op.set.name ?? '', value: op.set.value ?? '' } });
    else if (op.add) out.push({ add: { name: op.add.name ?? '', value: op.add.value ?? '' } });
    else if (op.remove != null) out.push({ remove: { name: op.remove } });
    // an op without operation is dropped, as Rust does
  }
  return out;
}

function auditFromProto(a: IAuditMetadata | null | undefined): AuditMetadata {
  const custom: Record<string, unknown> = {};
  if (a?.custom) {
    for (const k of Object.keys(a.custom)) putOwn(custom, k, parseJsonLoose(a.custom[k] ?? ''));
  }
  return {
    tags: a?.tags ? [...a.tags] : [],
    rule_ids: a?.rule_ids ? [...a.rule_ids] : [],
    confidence: a?.confidence == null ? null : f32(a.confidence),
    reason_codes: a?.reason_codes ? [...a.reason_codes] : [],
    custom,
  };
}

function mutationFromProto(
  m: NonNullable<IAgentResponse['request_body_mutation']> | null | undefined,
): BodyMutation | null {
  if (!m) return null;
  return { data: m.data ?? null, chunk_index: m.chunk_index ?? 0 };
}

function wsDecisionFromProto(
  d: NonNullable<IAgentResponse['websocket_decision']> | null | undefined,
): WebSocketDecision | null {
  if (!d) return null;
  if (d.close) return { close: { code: d.close.code ?? 0, reason: d.close.reason ?? '' } };
  if (d.drop) return 'drop';
  if (d.allow) return 'allow';
  return null;
}

/** proto AgentResponse → picket AgentResponse (version 2). */
export function agentResponseFromProto(r: PbAgentResponse): AgentResponse {
  return {
    version: PROTOCOL_VERSION,
    decision: decisionFromProto(r),
    request_headers: headerOpsFromProto(r.request_headers ?? []),
    response_headers: headerOpsFromProto(r.response_headers ?? []),
    routing_metadata: strMap(r.routing_metadata),
    audit: auditFromProto(r.audit),
    needs_more: r.needs_more ?? false,
    request_body_mutation: mutationFromProto(r.request_body_mutation),
    response_body_mutation: mutationFromProto(r.response_body_mutation),
    websocket_decision: wsDecisionFromProto(r.websocket_decision),
  };
}
