import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { encodeRegistrationRequest } from '@picket/codec';
import { encodeFrame, type Frame, FrameDecoder } from '@picket/framing';
import {
  type AgentHandler,
  allow,
  createCapabilities,
  MessageType,
  type RegistrationRequest,
  setHeader,
} from '@picket/protocol';

interface Vector {
  id: string;
  frameHex: string;
  payloadText: string;
}
const vectors: Vector[] = (
  JSON.parse(
    readFileSync(new URL('./fixtures/registration-vectors.json', import.meta.url), 'utf8'),
  ) as { vectors: Vector[] }
).vectors;

/** The golden frame `id` (V9a, V9b, V9c) from the spec. */
export function golden(id: string): Buffer {
  const v = vectors.find((x) => x.id === id);
  if (v === undefined) throw new Error(`no golden vector ${id}`);
  return Buffer.from(v.frameHex, 'hex');
}

/** The pinned epoch of V9b: connection id suffix `19b76daa800`. */
export const V9_EPOCH_MS = 1767225600000;

/** A handler that stamps every request with its agent id (and the connection it came in on). */
export function stampHandler(agentId: string): AgentHandler {
  return {
    capabilities: () => createCapabilities({ agentId, name: `agent ${agentId}`, version: '1.0.0' }),
    onRequestHeaders: (_e, ctx) =>
      allow({
        requestHeaders: [
          setHeader('x-agent', agentId),
          setHeader('x-connection', ctx.connectionId),
        ],
      }),
  };
}

/** A RegistrationRequest with Rust-default capabilities (as in V9a). */
export function registration(overrides: Partial<RegistrationRequest> = {}): RegistrationRequest {
  const agentId = overrides.agent_id ?? 'waf-1';
  return {
    protocol_version: 2,
    agent_id: agentId,
    capabilities: createCapabilities({
      agentId,
      name: 'Echo Agent',
      version: '1.0.0',
      events: ['request_headers'],
    }),
    auth_token: null,
    metadata: null,
    ...overrides,
  };
}

/** Frame 0x01 carrying `req`. */
export function registrationFrame(req: RegistrationRequest): Buffer {
  return Buffer.from(encodeFrame(MessageType.HandshakeRequest, encodeRegistrationRequest(req)));
}

export type Target = { path: string } | { host: string; port: number };

/** Opens a raw socket to a listener. */
export function rawConnect(target: Target): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(target as net.NetConnectOpts);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** What a raw peer saw: the bytes received and whether the proxy closed the socket. */
export interface Exchange {
  bytes: Buffer;
  frames: Frame[];
  closed: boolean;
}

/**
 * Sends `bytes` (nothing if undefined) on a fresh socket and collects what comes
 * back until the proxy closes, or `waitMs` passes (a hang guard).
 */
export async function exchange(
  target: Target,
  bytes: Buffer | undefined,
  options: { waitMs?: number; untilFrames?: number; end?: boolean } = {},
): Promise<Exchange & { socket: net.Socket }> {
  const socket = await rawConnect(target);
  socket.on('error', () => {});
  const chunks: Buffer[] = [];
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  let closed = false;
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, options.waitMs ?? 5000);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      try {
        frames.push(...decoder.push(c));
      } catch {
        // raw bytes are still collected
      }
      if (options.untilFrames !== undefined && frames.length >= options.untilFrames) {
        clearTimeout(timer);
        resolve();
      }
    });
    socket.once('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve();
    });
  });
  if (bytes !== undefined) socket.write(bytes);
  if (options.end === true) socket.end();
  await done;
  return { bytes: Buffer.concat(chunks), frames, closed, socket };
}

/** Decodes a frame's JSON payload. */
export function json(frame: Frame | undefined): Record<string, unknown> {
  if (frame === undefined) throw new Error('no frame');
  return JSON.parse(Buffer.from(frame.payload).toString('utf8')) as Record<string, unknown>;
}

export { captureLogger, type LogEntry, tempSocket, until } from '@picket/compliance';
