import * as net from 'node:net';
import { AgentProtocolError, type Encoding, ErrorCode } from '@picket/protocol';
import { socketError } from '@picket/protocol/internal';
import { FrameChannel } from './channel.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, proxyHandshake } from './handshake.js';
import { defaultLogger, type Logger } from './logger.js';
import { ProxyConnection } from './proxy-connection.js';
import { SocketReader } from './socket-reader.js';

/** Options of {@link AgentClientV2Uds.connect}. */
export interface UdsClientOptions {
  /**
   * Default per-call timeout in ms. Default 1000: the Rust proxy's per-agent
   * `timeout_ms` default, since a proxy waits on this for every request.
   */
  timeoutMs?: number;
  /** give up connecting after this; default 5000 ms */
  connectTimeoutMs?: number;
  /** give up waiting for the agent's handshake reply after this; default 5000 ms */
  handshakeTimeoutMs?: number;
  /** offered in order of preference; default `DEFAULT_OFFERED_ENCODINGS` from @picket/codec */
  encodings?: readonly Encoding[];
  /** `proxy_id` in the handshake; default `picket-proxy` */
  proxyId?: string;
  /** `proxy_version` in the handshake; default this package's version */
  proxyVersion?: string;
  /** `config` in the handshake; default `null` */
  config?: unknown;
  /**
   * Send raw `bin` body data in msgpack when the agent advertises the picket
   * extension (default). `false` always sends base64 text, as towards Rust agents.
   */
  binaryBodies?: boolean;
  /** largest frame length accepted and written; default 16 MiB */
  maxFrameLength?: number;
  /** bytes allowed to queue while the agent is not reading; default 16 MiB */
  maxWriteQueueBytes?: number;
  /** where diagnostics go; default warn/error to the console */
  logger?: Logger;
  /** epoch-ms clock for cancel / ping timestamps (tests pin it) */
  clock?: () => number;
}

/** Default connect timeout. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

let clientCounter = 0;

function openSocket(
  path: string,
  timeoutMs: number,
  where: string,
  reader: SocketReader,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ path, onread: reader.onread });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new AgentProtocolError(
          ErrorCode.Timeout,
          `${where}: could not connect within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    const onError = (err: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      reject(socketError(err, 'connect', `unix:${path}`, { who: where }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * Proxy side of the v2 binary protocol over a Unix socket (the seeds' `AgentClientV2Uds`).
 *
 * ```ts
 * const agent = await AgentClientV2Uds.connect('waf', '/run/waf.sock');
 * const reply = await agent.sendRequestHeaders(event, { timeoutMs: 200 });
 * ```
 *
 * Connecting performs the handshake (always JSON, as spec 2.3) with connect and
 * handshake timeouts, so a silent agent never hangs the caller. Everything after
 * the handshake is the shared {@link ProxyConnection} engine.
 */
export class AgentClientV2Uds extends ProxyConnection {
  /** the socket path this client is connected to */
  readonly path: string;

  private constructor(path: string, ...args: ConstructorParameters<typeof ProxyConnection>) {
    super(...args);
    this.path = path;
  }

  /**
   * Connects to the agent listening on `path` (a leading `unix:` is stripped, as
   * the Rust pool does), performs the handshake and returns the ready client.
   * Rejects with CONNECTION_FAILED, TIMEOUT or HANDSHAKE_FAILED.
   */
  static async connect(
    agentId: string,
    path: string,
    options: UdsClientOptions = {},
  ): Promise<AgentClientV2Uds> {
    const socketPath = path.startsWith('unix:') ? path.slice(5) : path;
    const id = `uds:${agentId}#${++clientCounter}`;
    const reader = new SocketReader();
    const socket = await openSocket(
      socketPath,
      options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      id,
      reader,
    );
    const channel = new FrameChannel(socket, {
      id,
      reader,
      maxFrameLength: options.maxFrameLength,
      maxWriteQueueBytes: options.maxWriteQueueBytes,
    });
    try {
      const result = await proxyHandshake(channel, {
        proxyId: options.proxyId,
        proxyVersion: options.proxyVersion,
        config: options.config,
        encodings: options.encodings,
        timeoutMs: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      });
      return new AgentClientV2Uds(socketPath, channel, {
        kind: 'uds',
        id,
        agentId,
        capabilities: result.response.capabilities,
        encoding: result.encoding,
        binaryBodies: result.binaryBodies && options.binaryBodies !== false,
        handshake: result.response,
        timeoutMs: options.timeoutMs,
        logger: options.logger ?? defaultLogger,
        clock: options.clock,
      });
    } catch (err) {
      channel.destroy();
      throw AgentProtocolError.from(err, ErrorCode.HandshakeFailed, id);
    }
  }
}
