/**
 * Registration as a function over a frame channel: read the RegistrationRequest frame,
 * decode it, run admission's checks, and say what the listener should do. It never writes
 * to the peer and never sees a socket, so the order of the checks and the texts of the
 * answers live in one place.
 */
import type { PeerCertificate } from 'node:tls';
import {
  AgentProtocolError,
  ErrorCode,
  parseRegistrationRequest,
  type RegistrationRequest,
} from '@picket/protocol';
import { type Admission, Rejection } from './admission.js';
import { redact, type TokenVerifyInfo } from './auth.js';
import type { ReverseTransportKind } from './connection.js';
import type { FirstFrame } from './first-frame.js';

/** What registration needs from the accepted connection. */
export interface RegistrationChannel {
  /** the listener's name for the socket, e.g. `reverse:tcp#12` (for the log) */
  readonly id: string;
  readonly transport: ReverseTransportKind;
  /** reads the first frame, with the registration's size limit and deadline */
  readFrame(): Promise<FirstFrame>;
  /** true once the peer has closed or reset the connection */
  readonly gone: boolean;
  /** true once the listener began closing */
  readonly closing: boolean;
  /** the peer, as the token verifier gets to know it */
  peer(): {
    remoteAddress?: string;
    remotePort?: number;
    authorized?: boolean;
    peerCertificate?: PeerCertificate;
  };
}

/** What the listener does with a registration attempt. */
export type RegistrationOutcome =
  /** admitted so far: the caps are checked next, synchronously with the success answer */
  | { kind: 'admit'; request: RegistrationRequest; hasToken: boolean; rest: Buffer }
  /** close without an answer (failures before validation, spec §3; a peer already gone) */
  | { kind: 'drop'; rejection: Rejection; agentId?: string }
  /** answer `success:false` with the rejection's text, then close */
  | { kind: 'refuse'; rejection: Rejection; agentId: string };

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** An error text of a decode failure with anything that could be the token removed. */
function sanitizeDecodeError(message: string, raw: unknown): string {
  let text = message;
  const token =
    raw !== null && typeof raw === 'object'
      ? (raw as Record<string, unknown>).auth_token
      : undefined;
  if (token !== undefined && token !== null) {
    // A token of the wrong type is described by the validator; say only that it is wrong.
    if (text.includes('auth_token'))
      return 'RegistrationRequest.auth_token: expected a string or null';
    text = redact(text, typeof token === 'string' ? token : String(token));
  }
  return text;
}

function closing(agentId?: string): RegistrationOutcome {
  const rejection = new Rejection('accept', ErrorCode.Unavailable, 'listener is closing');
  return agentId === undefined ? { kind: 'drop', rejection } : { kind: 'drop', rejection, agentId };
}

/**
 * Runs one registration over `channel`. The returned request has `auth_token: null`: from
 * decoding on, only a local variable holds the token, and it is never logged or returned.
 */
export async function register(
  channel: RegistrationChannel,
  admission: Admission,
  requireAuth: boolean,
): Promise<RegistrationOutcome> {
  let frame: FirstFrame;
  try {
    frame = await channel.readFrame();
  } catch (err) {
    const e = AgentProtocolError.from(err, ErrorCode.InvalidMessage, channel.id);
    return { kind: 'drop', rejection: new Rejection('read', e.code, e.message) };
  }
  if (channel.closing) return closing();

  // Decoding. Failures here are "before validation": no response (spec §3). The
  // reasons are built so they cannot contain the token.
  let raw: unknown;
  try {
    raw = JSON.parse(UTF8.decode(frame.payload));
  } catch {
    return {
      kind: 'drop',
      rejection: new Rejection(
        'decode',
        ErrorCode.InvalidMessage,
        `RegistrationRequest is not valid UTF-8 JSON (${frame.payload.length} bytes)`,
      ),
    };
  }
  let request: RegistrationRequest;
  try {
    request = parseRegistrationRequest(raw);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return {
      kind: 'drop',
      rejection: new Rejection(
        'decode',
        ErrorCode.InvalidMessage,
        `invalid RegistrationRequest: ${sanitizeDecodeError(message, raw)}`,
      ),
    };
  }
  const agentId = request.agent_id;
  const token = request.auth_token;
  // From here on only `token` holds the secret; it is never logged or emitted.
  request.auth_token = null;

  const invalid = admission.validate(request, token);
  if (invalid !== undefined) return { kind: 'refuse', rejection: invalid, agentId };

  if (requireAuth) {
    const info: TokenVerifyInfo = {
      transport: channel.transport,
      ...channel.peer(),
      metadata: request.metadata,
      capabilities: request.capabilities,
    };
    const denied = await admission.authenticate(agentId, token as string, info, channel.id);
    if (denied !== undefined) {
      return channel.gone
        ? {
            kind: 'drop',
            rejection: new Rejection('auth', denied.code, `${denied.text} (peer gone)`),
            agentId,
          }
        : { kind: 'refuse', rejection: denied, agentId };
    }
  }
  if (channel.gone) {
    return {
      kind: 'drop',
      rejection: new Rejection(
        'read',
        ErrorCode.ConnectionClosed,
        'peer closed the connection during registration',
      ),
      agentId,
    };
  }
  if (channel.closing) return closing(agentId);
  return { kind: 'admit', request, hasToken: token !== null, rest: frame.rest };
}
