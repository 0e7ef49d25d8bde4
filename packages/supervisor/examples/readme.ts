import { createConsoleLogger, type Logger } from '@picket/protocol';
import { readyWhenConnectable, Supervisor } from '@picket/supervisor';

/**
 * Runs a Zentinel agent that listens on a Unix socket, e.g.
 * `['picket', 'serve', 'denylist', '--listen', 'unix:/run/picket/denylist.sock']`,
 * until `signal` aborts. Resolves once the agent accepts connections.
 */
export async function runAgent(
  command: string[],
  socket: string,
  signal: AbortSignal,
  logger: Logger = createConsoleLogger('agents', { verbose: true }),
): Promise<Supervisor> {
  const agent = new Supervisor({
    name: 'denylist', // tags its stderr lines, logs, events and metrics
    command,
    ready: readyWhenConnectable(`unix:${socket}`),
    readyTimeoutMs: 10_000, // not listening by then: killed and started again
    stopGraceMs: 2_000, // stop: stdin closed, 2 s, SIGTERM, 2 s, SIGKILL (to its process group)
    backoff: { initialMs: 250, maxMs: 30_000, stableAfterMs: 10_000 },
    logger,
    signal, // aborting it stops the agent: no timer or child outlives the owner
  });
  agent.on('state', (state, prev) => logger.info(`denylist: ${prev} → ${state}`));
  await agent.start(); // the first ready; every restart after that is automatic
  return agent;
}
