/**
 * Every field of every message the fast paths (fast-paths.ts) write or read, listed
 * exhaustively, so a field added to agent_v2.proto (or to picket's event and response types)
 * breaks the build here instead of being skipped silently by a fast path.
 *
 * - `PROTO_FIELDS`: each generated message's fields with their proto field numbers;
 *   `satisfies ProtoFields<zentinel.agent.v2.IX>` requires every key of the generated interface and no other.
 *   test/fast-path-fields.test.ts checks the numbers against the shipped .proto.
 * - `PICKET_FIELDS`: each picket type the encoders read, field by field, with the proto field
 *   it is written to (`null`: not carried on this wire).
 *
 * A new field fails to compile until it is listed here, which is the moment to decide how
 * fast-paths.ts treats it: write / read it, or bail (`throw BAIL`) to the general path
 * (convert.ts + protobufjs). The readers already bail on any tag they do not handle; a writer
 * has no such net, which is what the lists are for. test/fast-paths.test.ts then compares the
 * fast paths with the general path byte for byte.
 */
import type {
  AgentResponse,
  AuditMetadata,
  BodyMutation,
  RequestHeadersEvent,
  RequestMetadata,
} from '@picket/protocol';
import type { zentinel } from './generated/agent_v2.js';

/** Exactly the fields of a generated message interface, each with its field number. */
export type ProtoFields<T> = { readonly [K in keyof Required<T>]: number };

/** Exactly the fields of a picket type, each with the proto field it travels in (or `null`). */
export type PicketFields<T, P> = { readonly [K in keyof Required<T>]: (keyof P & string) | null };

/** The generated messages the fast paths touch (oneof members listed with the oneof). */
export const PROTO_FIELDS = {
  // the writer emits only `request_headers`; the reader takes a lone `request_headers`
  ProxyToAgent: {
    handshake: 1,
    request_headers: 2,
    request_body_chunk: 3,
    response_headers: 4,
    response_body_chunk: 5,
    websocket_frame: 6,
    guardrail: 7,
    request_complete: 8,
    cancel: 9,
    configure: 10,
    ping: 11,
    config_response: 1000,
  } satisfies ProtoFields<zentinel.agent.v2.IProxyToAgent>,
  RequestHeadersEvent: {
    metadata: 1,
    method: 2,
    uri: 3,
    http_version: 4,
    headers: 5,
  } satisfies ProtoFields<zentinel.agent.v2.IRequestHeadersEvent>,
  RequestMetadata: {
    correlation_id: 1,
    request_id: 2,
    client_ip: 3,
    client_port: 4,
    server_name: 5,
    protocol: 6,
    tls_version: 7,
    route_id: 8,
    upstream_id: 9,
    timestamp_ms: 10,
    traceparent: 11,
    tls_cipher: 1000,
  } satisfies ProtoFields<zentinel.agent.v2.IRequestMetadata>,
  Header: { name: 1, value: 2 } satisfies ProtoFields<zentinel.agent.v2.IHeader>,
  // the writer emits only `response`; the reader takes a lone `response`
  AgentToProxy: {
    handshake: 1,
    response: 2,
    health: 3,
    metrics: 4,
    config_update: 5,
    flow_control: 6,
    pong: 7,
    log: 8,
  } satisfies ProtoFields<zentinel.agent.v2.IAgentToProxy>,
  // `challenge` is left to the general path both ways
  AgentResponse: {
    correlation_id: 1,
    allow: 2,
    block: 3,
    redirect: 4,
    challenge: 5,
    request_headers: 10,
    response_headers: 11,
    audit: 12,
    processing_time_ms: 13,
    needs_more: 14,
    routing_metadata: 1000,
    request_body_mutation: 1001,
    response_body_mutation: 1002,
    websocket_decision: 1003,
  } satisfies ProtoFields<zentinel.agent.v2.IAgentResponse>,
  AllowDecision: {} satisfies ProtoFields<zentinel.agent.v2.IAllowDecision>,
  BlockDecision: {
    status: 1,
    body: 2,
    headers: 3,
  } satisfies ProtoFields<zentinel.agent.v2.IBlockDecision>,
  RedirectDecision: {
    url: 1,
    status: 2,
  } satisfies ProtoFields<zentinel.agent.v2.IRedirectDecision>,
  HeaderOp: { set: 1, add: 2, remove: 3 } satisfies ProtoFields<zentinel.agent.v2.IHeaderOp>,
  AuditMetadata: {
    tags: 1,
    rule_ids: 2,
    confidence: 3,
    reason_codes: 4,
    custom: 5,
  } satisfies ProtoFields<zentinel.agent.v2.IAuditMetadata>,
  PicketBodyMutation: {
    data: 1,
    chunk_index: 2,
  } satisfies ProtoFields<zentinel.agent.v2.IPicketBodyMutation>,
  PicketWebSocketDecision: {
    allow: 1,
    drop: 2,
    close: 3,
  } satisfies ProtoFields<zentinel.agent.v2.IPicketWebSocketDecision>,
  PicketWebSocketClose: {
    code: 1,
    reason: 2,
  } satisfies ProtoFields<zentinel.agent.v2.IPicketWebSocketClose>,
} as const;

/** The picket types the fast encoders read (and the fast decoders build). */
export const PICKET_FIELDS = {
  RequestHeadersEvent: {
    metadata: 'metadata',
    method: 'method',
    uri: 'uri',
    headers: 'headers',
  } satisfies PicketFields<RequestHeadersEvent, zentinel.agent.v2.IRequestHeadersEvent>,
  RequestMetadata: {
    correlation_id: 'correlation_id',
    request_id: 'request_id',
    client_ip: 'client_ip',
    client_port: 'client_port',
    server_name: 'server_name',
    protocol: 'protocol',
    tls_version: 'tls_version',
    tls_cipher: 'tls_cipher',
    route_id: 'route_id',
    upstream_id: 'upstream_id',
    timestamp: 'timestamp_ms',
    traceparent: 'traceparent',
  } satisfies PicketFields<RequestMetadata, zentinel.agent.v2.IRequestMetadata>,
  AgentResponse: {
    version: null, // implied by the wire (always PROTOCOL_VERSION)
    decision: 'allow', // allow / block / redirect / challenge: the decision oneof
    request_headers: 'request_headers',
    response_headers: 'response_headers',
    routing_metadata: 'routing_metadata',
    audit: 'audit',
    needs_more: 'needs_more',
    request_body_mutation: 'request_body_mutation',
    response_body_mutation: 'response_body_mutation',
    websocket_decision: 'websocket_decision',
  } satisfies PicketFields<AgentResponse, zentinel.agent.v2.IAgentResponse>,
  AuditMetadata: {
    tags: 'tags',
    rule_ids: 'rule_ids',
    confidence: 'confidence',
    reason_codes: 'reason_codes',
    custom: 'custom',
  } satisfies PicketFields<AuditMetadata, zentinel.agent.v2.IAuditMetadata>,
  BodyMutation: {
    data: 'data',
    chunk_index: 'chunk_index',
  } satisfies PicketFields<BodyMutation, zentinel.agent.v2.IPicketBodyMutation>,
} as const;
