/** Opening a ProcessStream and its handshake: the proxy side of the gRPC transport's connect. */
import { type Client, type ClientDuplexStream, Metadata, status } from '@grpc/grpc-js';
import {
  type AgentCapabilities,
  AgentProtocolError,
  ErrorCode,
  PROTOCOL_VERSION,
  ZENTINEL_PROXY_ID,
  ZENTINEL_PROXY_VERSION,
} from '@picket/protocol';
import type { AgentClientV2Options } from './client-options.js';
import { capabilitiesFromProto, handshakeRequestToProto } from './convert.js';
import { describeGrpcError, grpcCode, isTlsFailure } from './errors.js';
import { decodeAgentResponseFast, FastAgentResponse } from './fast-paths.js';
import {
  type AgentToProxyMsg,
  agentServiceV2Definition,
  encodeProxyToAgent,
  METHOD_PATHS,
  PICKET_GRPC_REVISION,
  PICKET_METADATA_KEY,
} from './proto.js';

export const passThrough = (b: Buffer): Buffer => b;
const decodeAgentToProxy = agentServiceV2Definition.ProcessStream.responseDeserialize;
/** What the ProcessStream delivers: a plain response read in one pass, or any other message. */
export type StreamMessage = AgentToProxyMsg | FastAgentResponse;
/** The one-pass reader for plain responses; protobufjs (same errors as before) for the rest. */
const decodeStreamMessage = (b: Buffer): StreamMessage =>
  decodeAgentResponseFast(b) ?? decodeAgentToProxy(b);

/** A ProcessStream whose handshake the agent accepted. */
export interface OpenedStream {
  capabilities: AgentCapabilities;
  protocolVersion: number;
}

/** What the handshake needs from its transport. */
export interface HandshakeHooks {
  /** the response metadata arrived; `picket` is true when the agent is a picket agent */
  onMetadata(picket: boolean): void;
  /** the handshake succeeded: install the steady-state listeners (called before any later message) */
  attach(call: ClientDuplexStream<Buffer, StreamMessage>): void;
}

/**
 * Opens the ProcessStream, sends the handshake at once and waits for the agent's answer.
 * Rejects with CONNECTION_FAILED, HANDSHAKE_FAILED or TIMEOUT; the stream is then cancelled.
 */
export function openProcessStream(
  client: Client,
  where: string,
  tls: boolean,
  timeoutMs: number,
  options: AgentClientV2Options,
  hooks: HandshakeHooks,
): Promise<OpenedStream> {
  const md = new Metadata();
  md.set(PICKET_METADATA_KEY, PICKET_GRPC_REVISION);
  const call = client.makeBidiStreamRequest(
    METHOD_PATHS.ProcessStream,
    passThrough,
    decodeStreamMessage,
    md,
    {},
  );
  // errors are handled by the listeners below; this one keeps a late error (e.g. after
  // our own cancel()) from becoming an uncaught exception
  call.on('error', () => undefined);
  call.on('metadata', (m: Metadata) => hooks.onMetadata(m.get(PICKET_METADATA_KEY).length > 0));
  return new Promise<OpenedStream>((resolve, reject) => {
    let settled = false;
    const finish = (outcome: OpenedStream | AgentProtocolError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      call.off('data', onData);
      call.off('error', onError);
      call.off('end', onEnd);
      if (outcome instanceof AgentProtocolError) {
        call.cancel();
        reject(outcome);
      } else resolve(outcome);
    };
    const timer = setTimeout(
      () =>
        finish(
          new AgentProtocolError(
            ErrorCode.Timeout,
            `${where}: no handshake answer within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    const onData = (msg: StreamMessage) => {
      if (msg instanceof FastAgentResponse || msg.message !== 'handshake' || !msg.handshake) {
        finish(
          new AgentProtocolError(
            ErrorCode.HandshakeFailed,
            `${where}: expected a handshake answer first, got ${msg.message ?? 'an empty message'}`,
          ),
        );
        return;
      }
      const hs = msg.handshake;
      if (!hs.success) {
        finish(
          new AgentProtocolError(
            ErrorCode.HandshakeFailed,
            `${where} refused the handshake: ${hs.error || 'no reason given'}`,
          ),
        );
        return;
      }
      const opened: OpenedStream = {
        capabilities: capabilitiesFromProto(hs.capabilities),
        protocolVersion: hs.protocol_version || PROTOCOL_VERSION,
      };
      hooks.attach(call);
      finish(opened);
    };
    const onError = (err: unknown) => {
      const code = grpcCode(err);
      const text = describeGrpcError(err);
      let message = `cannot connect to ${where}: ${text}`;
      if (code === status.UNIMPLEMENTED) message = `${where} does not serve ProcessStream: ${text}`;
      else if (tls && isTlsFailure(err)) message = `TLS handshake with ${where} failed: ${text}`;
      else if (tls) message = `cannot connect to ${where} (TLS/certificate problem?): ${text}`;
      finish(new AgentProtocolError(ErrorCode.ConnectionFailed, message, { cause: err }));
    };
    const onEnd = () =>
      finish(
        new AgentProtocolError(
          ErrorCode.HandshakeFailed,
          `${where} ended the stream before answering the handshake`,
        ),
      );
    call.on('data', onData);
    call.on('error', onError);
    call.on('end', onEnd);
    // The Rust proxy waits for response headers first; we do not (an agent that only
    // sends them after the first message would otherwise deadlock us).
    call.write(
      encodeProxyToAgent({
        handshake: handshakeRequestToProto({
          supported_versions: [2, 1],
          proxy_id: options.proxyId ?? ZENTINEL_PROXY_ID,
          proxy_version: options.proxyVersion ?? ZENTINEL_PROXY_VERSION,
          config: options.config ?? {},
          supported_encodings: [],
        }),
      }),
    );
  });
}
