/** `picket record`: a transparent tap between a proxy and a UDS agent that records the traffic. */
import { escapeForLog } from '@picket/protocol';
import { detectTransport } from '@picket/transport';
import { EXIT_FAILURE, EXIT_OK, listenFailure, parse, UsageError } from '../common.js';
import { TAP_FORMAT, TAP_FORMAT_VERSION, TapWriter } from './format.js';
import { Tap } from './tap.js';

export const RECORD_HELP = `Usage: picket record --listen <endpoint> --to <endpoint> --out <file> [options]

A transparent tap between a proxy and an agent: the proxy connects to --listen
instead of the agent, and every connection is relayed byte for byte to --to
(never re-encoded; backpressure and half-closes pass through; a malformed or
oversize frame reaches the agent as sent). Every frame both ways is recorded
with a timestamp, direction, connection id, type and payload, in the
negotiated encoding (JSON, msgpack or CBOR, read from the handshake); frames
that do not decode are kept and marked undecodable. Runs until SIGINT /
SIGTERM, then closes the connections and the recording.

Where:
  --listen <endpoint>   the tap's socket: unix:/path (or a path); v1+unix:/path for v1
  --to <endpoint>       the agent: unix:/path (v2 binary protocol) or v1+unix:/path (v1)
  --out <file>          the recording (created with mode 0600); read it back with
                        'picket replay <file> --show', replay it with 'picket replay'

Options:
  --no-redact           record header values and bodies as they are (needed by
                        'picket replay'; the file then holds whatever the traffic held)
  --verbose             one stderr line per connection opened and closed
  -h, --help            this help

By default header values, bodies, guardrail content, pushed configuration, and
in answers header-op values, block bodies and headers and body mutations are
replaced by "<redacted>" / "<redacted N bytes>"; such a recording can be
inspected but not replayed.`;

const OPTIONS = {
  listen: { type: 'string' },
  to: { type: 'string' },
  out: { type: 'string' },
  'no-redact': { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function socketOf(flag: string, value: string | undefined): { path: string; v1: boolean } {
  if (value === undefined || value === '') throw new UsageError(`missing --${flag}`, 'record');
  let ep: ReturnType<typeof detectTransport>;
  try {
    ep = detectTransport(value);
  } catch (err) {
    throw new UsageError(`--${flag}: ${(err as Error).message}`, 'record');
  }
  if (ep.kind !== 'uds' && ep.kind !== 'v1') {
    throw new UsageError(
      `--${flag} ${value}: the tap works on Unix sockets only (unix:/path or v1+unix:/path)`,
      'record',
    );
  }
  return { path: ep.path, v1: ep.kind === 'v1' };
}

/** `picket record`. */
export async function recordCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parse('record', args, OPTIONS);
  if (v.help) {
    process.stdout.write(`${RECORD_HELP}\n`);
    return EXIT_OK;
  }
  if (positionals.length > 0)
    throw new UsageError(`unexpected argument "${positionals[0]}"`, 'record');
  const listen = socketOf('listen', v.listen);
  const to = socketOf('to', v.to);
  if (v.out === undefined || v.out === '') throw new UsageError('missing --out <file>', 'record');
  // the protocol is the agent's; a v1 tap listens for v1 proxies whatever --listen says
  const v1 = to.v1;
  const log = (line: string) => process.stderr.write(`picket record: ${line}\n`);

  let writer: TapWriter;
  try {
    writer = await TapWriter.open(v.out);
  } catch (err) {
    process.stderr.write(
      `picket record: cannot create ${escapeForLog(v.out)}: ${escapeForLog((err as Error).message)}\n`,
    );
    return EXIT_FAILURE;
  }
  const redact = !v['no-redact'];
  writer.write({
    type: 1,
    header: {
      format: TAP_FORMAT,
      version: TAP_FORMAT_VERSION,
      start_time: writer.now(),
      listen: v.listen as string,
      to: v.to as string,
      protocol: v1 ? 'v1' : 'v2',
      redacted: redact,
    },
  });
  const tap = new Tap({
    listen: listen.path,
    agentPath: to.path,
    to: v.to as string,
    v1,
    redact,
    writer,
    log,
    verbose: v.verbose === true,
  });
  try {
    await tap.listen();
  } catch (err) {
    process.stderr.write(
      `picket record: ${escapeForLog(listenFailure(err, detectTransport(v.listen as string)))}\n`,
    );
    await writer.close().catch(() => {});
    return EXIT_FAILURE;
  }
  process.stdout.write(
    `recording ${escapeForLog(v.listen as string)} → ${escapeForLog(v.to as string)} into ${escapeForLog(v.out)}${redact ? ' (redacted)' : ''}\n`,
  );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const stop = (s: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(s);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await tap.close();
  writer.write({ type: 5, footer: { end_time: writer.now(), conn_count: tap.connections } });
  try {
    await writer.close();
  } catch (err) {
    log(`writing ${escapeForLog(v.out)} failed: ${escapeForLog((err as Error).message)}`);
    return EXIT_FAILURE;
  }
  process.stdout.write(`${signal}: stopped after ${tap.connections} connection(s)\n`);
  return EXIT_OK;
}
