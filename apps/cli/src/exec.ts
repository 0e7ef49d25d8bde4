/**
 * `picket exec --via '<command>' -- program args…`: runs a program through a picket-agent
 * (agentproto) reached by any channel, bridging this terminal's stdin / stdout / stderr and
 * signals, and exits with the program's status.
 */
import { EXIT_NO_EXIT_FRAME, startExec } from '@picket/agentproto';
import { AgentProtocolError, ErrorCode, escapeForLog } from '@picket/protocol';
import { EXIT_OK, parse, UsageError } from './common.js';

export const EXEC_HELP = `Usage: picket exec --via '<command>' [options] -- <program> [args...]

Runs <program> through a picket-agent (MachineProxy's agentproto) reached by the
channel command: its stdin/stdout must reach the agent. The program's stdin,
stdout and stderr are this terminal's; SIGINT, SIGTERM and SIGHUP are sent to the
program's process group. The exit status is the program's (128 + signal when a
signal ended it, 127 when it could not be started or the agent went away).

Options:
  --via <command>          the channel, split like a shell would (quotes, backslashes),
                           e.g. 'ssh host picket-agent' or 'docker exec -i ctr picket-agent'
  --cwd <dir>              working directory on the agent's side (default: the agent's)
  --env <KEY=VALUE>        environment of the program (repeatable); without --env the
                           program inherits the agent's environment
  --env-keep <pattern>     allow-list the agent applies to --env: a glob or /regex/ (repeatable)
  --env-remove <pattern>   names removed even when kept (repeatable)
  -h, --help               this help

Examples:
  picket exec --via 'ssh build-host picket-agent' -- make -j8
  picket exec --via 'docker exec -i web picket-agent' -- cat /etc/os-release
  picket exec --via 'picket-agent' --env PATH=/usr/bin --env-keep PATH -- env`;

const OPTIONS = {
  via: { type: 'string' },
  cwd: { type: 'string' },
  env: { type: 'string', multiple: true },
  'env-keep': { type: 'string', multiple: true },
  'env-remove': { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Splits a command line into words like a POSIX shell: '…', "…" (with \\ escapes) and \\x. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i] as string;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new UsageError('--via: unterminated single quote', 'exec');
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new UsageError('--via: unterminated double quote', 'exec');
        const d = line[i] as string;
        if (d === '"') break;
        if (d === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1] as string)) {
          word += line[i + 1];
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
      inWord = true;
      i++;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[i + 1];
      inWord = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

export async function execCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('exec', args, OPTIONS);
  if (values.help) {
    process.stdout.write(`${EXEC_HELP}\n`);
    return EXIT_OK;
  }
  if (values.via === undefined) throw new UsageError('--via <command> is required', 'exec');
  const via = shellWords(values.via);
  if (via.length === 0) throw new UsageError('--via: empty command', 'exec');
  const [program, ...rest] = positionals;
  if (program === undefined) throw new UsageError('missing the program to run (after --)', 'exec');
  for (const e of values.env ?? []) {
    if (e.indexOf('=') <= 0)
      throw new UsageError(`--env "${escapeForLog(e)}": expected KEY=VALUE`, 'exec');
  }
  const keep = values['env-keep'];
  const remove = values['env-remove'];

  const session = startExec(
    { path: program, argv: [program, ...rest], env: values.env ?? null, cwd: values.cwd ?? '' },
    {
      via,
      stdio: { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
      agentStderr: process.stderr,
      ...(keep || remove ? { config: { env_keep: keep ?? null, env_remove: remove ?? null } } : {}),
      onError: (message) => process.stderr.write(`picket exec: ${message}\n`),
    },
  );
  const forward = (sig: NodeJS.Signals) => session.kill(sig);
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const sig of signals) process.on(sig, forward);
  try {
    return await session.exitCode;
  } catch (err) {
    if (!(err instanceof AgentProtocolError) || err.code !== ErrorCode.ConnectionFailed) throw err;
    process.stderr.write(`picket exec: ${err.message}\n`);
    return EXIT_NO_EXIT_FRAME; // like a program that could not be started
  } finally {
    for (const sig of signals) process.off(sig, forward);
  }
}
