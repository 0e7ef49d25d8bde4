/**
 * `picket serve <agent> --prox`: a reference agent as a prox plugin (see @picket/prox). stdout is
 * prox's control channel, so every message of ours — `--log-events` included — goes to stderr,
 * which prox logs tagged with the plugin's name. Ends (exit 0) when prox closes stdin, or on
 * SIGTERM / SIGINT; the hook socket and its private directory are removed first.
 */
import type { AgentHandler } from '@picket/protocol';
import { escapeForLog } from '@picket/protocol';
import { serveAgentAsProxPlugin, stderrLogger } from '@picket/prox';
import { describeFailure, EXIT_FAILURE, EXIT_OK, UsageError } from './common.js';
import { withEventLog } from './event-log.js';

/** Options of `picket serve` that make no sense for a prox plugin. */
const NOT_FOR_PROX = [
  'listen',
  'reverse',
  'connections',
  'token',
  'token-file',
  'tls-cert',
  'tls-key',
  'tls-ca',
  'tls-server-name',
  'tls-insecure',
  'json',
];

/** Serves `handler` as a prox plugin until stdin ends; resolves to the exit code. */
export async function serveProx(
  handler: AgentHandler & { agentId: string },
  v: Record<string, unknown>,
): Promise<number> {
  for (const flag of NOT_FOR_PROX) {
    if (v[flag] !== undefined) {
      throw new UsageError(
        `--${flag} does not apply to --prox (prox starts the plugin and talks to it on stdin/stdout and its own socket)`,
        'serve',
      );
    }
  }
  const logger = stderrLogger('picket serve');
  const agent = v['log-events']
    ? withEventLog(handler, (_event, text) =>
        process.stderr.write(`picket serve: ${escapeForLog(text)}\n`),
      )
    : handler;
  let plugin: Awaited<ReturnType<typeof serveAgentAsProxPlugin>>;
  try {
    plugin = await serveAgentAsProxPlugin(agent, { logger, exitOnEnd: false });
  } catch (err) {
    process.stderr.write(`picket serve: ${escapeForLog(describeFailure(err, 'serve'))}\n`);
    return EXIT_FAILURE;
  }
  logger.info(
    `${handler.agentId} serving prox hooks ${plugin.hooks.join(', ')} on ${plugin.socketPath}`,
  );
  const stop = (): void => {
    void plugin.close();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await plugin.done;
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
  return EXIT_OK;
}
