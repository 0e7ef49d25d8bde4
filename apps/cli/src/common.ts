/** Argument parsing, shared client options and error reporting of the `picket` commands. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import {
  AgentProtocolError,
  type Encoding,
  ErrorCode,
  escapeForLog,
  jsonForLog,
} from '@picket/protocol';
import {
  detectTransport,
  endpointGrammar,
  formatEndpoint,
  type ParsedEndpoint,
  type TransportOptions,
} from '@picket/transport';

/** A mistake in the command line: printed with a hint, exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Exit codes: 0 ok, 1 the operation failed (agent unreachable, errors), 2 bad usage. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

type Options = NonNullable<ParseArgsConfig['options']>;

/** Options every client command (probe, send, bench) takes. */
export const CLIENT_OPTIONS = {
  'agent-id': { type: 'string' },
  timeout: { type: 'string' },
  'connect-timeout': { type: 'string' },
  encoding: { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-server-name': { type: 'string' },
  'tls-insecure': { type: 'boolean' },
  token: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

/** Help text of {@link CLIENT_OPTIONS}. */
export const CLIENT_OPTIONS_HELP = `Connection options:
  --agent-id <id>          agent id (reverse endpoints: the id the agent registers with)
  --timeout <ms>           per-call timeout (default 5000)
  --connect-timeout <ms>   connect + handshake limit; reverse: wait for the agent (default 5000)
  --encoding <list>        UDS encodings to offer, in order of preference; the agent picks
                           the first it speaks (default msgpack,json)
  --tls-ca <file>          CA that signed the agent's (or, reverse+tls, agents') certificate
  --tls-cert <file>        our certificate: gRPC client cert (mTLS) / reverse+tls listener cert
  --tls-key <file>         its private key
  --tls-server-name <n>    verify the agent's certificate against this name
  --tls-insecure           do not verify the agent's certificate (testing only)
  --token <t>              reverse endpoints: token an agent must present (repeatable)
  --json                   machine-readable output on stdout
  --verbose                transport diagnostics on stderr
  -h, --help               this help`;

/** `parseArgs` with usage errors for unknown options and missing values. */
export function parse<const O extends Options>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    // Node's own text for this one ends in an unbalanced quote; say it plainly
    const unknown = /^Unknown option '(.*?)'\./.exec((err as Error).message);
    if (unknown) {
      throw new UsageError(
        `unknown option '${unknown[1]}' (a value starting with '-' goes after '--')`,
        command,
      );
    }
    throw new UsageError((err as Error).message, command);
  }
}

