/**
 * The embedded default setup: an echo upstream, a denylist agent over UDS, an
 * echo agent over gRPC and a body inspector joined by reverse connection, all
 * in this process, plus the gateway config that wires them together.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DenylistAgent, EchoAgent } from '@picket/agents';
import { serve } from '@picket/transport';
import { type AgentLayer, createAgentLayer } from './agents.js';
import { type GatewayConfig, parseConfig } from './config.js';
import { type EchoUpstream, startEchoUpstream } from './echo-upstream.js';
import type { GatewayLogger } from './gateway.js';
import { InspectorAgent } from './inspector-agent.js';

/** The demo's blocked path prefix and IP range. */
export const DEMO_BLOCKED_PATH = '/admin';
export const DEMO_BLOCKED_RANGE = '203.0.113.0/24';

/** Everything the embedded setup started; `close()` stops it all. */
export interface EmbeddedSetup {
  config: GatewayConfig;
  agents: AgentLayer;
  upstream: EchoUpstream;
  /** where each agent lives, for the banner */
  endpoints: { denylist: string; echo: string; inspector: string };
  close(): Promise<void>;
}

const silent = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Starts the upstream and the three agents, builds the config (gateway on
 * `listen`), opens the agent pool and waits until every agent — the reverse
 * one included — has a connection.
 */
export async function startEmbedded(listen: string, log?: GatewayLogger): Promise<EmbeddedSetup> {
  const dir = mkdtempSync(join(tmpdir(), 'picket-gateway-'));
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  // a last resort when the process ends without close() (process.exit, an uncaught error)
  process.once('exit', removeDir);
  const cleanups: (() => Promise<unknown>)[] = [];
  let agents: AgentLayer | undefined;
  const closeAll = async () => {
    // the pool first, so agents going away are not reported as lost connections
    await agents?.close().catch(() => {});
    for (const c of cleanups.reverse()) await c().catch(() => {});
    removeDir();
    process.off('exit', removeDir);
  };
  try {
    const upstream = await startEchoUpstream('echo');
    cleanups.push(() => upstream.close());

    // each agent is served by @picket/transport's serve(): the endpoint string picks the server
    const denylistEndpoint = `unix:${join(dir, 'denylist.sock')}`;
    const denylist = await serve(
      denylistEndpoint,
      new DenylistAgent({
        agentId: 'denylist',
        blockedPaths: [DEMO_BLOCKED_PATH],
        blockedIps: [DEMO_BLOCKED_RANGE],
      }),
      { logger: silent },
    );
    cleanups.push(() => denylist.drain(500));

    const echo = await serve('grpc://127.0.0.1:0', new EchoAgent({ agentId: 'echo' }));
    cleanups.push(() => echo.drain(500));
    const echoEndpoint = echo.endpoints[0] as string; // grpc://127.0.0.1:<the port picked>

    const reversePath = join(dir, 'reverse.sock');
    const token = randomBytes(16).toString('hex');
    const config = parseConfig(
      {
        listen,
        // demo only: lets `curl -H 'x-forwarded-for: 203.0.113.7'` play a blocked client
        client_ip_header: 'x-forwarded-for',
        upstreams: { echo: upstream.url },
        agents: {
          denylist: {
            endpoint: denylistEndpoint,
            events: ['request_headers'],
            failure_mode: 'closed',
          },
          inspector: {
            endpoint: `reverse+unix:${reversePath}`,
            events: ['request_headers', 'request_body'],
            body_mode: 'buffer',
            max_body_bytes: 64 * 1024,
            failure_mode: 'closed',
            auth_token: token,
            connections: 1,
          },
          echo: {
            endpoint: echoEndpoint,
            events: ['request_headers', 'response_headers', 'request_complete'],
            failure_mode: 'open',
          },
        },
        routes: [
          {
            name: 'api',
            path_prefix: '/api',
            upstream: 'echo',
            agents: ['denylist', 'inspector', 'echo'],
          },
          { name: 'default', path_prefix: '/', upstream: 'echo', agents: ['denylist', 'echo'] },
        ],
      },
      'embedded default',
    );

    agents = await createAgentLayer(config, log);

    // dials the pool's reverse listener; resolves once registered
    const inspector = await serve(`reverse+unix:${reversePath}`, new InspectorAgent('inspector'), {
      logger: silent,
      reverse: { authToken: token, waitTimeoutMs: 10_000 },
    });
    cleanups.push(() => inspector.drain(500));
    const layer = agents;
    await waitHealthy(layer, [...config.agents.keys()], 10_000);

    return {
      config,
      agents: layer,
      upstream,
      endpoints: {
        denylist: denylistEndpoint,
        echo: echoEndpoint,
        inspector: `reverse+unix:${reversePath}`,
      },
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** Waits until every named agent has a healthy connection in the pool. */
export async function waitHealthy(
  agents: AgentLayer,
  names: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const missing = names.filter((n) => agents.pool.agentStats(n)?.isHealthy !== true);
    if (missing.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`agents not ready after ${timeoutMs} ms: ${missing.join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
