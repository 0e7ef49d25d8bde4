/**
 * The generated protobuf code (protobufjs static module) under short names, the gRPC
 * service definition with its method paths, and small helpers for protobufjs's 64-bit
 * `number | Long` values and proto `float` fields.
 */
import { fileURLToPath } from 'node:url';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { zentinel } from './generated/agent_v2.js';

/** Message classes of `zentinel.agent.v2` (encode/decode) generated from `proto/…/agent_v2.proto`. */
export const pb = zentinel.agent.v2;

export type IProxyToAgent = zentinel.agent.v2.IProxyToAgent;
export type IAgentToProxy = zentinel.agent.v2.IAgentToProxy;
export type IAgentControl = zentinel.agent.v2.IAgentControl;
export type IProxyControl = zentinel.agent.v2.IProxyControl;
export type ProxyToAgentMsg = zentinel.agent.v2.ProxyToAgent;
export type AgentToProxyMsg = zentinel.agent.v2.AgentToProxy;
export type AgentControlMsg = zentinel.agent.v2.AgentControl;
export type ProxyControlMsg = zentinel.agent.v2.ProxyControl;
export type IAgentResponse = zentinel.agent.v2.IAgentResponse;
export type IAgentCapabilities = zentinel.agent.v2.IAgentCapabilities;
export type IRequestHeadersEvent = zentinel.agent.v2.IRequestHeadersEvent;
export type IRequestMetadata = zentinel.agent.v2.IRequestMetadata;
export type IBodyChunkEvent = zentinel.agent.v2.IBodyChunkEvent;
export type IResponseHeadersEvent = zentinel.agent.v2.IResponseHeadersEvent;
export type IRequestCompleteEvent = zentinel.agent.v2.IRequestCompleteEvent;
export type IWebSocketFrameEvent = zentinel.agent.v2.IWebSocketFrameEvent;
export type IGuardrailInspectEvent = zentinel.agent.v2.IGuardrailInspectEvent;
export type IConfigureEvent = zentinel.agent.v2.IConfigureEvent;
export type IHeader = zentinel.agent.v2.IHeader;
export type IHeaderOp = zentinel.agent.v2.IHeaderOp;
export type IAuditMetadata = zentinel.agent.v2.IAuditMetadata;
export type IHealthStatus = zentinel.agent.v2.IHealthStatus;
export type IMetricsReport = zentinel.agent.v2.IMetricsReport;
export type IConfigUpdateRequest = zentinel.agent.v2.IConfigUpdateRequest;
export type IConfigUpdateResponse = zentinel.agent.v2.IConfigUpdateResponse;
export type ILogMessage = zentinel.agent.v2.ILogMessage;
export type IHandshakeRequest = zentinel.agent.v2.IHandshakeRequest;
export type IHandshakeResponse = zentinel.agent.v2.IHandshakeResponse;
export type IFlowControlSignal = zentinel.agent.v2.IFlowControlSignal;

/** Absolute path of the shipped `agent_v2.proto` (for other gRPC tooling). */
export const PROTO_PATH = fileURLToPath(
  new URL('../proto/zentinel/agent/v2/agent_v2.proto', import.meta.url),
);

/** Fully qualified service name. */
export const SERVICE_NAME = 'zentinel.agent.v2.AgentServiceV2';
/** HTTP/2 paths of the three RPCs. */
export const METHOD_PATHS = {
  ProcessStream: `/${SERVICE_NAME}/ProcessStream`,
  ControlStream: `/${SERVICE_NAME}/ControlStream`,
  ProcessEvent: `/${SERVICE_NAME}/ProcessEvent`,
} as const;

/** A protobufjs Long (what 64-bit fields decode to). */
export interface LongLike {
  low: number;
  high: number;
  unsigned: boolean;
  toNumber?(): number;
}

/** A decoded 64-bit value as a JS number (exact up to 2^53). */
export function num(v: number | LongLike | null | undefined): number {
  if (v == null) return 0;
  if (typeof v === 'number') return v;
  if (typeof v.toNumber === 'function') return v.toNumber();
  return v.unsigned
    ? (v.high >>> 0) * 4294967296 + (v.low >>> 0)
    : v.high * 4294967296 + (v.low >>> 0);
}

