import {
  DEFAULT_OFFERED_ENCODINGS,
  decodeHandshakeRequest,
  decodeHandshakeResponse,
  encodeHandshakeRequest,
  encodeHandshakeResponse,
} from '@picket/codec';
import {
  type AgentCapabilities,
  type AgentHandler,
  AgentProtocolError,
  describeMessageType,
  type Encoding,
  ErrorCode,
  escapeForLog,
  type HandshakeRequest,
  type HandshakeResponse,
  MessageType,
  PROTOCOL_VERSION,
} from '@picket/protocol';
import type { FrameChannel } from './channel.js';
import type { Logger } from './logger.js';
import { PICKET_UDS_VERSION } from './version.js';

/** How a picket proxy introduces itself by default (Rust proxies say `zentinel-proxy`). */
export const PICKET_PROXY_ID = 'picket-proxy';

/** The picket wire-extension revision a picket agent advertises in its handshake response. */
export const PICKET_EXTENSION_VERSION = 1;

/** Proxy-side handshake settings. */
export interface ProxyHandshakeOptions {
  /** default {@link PICKET_PROXY_ID} */
  proxyId?: string;
  /** default this package's version */
  proxyVersion?: string;
  /** sent as `config`; default `null` */
  config?: unknown;
  /** offered in order of preference; default `DEFAULT_OFFERED_ENCODINGS` from @picket/codec */
  encodings?: readonly Encoding[];
  /** how long to wait for the 0x02 reply; default 5000 ms */
  timeoutMs?: number;
}

/** What a successful proxy-side handshake established. */
export interface ProxyHandshakeResult {
  response: HandshakeResponse;
  encoding: Encoding;
  /** the agent is a picket agent that accepts raw `bin` body data in msgpack */
  binaryBodies: boolean;
}

/** Default wait for the handshake reply. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;

function handshakeFailed(where: string, message: string, cause?: unknown): AgentProtocolError {
  return new AgentProtocolError(ErrorCode.HandshakeFailed, `${where}: ${message}`, { cause });
}

/**
 * Runs the proxy side of the UDS handshake on a fresh channel: sends 0x01 (always
 * JSON) and validates the agent's 0x02. Throws HANDSHAKE_FAILED (refusal, wrong
 * first frame, invalid reply, an encoding we did not offer) or TIMEOUT.
 *
 * JSON is accepted even if it was not offered: it is the protocol's baseline that
 * every agent falls back to, and every picket proxy speaks it.
 */
export async function proxyHandshake(
  channel: FrameChannel,
  options: ProxyHandshakeOptions = {},
): Promise<ProxyHandshakeResult> {
  const where = channel.id;
  const offered = [...(options.encodings ?? DEFAULT_OFFERED_ENCODINGS)];
  const request: HandshakeRequest = {
    supported_versions: [PROTOCOL_VERSION],
    proxy_id: options.proxyId ?? PICKET_PROXY_ID,
    proxy_version: options.proxyVersion ?? PICKET_UDS_VERSION,
    config: options.config ?? null,
    supported_encodings: offered,
  };
  channel.write(MessageType.HandshakeRequest, encodeHandshakeRequest(request));
  const timeoutMs = options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  let frame: Awaited<ReturnType<FrameChannel['readFrame']>>;
  try {
    frame = await channel.readFrame(timeoutMs, 'handshake response');
  } catch (err) {
    const e = AgentProtocolError.from(err, ErrorCode.HandshakeFailed, where);
    if (e.code === ErrorCode.Timeout) {
      throw new AgentProtocolError(
        ErrorCode.Timeout,
        `${where}: agent sent no handshake response within ${timeoutMs} ms`,
        {
          cause: e,
        },
      );
    }
    throw handshakeFailed(where, `connection ended during the handshake: ${e.message}`, e);
  }
  if (frame.type !== MessageType.HandshakeResponse) {
    throw handshakeFailed(
      where,
      `expected HandshakeResponse (0x02) as the first frame, got ${describeMessageType(frame.type)}`,
    );
  }
  let response: HandshakeResponse;
  try {
    response = decodeHandshakeResponse(frame.payload);
  } catch (err) {
    const foreign = foreignDialect(frame.payload);
    if (foreign !== undefined) throw handshakeFailed(where, foreign, err);
    // A refusal from a non-Rust agent may lack complete capabilities: still report its text.
    const refusal = refusalText(frame.payload);
    if (refusal !== undefined)
      throw handshakeFailed(where, `agent refused the handshake: ${escapeForLog(refusal)}`, err);
    throw handshakeFailed(where, `invalid handshake response: ${(err as Error).message}`, err);
  }
  if (!response.success) {
    throw handshakeFailed(
      where,
      `agent refused the handshake: ${escapeForLog(response.error ?? 'Unknown handshake error')}`,
    );
  }
  if (response.encoding !== 'json' && !offered.includes(response.encoding)) {
    throw handshakeFailed(
      where,
      `agent chose encoding "${response.encoding}", which was not offered (${offered.join(', ') || 'none'})`,
    );
  }
  return {
    response,
    encoding: response.encoding,
    binaryBodies: response.picket?.binary_bodies === true,
  };
}

