import { performance } from 'node:perf_hooks';
import { type AgentCapabilities, escapeForLog, jsonForLog } from '@picket/protocol';
import { formatEndpoint, V2Transport } from '@picket/transport';
import {
  CLIENT_OPTIONS_HELP,
  clientCommand,
  connectFailure,
  describeFailure,
  EXIT_FAILURE,
  EXIT_OK,
  intOption,
  ms,
} from './common.js';

export const PROBE_HELP = `Usage: picket probe <endpoint> [options]

Connects to an agent, performs the handshake, prints its capabilities and
measures ping round trips. Exit code 1 when the agent cannot be reached.

Options:
  --count <n>              pings to send (default 3; 0 = none)
${CLIENT_OPTIONS_HELP}

Examples:
  picket probe /tmp/echo.sock
  picket probe 127.0.0.1:50051 --json
  picket probe https://waf.internal:50051 --tls-ca ca.pem
  picket probe reverse+unix:/tmp/agents.sock --agent-id echo-agent --connect-timeout 30000`;

const EVENT_NAMES = [
  '',
  'request_headers',
  'request_body_chunk',
  'response_headers',
  'response_body_chunk',
  'request_complete',
  'websocket_frame',
  'guardrail_inspect',
  'configure',
];

function eventNames(caps: AgentCapabilities): string[] {
  return caps.supported_events.map((n) => EVENT_NAMES[n] || `#${n}`);
}

function features(caps: AgentCapabilities): string[] {
  return Object.entries(caps.features ?? {})
    .filter(([, v]) => v !== false && v !== null && v !== undefined && v !== 0)
    .map(([k, v]) => (v === true ? k : `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`));
}

/** `picket probe`. */
export async function probe(args: string[]): Promise<number> {
  const cmd = clientCommand('probe', args, { count: { type: 'string' } }, PROBE_HELP);
  if (cmd === undefined) return EXIT_OK;
  const { values: v, ep, agentId, options, timeoutMs } = cmd;
  const count = intOption('probe', 'count', v.count, 3);

  const started = performance.now();
  let t: V2Transport;
  try {
    t = await V2Transport.connect(agentId, ep, options);
  } catch (err) {
    process.stderr.write(`picket probe: ${connectFailure(err, ep)}\n`);
    return EXIT_FAILURE;
  }
  const connectMs = performance.now() - started;
  const pings: number[] = [];
  let pingError: string | undefined;
  try {
    for (let i = 0; i < count; i++) pings.push(await t.ping({ timeoutMs }));
  } catch (err) {
    pingError = describeFailure(err, ep.endpoint);
  } finally {
    await t.close().catch(() => {});
  }
  const caps = t.capabilities;
  const pingStats =
    pings.length > 0
      ? {
          count: pings.length,
          avgMs: pings.reduce((a, b) => a + b, 0) / pings.length,
          minMs: Math.min(...pings),
          maxMs: Math.max(...pings),
        }
      : undefined;
  if (v.json) {
    const out = {
      ok: pingError === undefined,
      endpoint: ep.endpoint,
      canonical: formatEndpoint(ep),
      transport: t.kind,
      encoding: t.encoding,
      agentId: t.agentId,
      capabilities: caps,
      connectMs,
      ping: pingStats ?? null,
      ...(pingError !== undefined && { error: pingError }),
    };
    process.stdout.write(`${jsonForLog(out, 2)}\n`);
  } else {
    const rows: [string, string][] = [
      ['endpoint', `${formatEndpoint(ep)} (${t.kind})`],
      ['agent', `${caps.agent_id} "${caps.name}" ${caps.version}`],
      ['encoding', t.encoding],
      ['events', eventNames(caps).join(', ') || '(none announced)'],
      ['features', features(caps).join(', ') || '(none)'],
      [
        'limits',
        Object.entries(caps.limits ?? {})
          .map(([k, x]) => `${k}=${x}`)
          .join(', '),
      ],
      ['connect', `${ms(connectMs)} (connect + handshake)`],
    ];
    if (pingStats) {
      rows.push([
        'ping',
        `${ms(pingStats.avgMs)} avg of ${pingStats.count} (min ${ms(pingStats.minMs)}, max ${ms(pingStats.maxMs)})`,
      ]);
    }
    // the agent's id, name and version are its own text: escaped
    for (const [k, x] of rows) process.stdout.write(`${k.padEnd(9)} ${escapeForLog(x)}\n`);
    if (pingError !== undefined) process.stderr.write(`picket probe: ping failed: ${pingError}\n`);
  }
  return pingError === undefined ? EXIT_OK : EXIT_FAILURE;
}