/** Like {@link num} but keeps absence (proto3 `optional` fields). */
export function optNum(v: number | LongLike | null | undefined): number | undefined {
  return v == null ? undefined : num(v);
}

/**
 * A proto `float` decodes to the nearest double (0.95f ⇒ 0.949999988…). Rust prints the
 * f32's shortest round-trip decimal (0.95), so we return that.
 */
export function f32(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  for (let p = 1; p <= 9; p++) {
    const short = Number(v.toPrecision(p));
    if (Math.fround(short) === v) return short;
  }
  return v;
}

// Messages are encoded by the caller (so oversize messages are refused before they reach the
// stream); grpc-js just passes the bytes through.
const passThrough = (b: Buffer): Buffer => b;
const toBuffer = (u: Uint8Array): Buffer =>
  Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** Encodes a ProxyToAgent to a Buffer. */
export const encodeProxyToAgent = (m: IProxyToAgent): Buffer =>
  toBuffer(pb.ProxyToAgent.encode(m).finish());
/** Encodes an AgentToProxy to a Buffer. */
export const encodeAgentToProxy = (m: IAgentToProxy): Buffer =>
  toBuffer(pb.AgentToProxy.encode(m).finish());
/** Encodes an AgentControl to a Buffer. */
export const encodeAgentControl = (m: IAgentControl): Buffer =>
  toBuffer(pb.AgentControl.encode(m).finish());
/** Encodes a ProxyControl to a Buffer. */
export const encodeProxyControl = (m: IProxyControl): Buffer =>
  toBuffer(pb.ProxyControl.encode(m).finish());

/** What the server reads instead of a ProxyToAgent whose bytes do not decode. */
export class UndecodableMessage {
  /** never a ProxyToAgent member, so code that switches on it sees "no message" */
  readonly message = undefined;
  constructor(
    /** why protobuf decoding failed */
    readonly error: unknown,
    /** size of the message in bytes */
    readonly size: number,
  ) {}
}

/**
 * grpc-js definition of `zentinel.agent.v2.AgentServiceV2`. Outbound messages are
 * pre-encoded Buffers; inbound ones are decoded into the generated classes.
 */
export const agentServiceV2Definition = {
  ProcessStream: {
    path: METHOD_PATHS.ProcessStream,
    requestStream: true,
    responseStream: true,
    requestSerialize: passThrough,
    // Never throws: an undecodable message reaches the server as an UndecodableMessage,
    // which ends the stream itself (see GrpcAgentServerV2). When the deserializer throws,
    // grpc-js fails the call while the handler may still write answers, and then never
    // sends the status (grpc-js 1.14): the proxy's stream would hang.
    requestDeserialize: (b: Buffer): ProxyToAgentMsg | UndecodableMessage => {
      try {
        return pb.ProxyToAgent.decode(b);
      } catch (err) {
        return new UndecodableMessage(err, b.length);
      }
    },
    responseSerialize: passThrough,
    responseDeserialize: (b: Buffer): AgentToProxyMsg => pb.AgentToProxy.decode(b),
    originalName: 'processStream',
  },
  ControlStream: {
    path: METHOD_PATHS.ControlStream,
    requestStream: true,
    responseStream: true,
    requestSerialize: passThrough,
    requestDeserialize: (b: Buffer): AgentControlMsg => pb.AgentControl.decode(b),
    responseSerialize: passThrough,
    responseDeserialize: (b: Buffer): ProxyControlMsg => pb.ProxyControl.decode(b),
    originalName: 'controlStream',
  },
  ProcessEvent: {
    path: METHOD_PATHS.ProcessEvent,
    requestStream: false,
    responseStream: false,
    requestSerialize: passThrough,
    requestDeserialize: (b: Buffer): ProxyToAgentMsg => pb.ProxyToAgent.decode(b),
    responseSerialize: passThrough,
    responseDeserialize: (b: Buffer): AgentToProxyMsg => pb.AgentToProxy.decode(b),
    originalName: 'processEvent',
  },
} satisfies ServiceDefinition;

/** Metadata key a picket peer sets (initial metadata from agents, call metadata from proxies). */
export const PICKET_METADATA_KEY = 'x-picket-grpc';
/** picket gRPC extension revision advertised under {@link PICKET_METADATA_KEY}. */
export const PICKET_GRPC_REVISION = '1';