/** Keys only the Go SDK's private v2 dialect puts in a handshake response. */
const GO_DIALECT_KEYS = ['accepted', 'agent_name'] as const;

/**
 * Explains a handshake response in the Zentinel Go SDK's private "v2" dialect
 * (`{protocol_version, agent_name, capabilities, error?, accepted}`, no
 * `success`), with the agent's own error; undefined for anything else.
 */
function foreignDialect(payload: Uint8Array): string | undefined {
  const v = parseObject(payload);
  if (v === undefined || 'success' in v) return undefined;
  if (!GO_DIALECT_KEYS.some((k) => k in v)) return undefined;
  const keys = [...GO_DIALECT_KEYS, 'protocol_version'].filter((k) => k in v);
  const said =
    typeof v.error === 'string' && v.error !== ''
      ? `; the agent's error: "${escapeForLog(v.error)}"`
      : v.accepted === false
        ? '; the agent refused the handshake'
        : '';
  return (
    `the agent answered in a foreign protocol dialect (the Zentinel Go SDK's private v2: a handshake response with ${keys.map((k) => `"${k}"`).join(', ')} and no "success")${said}. ` +
    'Zentinel v2 over unix: cannot talk to it; run the agent with its v1 server and use a v1+unix: endpoint (v1+unix:/path/to/agent.sock)'
  );
}

function parseObject(payload: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(Buffer.from(payload).toString('utf8')) as unknown;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      return v as Record<string, unknown>;
    }
  } catch {
    // not JSON at all
  }
  return undefined;
}

function refusalText(payload: Uint8Array): string | undefined {
  const v = parseObject(payload);
  if (v?.success !== false) return undefined;
  return typeof v.error === 'string' ? v.error : 'Unknown handshake error';
}

/** Agent-side handshake settings. */
export interface AgentHandshakeOptions {
  /** encodings this agent speaks, in no particular order; default json, msgpack, cbor */
  encodings?: readonly Encoding[];
  /** close a client that has not completed the handshake (incl. `onHandshake`) within this; default 10 000 ms */
  timeoutMs?: number;
  logger: Logger;
}

/** What an accepted proxy handshake established. */
export interface AgentHandshakeResult {
  request: HandshakeRequest;
  encoding: Encoding;
  capabilities: AgentCapabilities;
}

/** Encodings a picket agent speaks by default. */
export const DEFAULT_AGENT_ENCODINGS: readonly Encoding[] = ['json', 'msgpack', 'cbor'];

/** Picks the first offered encoding we support; JSON (always spoken) when none or nothing offered. */
export function chooseEncoding(
  offered: readonly string[],
  supported: readonly Encoding[],
): Encoding {
  for (const name of offered) {
    if ((supported as readonly string[]).includes(name)) return name as Encoding;
  }
  return 'json';
}

/**
 * Runs the agent side of the UDS handshake (spec 2.3): the first frame must be
 * 0x01 with a valid request, else the connection is closed without a reply. The
 * handler's `onHandshake` may refuse: the refusal is sent (success:false) and the
 * connection closed. Resolves `undefined` when the connection was closed; the
 * reason has been logged.
 */
