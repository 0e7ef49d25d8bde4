/**
 * Raw gRPC for `picket conform`'s wire-level checks on plaintext gRPC agents: one HTTP/2
 * request per probe (node:http2), carrying bytes grpc-js would never send — a message over the
 * 4 MiB default, bytes that are no protobuf, an unknown message, a frame cut short — to
 * `ProcessEvent`. The agent must refuse (a non-OK status), never answer allow, and keep serving.
 */
import { type ClientHttp2Session, connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import {
  agentResponseFromProto,
  encodeProxyToAgent,
  eventToProto,
  handshakeRequestToProto,
  pb,
} from '@picket/grpc/internal';
import { decisionKind } from '@picket/protocol';
import type { GrpcEndpoint } from '@picket/transport';
import * as ev from './events.js';

const PROCESS_EVENT = '/zentinel.agent.v2.AgentServiceV2/ProcessEvent';
/** grpc-js' default largest received message */
export const GRPC_DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024;

/** What one raw call came back with. */
export interface GrpcOutcome {
  /** grpc-status; undefined when the call broke off without one */
  status: number | undefined;
  details: string;
  /** the decision of an AgentResponse answer, when there was one */
  decision?: string;
  /** set when the answer was a HandshakeResponse */
  handshake?: { success: boolean; protocolVersion: number; error: string };
  /** the transport failed (connection refused, reset, timeout) */
  error?: string;
}

/** A gRPC message frame: `[0][u32 BE length][message]`. */
export function grpcFrame(message: Uint8Array, announced = message.length): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(announced, 1);
  return Buffer.concat([header, message]);
}

/** ProcessEvent bodies the checks send. */
export const grpcMessages = {
  requestHeaders: (cid: string): Uint8Array =>
    encodeProxyToAgent(eventToProto('request_headers', ev.requestHeaders(cid))),
  handshake: (versions: number[]): Uint8Array =>
    encodeProxyToAgent({
      handshake: handshakeRequestToProto({
        supported_versions: versions,
        proxy_id: 'picket-conform',
        proxy_version: '1',
        config: null,
        supported_encodings: [],
      }),
    }),
};

/** Plaintext gRPC endpoints only: TLS and grpc-js resolver targets are not spoken here. */
export function grpcWireSupported(ep: GrpcEndpoint): string | undefined {
  if (ep.tls) return 'raw bytes over gRPC with TLS are not supported; use a plaintext endpoint';
  if (ep.scheme === 'dns' || ep.scheme === 'ipv4' || ep.scheme === 'ipv6') {
    return `raw bytes to a ${ep.scheme}: target are not supported; use grpc://host:port`;
  }
  return undefined;
}

function session(ep: GrpcEndpoint): ClientHttp2Session {
  if (ep.scheme === 'grpc+unix') {
    const path = ep.target.replace(/^unix:/, '');
    return connect('http://localhost', { createConnection: () => netConnect(path) });
  }
  return connect(`http://${ep.target}`);
}

function decode(body: Buffer): Pick<GrpcOutcome, 'decision' | 'handshake'> {
  if (body.length < 5) return {};
  const msg = pb.AgentToProxy.decode(body.subarray(5, 5 + body.readUInt32BE(1)));
  if (msg.response) {
    return { decision: decisionKind(agentResponseFromProto(msg.response).decision) };
  }
  if (msg.handshake) {
    return {
      handshake: {
        success: msg.handshake.success === true,
        protocolVersion: msg.handshake.protocol_version ?? 0,
        error: msg.handshake.error ?? '',
      },
    };
  }
  return {};
}

/**
 * One ProcessEvent call on a fresh connection with `body` as the raw request bytes (already
 * framed). `endStream: false` half-closes only after the bytes (truncated frames).
 */
export function rawGrpcCall(
  ep: GrpcEndpoint,
  body: Buffer,
  timeoutMs: number,
): Promise<GrpcOutcome> {
  return new Promise((resolve) => {
    const s = session(ep);
    let settled = false;
    const finish = (o: GrpcOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve(o);
    };
    const timer = setTimeout(
      () => finish({ status: undefined, details: '', error: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    s.on('error', (err) => finish({ status: undefined, details: '', error: err.message }));
    const req = s.request({
      ':method': 'POST',
      ':path': PROCESS_EVENT,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    let status: number | undefined;
    let details = '';
    const read = (h: Record<string, unknown>) => {
      if (h['grpc-status'] !== undefined) status = Number(h['grpc-status']);
      if (typeof h['grpc-message'] === 'string') details = decodeURIComponent(h['grpc-message']);
    };
    req.on('response', read);
    req.on('trailers', read);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', (err) => finish({ status, details, error: err.message }));
    req.on('close', () => {
      let decoded: Pick<GrpcOutcome, 'decision' | 'handshake'> = {};
      try {
        decoded = decode(Buffer.concat(chunks));
      } catch {
        // an answer that is no AgentToProxy: neither allow nor a handshake
      }
      finish({ status, details, ...decoded });
    });
    req.end(body);
  });
}
