#!/usr/bin/env node
/**
 * `picket`: serve reference agents, probe / send to / benchmark any agent endpoint.
 * Exit codes: 0 ok, 1 the operation failed, 2 bad usage.
 */
import { readFileSync } from 'node:fs';
import { endpointGrammar } from '@picket/transport';
import { BENCH_HELP, bench } from './bench.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from './common.js';
import { CONFORM_HELP, conform } from './conform.js';
import { EXEC_HELP, execCommand } from './exec.js';
import { PROBE_HELP, probe } from './probe.js';
import { RECORD_HELP, recordCommand } from './record/index.js';
import { RECORDING_HELP, recordingCommand } from './recording.js';
import { REPLAY_HELP, replay } from './replay.js';
import { SEND_HELP, send } from './send.js';
import { SERVE_HELP, serve } from './serve.js';

const COMMANDS: Record<string, { run: (args: string[]) => Promise<number>; help: string }> = {
  serve: { run: serve, help: SERVE_HELP },
  probe: { run: probe, help: PROBE_HELP },
  send: { run: send, help: SEND_HELP },
  bench: { run: bench, help: BENCH_HELP },
  conform: { run: conform, help: CONFORM_HELP },
  exec: { run: execCommand, help: EXEC_HELP },
  recording: { run: recordingCommand, help: RECORDING_HELP },
  record: { run: recordCommand, help: RECORD_HELP },
  replay: { run: replay, help: REPLAY_HELP },
};

const MAIN_HELP = `picket — Zentinel agent protocol tool

Usage: picket <command> [options]

Commands:
  serve <echo|denylist>   serve a reference agent (UDS, gRPC, v1, or dialing a reverse listener)
  probe <endpoint>        handshake, capabilities and ping of an agent
  send <endpoint>         one request lifecycle through an agent; prints the decision
  bench <endpoint>        load an agent; prints req/s and latency percentiles
  conform <endpoint>      run the behaviour suite against an agent; prints a pass/fail table
  exec --via <cmd> -- <program>  run a program through a picket-agent (agentproto)
  recording show <file>   print an agentproto session recording
  record --listen <ep> --to <ep> --out <file>  tap and record a proxy's traffic to an agent
  replay <file> --to <ep> replay recorded events to an agent, diff the answers

Run 'picket <command> --help' for the options of a command.

Endpoints:
${endpointGrammar()}

Exit codes: 0 success, 1 the operation failed (agent unreachable, errors), 2 bad usage.`;

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Runs the command line; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  // grpc-js would print its own copy of a failure we report in one line; it is loaded lazily,
  // after this. A user who sets the variable still gets grpc-js' log.
  if (process.env.GRPC_NODE_VERBOSITY === undefined) process.env.GRPC_VERBOSITY ??= 'NONE';
  // `pnpm run <script> -- args` may pass the separator through
  const [first, ...rest] = argv[0] === '--' ? argv.slice(1) : argv;
  if (first === undefined || first === '-h' || first === '--help') {
    process.stdout.write(`${MAIN_HELP}\n`);
    return first === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (first === '--version' || first === '-v') {
    process.stdout.write(`picket ${version()}\n`);
    return EXIT_OK;
  }
  if (first === 'help') {
    const topic = rest[0];
    const cmd = topic === undefined ? undefined : COMMANDS[topic];
    process.stdout.write(`${cmd ? cmd.help : MAIN_HELP}\n`);
    return topic === undefined || cmd ? EXIT_OK : EXIT_USAGE;
  }
  const cmd = COMMANDS[first];
  if (!cmd) {
    process.stderr.write(`picket: unknown command "${first}"\n\n${MAIN_HELP}\n`);
    return EXIT_USAGE;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(
        `picket ${first}: ${err.message}\nRun 'picket ${first} --help' for usage.\n`,
      );
      return EXIT_USAGE;
    }
    process.stderr.write(`picket ${first}: ${(err as Error)?.stack ?? String(err)}\n`);
    return EXIT_FAILURE;
  }
}

// `picket send … | head -1`: the reader has gone, so the output is no longer wanted. Exit
// quietly instead of crashing on the next write.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(EXIT_OK);
  });
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
// A pipe's writes can still be queued (a long `recording show` into `less`): exit only once they
// reached the reader, or after a bound if it stopped reading.
const flushed = (s: NodeJS.WriteStream): Promise<void> =>
  new Promise((resolve) => (s.writableLength === 0 ? resolve() : s.write('', () => resolve())));
const bound = new Promise((resolve) => setTimeout(resolve, 10_000).unref());
await Promise.race([Promise.all([flushed(process.stdout), flushed(process.stderr)]), bound]);
// everything was closed by now; don't let a stray keep-alive timer hold a finished command
setImmediate(() => process.exit(code));
