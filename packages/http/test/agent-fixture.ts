/**
 * The engine tests' agent plumbing: an agent served over a real Unix socket in a fresh
 * temporary directory, a pool with it added under `name`, and one call that closes it all.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentHandler } from '@picket/protocol';
import { createPool } from '@picket/transport';
import { UdsAgentServerV2 } from '@picket/uds';

export interface AgentFixture {
  /** the temporary directory (removed by `close`) */
  readonly dir: string;
  readonly pool: ReturnType<typeof createPool>;
  close(): Promise<void>;
}

export async function servedAgent(
  prefix: string,
  handler: AgentHandler,
  name: string,
  failureMode?: 'open' | 'closed',
): Promise<AgentFixture> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const socket = join(dir, 'agent.sock');
  const agentServer = new UdsAgentServerV2(socket, handler);
  await agentServer.listen();
  const pool = createPool({ requestTimeoutMs: 10_000, connectTimeoutMs: 2_000 });
  await pool.addAgent(name, socket, failureMode === undefined ? {} : { failureMode });
  return {
    dir,
    pool,
    async close() {
      await pool.close({ drainTimeoutMs: 0 });
      await agentServer.close({ drainTimeoutMs: 0 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Listens on 127.0.0.1 on a free port; resolves to the port. */
export async function listenLocal(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** Drops the server's connections and closes it. */
export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}