/** A non-negative integer option. */
export function intOption(
  command: string,
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer >= ${min}, got "${value}"`, command);
  }
  return n;
}

/** A non-negative number option (may have decimals). */
export function numberOption(
  command: string,
  name: string,
  value: string | undefined,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    throw new UsageError(`--${name} must be a positive number, got "${value}"`, command);
  }
  return n;
}

/** Parses an endpoint; a bad one is a usage error whose message lists the grammar. */
export function endpointArg(command: string, value: string | undefined): ParsedEndpoint {
  if (value === undefined || value === '') {
    throw new UsageError(
      `missing <endpoint>\naccepted endpoint forms:\n${endpointGrammar()}`,
      command,
    );
  }
  try {
    return detectTransport(value);
  } catch (err) {
    throw new UsageError((err as Error).message, command);
  }
}

function readPem(command: string, flag: string, file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(`--${flag}: cannot read ${file}: ${(err as Error).message}`, command);
  }
}

const ENCODINGS: readonly Encoding[] = ['json', 'msgpack', 'cbor'];

/** Values of {@link CLIENT_OPTIONS} after parsing. */
export interface ClientValues {
  'agent-id'?: string;
  timeout?: string;
  'connect-timeout'?: string;
  encoding?: string;
  'tls-ca'?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  'tls-server-name'?: string;
  'tls-insecure'?: boolean;
  token?: string[];
  verbose?: boolean;
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const line =
  (level: string) =>
  (message: string, fields?: Record<string, unknown>): void => {
    // transport diagnostics carry what the agent sent: escaped here
    const extra = fields === undefined ? '' : ` ${jsonForLog(fields)}`;
    process.stderr.write(`[${level}] ${escapeForLog(message)}${extra}\n`);
  };
const loud = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };

/** The agent id to use and the transport options of a client command. */
export function clientSettings(
  command: string,
  ep: ParsedEndpoint,
  v: ClientValues,
): { agentId: string; options: TransportOptions; timeoutMs: number } {
  if (ep.kind === 'reverse' && v['agent-id'] === undefined) {
    throw new UsageError(
      'a reverse endpoint needs --agent-id: the id the agent registers with',
      command,
    );
  }
  const timeoutMs = intOption(command, 'timeout', v.timeout, 5_000, 1);
  const connectTimeoutMs = intOption(command, 'connect-timeout', v['connect-timeout'], 5_000, 1);
  const options: TransportOptions = {
    timeoutMs,
    connectTimeoutMs,
    // a one-shot command reports failures itself; diagnostics only on request
    logger: v.verbose ? loud : quiet,
  };
  if (v.encoding !== undefined) {
    const list = v.encoding.split(',').map((s) => s.trim().toLowerCase());
    for (const e of list) {
      if (!ENCODINGS.includes(e as Encoding)) {
        throw new UsageError(`--encoding: unknown encoding "${e}" (json, msgpack, cbor)`, command);
      }
    }
    options.encodings = list as Encoding[];
  }
  const ca = readPem(command, 'tls-ca', v['tls-ca']);
  const cert = readPem(command, 'tls-cert', v['tls-cert']);
  const key = readPem(command, 'tls-key', v['tls-key']);
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together', command);
  }
  if (ep.kind === 'reverse') {
    if (ep.tls && (cert === undefined || key === undefined)) {
      throw new UsageError(
        "reverse+tls:// needs --tls-cert and --tls-key (the listener's)",
        command,
      );
    }
    options.reverse = {
      ...(cert && key && { tls: { cert, key, ...(ca && { ca }) } }),
      ...(v.token !== undefined && { tokens: v.token }),
    };
  } else if (
    ca !== undefined ||
    cert !== undefined ||
    v['tls-server-name'] !== undefined ||
    v['tls-insecure']
  ) {
    options.tls = {
      ...(ca && { ca }),
      ...(cert && { cert }),
      ...(key && { key }),
      ...(v['tls-server-name'] !== undefined && { servername: v['tls-server-name'] }),
      ...(v['tls-insecure'] && { rejectUnauthorized: false }),
    };
  }
  return { agentId: v['agent-id'] ?? 'agent', options, timeoutMs };
}

/**
 * Reads a client command's command line: {@link CLIENT_OPTIONS} plus the command's own
 * `options`, one endpoint, and the client settings it implies. Prints `help` and returns
 * undefined for `--help`; usage errors throw {@link UsageError}.
 */
export function clientCommand<const O extends Options>(
  command: string,
  args: string[],
  options: O,
  help: string,
) {
  const { values, positionals } = parse(command, args, { ...CLIENT_OPTIONS, ...options });
  // generic here, concrete for the caller: read the common options through their own type
  const common = values as ClientValues & { help?: boolean };
  if (common.help) {
    process.stdout.write(`${help}\n`);
    return undefined;
  }
  if (positionals.length > 1) {
    throw new UsageError(`unexpected argument "${positionals[1]}"`, command);
  }
  const ep = endpointArg(command, positionals[0]);
  return { values, ep, ...clientSettings(command, ep, common) };
}

/** The message of a failed operation, naming the endpoint. */
export function describeFailure(err: unknown, endpoint: string): string {
  const e = AgentProtocolError.from(err, ErrorCode.Internal);
  // an agent's refusal or error text is a peer's: escaped before any terminal sees it
  const message = escapeForLog(e.message);
  const text = message.includes(endpoint) ? message : `${endpoint}: ${message}`;
  const hint =
    e.code === ErrorCode.ConnectionFailed ? ' (is an agent listening at that endpoint?)' : '';
  return `${text} [${e.code}]${hint}`;
}

/** Milliseconds with a sensible number of decimals. */
export function ms(n: number): string {
  if (n >= 100) return `${n.toFixed(0)} ms`;
  if (n >= 10) return `${n.toFixed(1)} ms`;
  return `${n.toFixed(2)} ms`;
}

/** The system error code (ENOENT, EADDRINUSE, …) behind a failure, through causes and grpc-js' text. */
function systemCode(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  for (let e = err; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    // grpc-js reports a failed bind only in its message: "[listen EADDRINUSE: …]"
    const named = /\b(?:listen|connect) (E[A-Z]+)\b/.exec(e.message);
    if (named) return named[1];
  }
  return undefined;
}

/** The socket file of a Unix-socket endpoint, if it is one. */
function socketPathOf(ep: ParsedEndpoint): string | undefined {
  if (ep.kind === 'uds' || ep.kind === 'v1') return ep.path;
  if (ep.kind === 'grpc' && ep.scheme === 'grpc+unix') return ep.target.replace(/^unix:/, '');
  if (ep.kind === 'reverse' && ep.listen.transport === 'uds') return ep.listen.path;
  return undefined;
}

/** " (directory /x does not exist)" when a socket's folder is missing. */
function missingDir(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  const dir = dirname(path);
  return existsSync(dir) ? undefined : `directory ${dir} does not exist`;
}

/**
 * One line saying why a client could not reach `ep`: "no socket at /p", "connection refused", …
 * for the usual system errors, else the protocol error with its code.
 */
export function connectFailure(err: unknown, ep: ParsedEndpoint): string {
  const where = formatEndpoint(ep);
  const path = socketPathOf(ep);
  const code = systemCode(err);
  const hint = ' (is an agent listening at that endpoint?)';
  let reason: string | undefined;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    reason = missingDir(path) ?? (path === undefined ? undefined : `no such socket${hint}`);
  } else if (code === 'ECONNREFUSED') {
    reason = `connection refused${hint}`;
  } else if (code === 'EACCES') {
    reason = 'permission denied';
  }
  if (reason === undefined) return `cannot connect: ${describeFailure(err, ep.endpoint)}`;
  return `cannot connect to ${where}: ${reason}`;
}

/** One line saying why `picket serve` could not listen on `ep`. */
export function listenFailure(err: unknown, ep: ParsedEndpoint): string {
  const where = formatEndpoint(ep);
  const path = socketPathOf(ep);
  const code = systemCode(err);
  let reason: string | undefined;
  if (code === 'EADDRINUSE') {
    reason = path === undefined ? 'address in use — pick another port' : 'address in use';
  } else if (code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR') {
    // a missing folder surfaces as EACCES from listen(): name the real cause
    reason = missingDir(path) ?? (code === 'EACCES' ? 'permission denied' : undefined);
  } else if (code === 'EADDRNOTAVAIL') {
    reason = 'no such address on this machine';
  }
  if (reason === undefined) {
    const e = AgentProtocolError.from(err, ErrorCode.Internal);
    reason = `${e.message.replace(/^cannot listen on \S+: /, '')} [${e.code}]`;
  }
  return `cannot listen on ${where}: ${reason}`;
}