export async function agentHandshake(
  channel: FrameChannel,
  handler: AgentHandler,
  options: AgentHandshakeOptions,
): Promise<AgentHandshakeResult | undefined> {
  const { logger } = options;
  const id = channel.id;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let frame: Awaited<ReturnType<FrameChannel['readFrame']>>;
  try {
    frame = await channel.readFrame(timeoutMs, 'handshake request');
  } catch (err) {
    const e = AgentProtocolError.from(err, ErrorCode.ConnectionClosed, id);
    if (e.code === ErrorCode.Timeout) {
      logger.warn('closing connection: no handshake request in time', {
        connection: id,
        timeoutMs,
      });
    } else {
      logger.warn('connection ended before the handshake', { connection: id, reason: e.message });
    }
    channel.destroy(e);
    return undefined;
  }
  if (frame.type !== MessageType.HandshakeRequest) {
    const reason = `expected HandshakeRequest (0x01) as the first frame, got ${describeMessageType(frame.type)}`;
    logger.warn(`closing connection: ${reason}`, { connection: id });
    channel.destroy(new AgentProtocolError(ErrorCode.HandshakeFailed, `${id}: ${reason}`));
    return undefined;
  }
  let request: HandshakeRequest;
  try {
    request = decodeHandshakeRequest(frame.payload);
  } catch (err) {
    const reason = `undecodable handshake request: ${(err as Error).message}`;
    logger.warn(`closing connection: ${reason}`, { connection: id });
    channel.destroy(
      new AgentProtocolError(ErrorCode.HandshakeFailed, `${id}: ${reason}`, { cause: err }),
    );
    return undefined;
  }

  let capabilities: AgentCapabilities;
  let refusal: string | undefined;
  try {
    capabilities = handler.capabilities();
  } catch (err) {
    logger.error('handler.capabilities() threw; closing connection', {
      connection: id,
      error: err,
    });
    channel.destroy(AgentProtocolError.from(err, ErrorCode.HandlerError, `${id}: capabilities()`));
    return undefined;
  }
  if (handler.onHandshake !== undefined) {
    // The handshake timeout covers the handler too: a hung hook must not pin the socket.
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), Math.max(0, deadline - Date.now()));
    });
    try {
      const decision = await Promise.race([
        Promise.resolve(handler.onHandshake({ kind: 'handshake', request })),
        expired,
      ]);
      if (decision === 'expired') {
        logger.warn('closing connection: handler.onHandshake did not decide in time', {
          connection: id,
          timeoutMs,
        });
        channel.destroy(new AgentProtocolError(ErrorCode.Timeout, `${id}: onHandshake timed out`));
        return undefined;
      }
      if (!decision.accept) refusal = decision.error;
    } catch (err) {
      logger.error('handler.onHandshake threw; refusing the handshake', {
        connection: id,
        error: err,
      });
      refusal = 'agent handshake handler failed';
    } finally {
      clearTimeout(timer);
    }
  }
  if (channel.closed) return undefined;

  const encoding =
    refusal === undefined
      ? chooseEncoding(request.supported_encodings, options.encodings ?? DEFAULT_AGENT_ENCODINGS)
      : 'json';
  const response: HandshakeResponse = {
    protocol_version: PROTOCOL_VERSION,
    capabilities,
    success: refusal === undefined,
    error: refusal ?? null,
    encoding,
    picket: { version: PICKET_EXTENSION_VERSION, binary_bodies: true },
  };
  try {
    channel.write(MessageType.HandshakeResponse, encodeHandshakeResponse(response));
  } catch (err) {
    logger.error('could not send the handshake response; closing connection', {
      connection: id,
      error: err,
    });
    channel.destroy(AgentProtocolError.from(err, ErrorCode.Internal, id));
    return undefined;
  }
  if (refusal !== undefined) {
    logger.info('handshake refused by the handler', {
      connection: id,
      proxyId: request.proxy_id,
      error: refusal,
    });
    await channel.end();
    return undefined;
  }
  return { request, encoding, capabilities };
}
