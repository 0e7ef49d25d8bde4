/** `picket conform`: runs the behaviour suite against an agent and prints a pass/fail table. */
import { performance } from 'node:perf_hooks';
import { escapeForLog, jsonForLog } from '@picket/protocol';
import { formatEndpoint } from '@picket/transport';
import {
  CLIENT_OPTIONS_HELP,
  clientCommand,
  connectFailure,
  describeFailure,
  EXIT_FAILURE,
  EXIT_OK,
  intOption,
  UsageError,
} from './common.js';
import { TRANSPORT_CHECKS } from './conform/checks.js';
import {
  type Check,
  type CheckResult,
  type ConformContext,
  fail,
  sharedTransport,
  skip,
} from './conform/context.js';
import { idSource } from './conform/events.js';
import { type RawTarget, rawTarget } from './conform/targets.js';
import { WIRE_CHECKS } from './conform/wire-checks.js';

const CHECKS: readonly Check[] = [...TRANSPORT_CHECKS, ...WIRE_CHECKS];

export const CONFORM_HELP = `Usage: picket conform <endpoint> [options]

Runs the behaviour suite against an agent, as a proxy would meet it, and
prints one row per check: PASS, FAIL or SKIP with a one-line reason.

Checks:
  handshake               capabilities are sane (agent id, protocol version, encoding)
  event:<type>            each event type the agent declares is answered in time:
                          request_headers, request_body_chunk, response_headers,
                          response_body_chunk, request_complete, websocket_frame,
                          guardrail_inspect, configure
  correlation             answers carry the request's correlation id
  concurrent              32 requests at once, none answered with another's data
  cancel                  a request cancelled mid-way; the agent keeps answering
  flow                    256 requests in flight at once, all answered
  ping                    a ping round trip
  oversize                a frame over the size limit: refused, agent keeps serving
  malformed:garbage       bytes that are no frame at all
  malformed:bad-payload   bad JSON / msgpack, and JSON of the wrong shape
  malformed:unknown-type  a frame type (v1: event type) that does not exist
  malformed:truncated     a frame cut short by the end of the stream
  version                 a handshake offering only an unknown protocol version
The oversize, malformed and version checks write raw bytes on fresh
connections: unix: and v1+unix: (picket dials), reverse+unix: and
reverse+tcp:// (picket listens and answers the agent's registration itself;
the agent must reconnect after each), plaintext gRPC (one raw HTTP/2
ProcessEvent call each; the size limit is grpc-js' 4 MiB default). After
each, the agent must answer a
request on a new connection, and it must never answer allow to malformed input.

Options:
  --only <names>           run only these checks (comma separated; "event" and
                           "malformed" select their whole group)
  --timeout <ms>           per-call limit, also how long to wait for a reaction (default 5000)
${CLIENT_OPTIONS_HELP}

Exit codes: 0 every check passed (or was skipped), 1 a check failed or the agent
could not be reached, 2 bad usage.

Examples:
  picket conform unix:/tmp/agent.sock
  picket conform grpc://127.0.0.1:50051 --only handshake,event --json
  picket conform reverse+unix:/tmp/agents.sock --agent-id waf --token s3cret --connect-timeout 30000`;

function selected(only: string | undefined): readonly Check[] {
  if (only === undefined) return CHECKS;
  const names = only
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new UsageError('--only needs at least one check name', 'conform');
  for (const n of names) {
    if (!CHECKS.some((c) => c.name === n || c.name.startsWith(`${n}:`))) {
      throw new UsageError(
        `--only: unknown check "${n}" (checks: ${CHECKS.map((c) => c.name).join(', ')})`,
        'conform',
      );
    }
  }
  return CHECKS.filter((c) => names.some((n) => c.name === n || c.name.startsWith(`${n}:`)));
}

/** The agent could not be reached: the message says why in plain words. */
class Unreachable extends Error {}

interface Row extends CheckResult {
  name: string;
  ms: number;
}

/** Runs one check; an exception or a check that never ends is that check's failure. */
async function runOne(check: Check, ctx: ConformContext, limitMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve(fail(`did not finish within ${limitMs} ms`)), limitMs);
  });
  try {
    return await Promise.race([
      check
        .run(ctx)
        .catch((err: unknown) =>
          fail(err instanceof Unreachable ? err.message : describeFailure(err, ctx.ep.endpoint)),
        ),
      expired,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** `picket conform`. */
export async function conform(args: string[]): Promise<number> {
  const cmd = clientCommand('conform', args, { only: { type: 'string' } }, CONFORM_HELP);
  if (cmd === undefined) return EXIT_OK;
  const { values: v, ep, agentId, options, timeoutMs } = cmd;
  const checks = selected(v.only);
  const connectTimeoutMs = intOption('conform', 'connect-timeout', v['connect-timeout'], 5_000, 1);
  const shared = sharedTransport(ep, agentId, options);
  let raw: Promise<RawTarget | string> | undefined;
  const rawTargetOnce = (): Promise<RawTarget | string> => {
    // a reverse agent must dial our raw listener: the facade's listener goes first
    raw ??= (ep.kind === 'reverse' ? shared.close() : Promise.resolve()).then(() =>
      rawTarget(ep, agentId, { timeoutMs, connectTimeoutMs }),
    );
    return raw;
  };
  const ctx: ConformContext = {
    ep,
    agentId,
    options,
    timeoutMs,
    connectTimeoutMs,
    nextId: idSource(),
    transport: () =>
      shared.get().catch((err: unknown) => {
        throw new Unreachable(connectFailure(err, ep));
      }),
    rawTarget: rawTargetOnce,
  };

  const rows: Row[] = [];
  const human = !v.json;
  const where = formatEndpoint(ep);
  if (human) process.stdout.write(`picket conform ${escapeForLog(where)} (${ep.kind})\n`);
  // a safety net only: every wait inside a check is bounded; the raw checks wait up to three
  // times per probe (reaction, then a new connection's handshake and answer)
  const limitMs = 12 * timeoutMs + 4 * connectTimeoutMs;
  // without a handshake the transport checks have nothing to talk to; the wire checks still run
  const wire = new Set(WIRE_CHECKS);
  let handshakeFailed = false;
  for (const check of checks) {
    const started = performance.now();
    const result =
      handshakeFailed && !wire.has(check)
        ? skip('the handshake failed')
        : await runOne(check, ctx, limitMs);
    if (check.name === 'handshake' && result.status === 'fail') handshakeFailed = true;
    const row: Row = { name: check.name, ...result, ms: performance.now() - started };
    rows.push(row);
    if (human) {
      const label = row.status === 'pass' ? 'PASS' : row.status === 'fail' ? 'FAIL' : 'SKIP';
      // reasons quote what the agent sent: escaped
      process.stdout.write(`  ${label}  ${row.name.padEnd(25)} ${escapeForLog(row.reason)}\n`);
    }
  }
  await shared.close();
  const target = await raw;
  if (typeof target === 'object') await target.close();

  const count = (s: string) => rows.filter((r) => r.status === s).length;
  const failed = count('fail');
  if (v.json) {
    process.stdout.write(
      `${jsonForLog(
        {
          ok: failed === 0,
          endpoint: ep.endpoint,
          canonical: where,
          transport: ep.kind,
          passed: count('pass'),
          failed,
          skipped: count('skip'),
          checks: rows,
        },
        2,
      )}\n`,
    );
  } else {
    process.stdout.write(`${count('pass')} passed, ${failed} failed, ${count('skip')} skipped\n`);
  }
  return failed === 0 ? EXIT_OK : EXIT_FAILURE;
}
