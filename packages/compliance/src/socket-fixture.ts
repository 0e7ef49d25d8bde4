/** A compliance fixture for agent servers on a Unix socket, shared by the transports that have one. */
import type { AgentHandler, AgentPush, AgentTransport, TransportEncoding } from '@picket/protocol';
import type { ComplianceFixture } from './suite.js';
import { tempSocket } from './testkit.js';

/** What {@link unixSocketFixture} needs of an agent server (`UdsAgentServerV2` has it). */
export interface UnixAgentServer extends Partial<AgentPush> {
  listen(): Promise<unknown>;
  /** the live connections, which a crash destroys */
  readonly connections: Iterable<{ destroy(): void }>;
  close(options: { drainTimeoutMs: number }): Promise<void>;
}

/** The server's push API, when it has one. */
function pushOf(server: UnixAgentServer): AgentPush | undefined {
  return typeof server.pause === 'function' && typeof server.reportHealth === 'function'
    ? (server as AgentPush)
    : undefined;
}

/**
 * A fixture that starts `serve(path, handler)` on a socket in a fresh temp dir
 * and opens `connect(path, encoding)` to it. `crash` destroys the server's
 * connections without a goodbye; `close` closes the transport, then the server
 * (no drain), then removes the dir. A server with the push API is handed on as `push`.
 */
export function unixSocketFixture<E extends TransportEncoding>(
  serve: (path: string, handler: AgentHandler) => UnixAgentServer,
  connect: (path: string, encoding: E) => Promise<AgentTransport>,
): ComplianceFixture<E> {
  return async (handler, { encoding }) => {
    const sock = tempSocket();
    const server = serve(sock.path, handler);
    await server.listen();
    const transport = await connect(sock.path, encoding);
    const push = pushOf(server);
    return {
      transport,
      ...(push === undefined ? {} : { push }),
      crash: async () => {
        for (const c of server.connections) c.destroy();
      },
      close: async () => {
        await transport.close();
        await server.close({ drainTimeoutMs: 0 });
        sock.cleanup();
      },
    };
  };
}
