/**
 * `picket serve … --listen spoe://host:port`: the agent served to HAProxy's SPOE
 * filter (@picket/spoe). Kept out of the facade's endpoint grammar, which names
 * agents a proxy connects to with picket's own clients; an SPOE listener only serves.
 */
import type { AgentHandler, AgentServer, Logger } from '@picket/protocol';
import { SpoeAgentServer } from '@picket/spoe';
import { UsageError } from './common.js';

/** Whether a `--listen` value is an SPOE listener. */
export function isSpoeListen(value: string): boolean {
  return value.trim().toLowerCase().startsWith('spoe://');
}

/** `spoe://host:port` (IPv6 in brackets) → where to bind; a usage error names what is wrong. */
export function spoeListen(value: string): { host: string; port: number } {
  const m = /^spoe:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})\/?$/i.exec(value.trim());
  const port = Number(m?.[2]);
  if (m === null || !(port <= 65_535)) {
    throw new UsageError(
      `--listen ${value}: expected spoe://host:port (e.g. spoe://127.0.0.1:12345)`,
      'serve',
    );
  }
  return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port };
}

/** Starts one SPOE agent server per listener; on a failure closes those started and rethrows. */
export async function startSpoe(
  listens: readonly { host: string; port: number }[],
  handler: AgentHandler,
  logger?: Logger,
): Promise<AgentServer[]> {
  const servers: AgentServer[] = [];
  try {
    for (const l of listens) {
      const s = new SpoeAgentServer(handler, { ...l, ...(logger !== undefined && { logger }) });
      servers.push(s);
      await s.listen();
    }
  } catch (err) {
    await Promise.allSettled(servers.map((s) => s.close()));
    throw err;
  }
  return servers;
}
