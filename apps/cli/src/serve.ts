import { readFileSync } from 'node:fs';
import { DenylistAgent, EchoAgent } from '@picket/agents';
import { type AgentHandler, escapeForLog, jsonForLog, type TlsOptions } from '@picket/protocol';
import type { ReverseAgent } from '@picket/reverse';
import {
  detectTransport,
  endpointGrammar,
  type ParsedEndpoint,
  readTokenFile,
  ServedAgent,
  ServeError,
  serve as serveAgent,
} from '@picket/transport';
import {
  describeFailure,
  EXIT_FAILURE,
  EXIT_OK,
  endpointArg,
  intOption,
  listenFailure,
  parse,
  UsageError,
} from './common.js';
import { withEventLog } from './event-log.js';
import { checkExtProcTls, extProcListen, isExtProcListen, startExtProc } from './serve-extproc.js';
import { serveProx } from './serve-prox.js';
import { isSpoeListen, spoeListen, startSpoe } from './serve-spoe.js';

export const SERVE_HELP = `Usage: picket serve <echo|denylist> --listen <endpoint> [options]
       picket serve <echo|denylist> --reverse <endpoint> --agent-id <id> [--token-file <f>]
       picket serve <echo|denylist> --prox [agent options]

Serves a reference agent until interrupted (SIGINT / SIGTERM drain and stop it).
Prints one line per endpoint once it is ready ("listening on …" / "registered
with …"); with --json one JSON object per line.

Agents:
  echo        allows everything and echoes what it saw into X-Echo-* headers
  denylist    blocks paths (prefix match) and client IPs / CIDR ranges with 403

Where:
  --listen <endpoint>      serve here (repeatable): a socket path or unix:/path (UDS),
                           host:port, grpc://host:port, grpcs://host:port, grpc+unix:/path
                           (gRPC; port 0 picks a free port; also serves grpc.health.v1
                           and server reflection, for Kubernetes gRPC probes and grpcurl),
                           v1+unix:/path (legacy v1),
                           spoe://host:port (HAProxy's SPOE filter, see @picket/spoe),
                           extproc://host:port, extprocs://host:port, extproc+unix:/path
                           (Envoy's ext_proc filter, see @picket/extproc)
  --reverse <endpoint>     dial a proxy's reverse listener instead (or as well):
                           reverse+unix:/path, reverse+tcp://host:port, reverse+tls://host:port
  --connections <n>        reverse connections to keep open (default 1)
  --token-file <file>      reverse: read the auth token presented when registering from
                           this file (one trailing newline is dropped); or set
                           PICKET_REVERSE_TOKEN in the environment
  --token <t>              the token itself: visible to every local user in \`ps\`, prefer
                           --token-file or PICKET_REVERSE_TOKEN
  --prox                   be a prox plugin instead: prox starts the command, sends
                           configure on stdin and calls the hooks on a socket in a private
                           0700 directory; stdout carries prox's protocol only (messages and
                           --log-events go to stderr); exits when stdin ends. E.g. as a prox
                           plugin command: picket serve denylist --prox --block-ip 10.0.0.0/8

Agent options:
  --agent-id <id>          the agent's id (default echo-agent / denylist-agent)
  --block-path <prefix>    denylist: block uris starting with this (repeatable)
  --block-ip <ip|cidr>     denylist: block this client address or range (repeatable)

TLS:
  --tls-cert <file>        gRPC: server certificate, only for grpcs:// listeners (TLS is never
                           switched on implicitly); reverse+tls: client certificate
  --tls-key <file>         its private key
  --tls-ca <file>          gRPC: CA of client certificates (requires mTLS);
                           reverse+tls: CA that signed the proxy's certificate
  --tls-server-name <n>    reverse+tls: verify the proxy's certificate against this name
  --tls-insecure           reverse+tls: do not verify the proxy's certificate (testing only)

Output:
  --log-events             one line per event the agent answers (event, correlation id,
                           decision) and per cancel the proxy sends ("<id> cancel <cid> <reason>")
  --json                   one JSON object per line
  -h, --help               this help

Examples:
  picket serve echo --listen /tmp/echo.sock
  picket serve denylist --listen 127.0.0.1:50051 --block-path /admin --block-ip 10.0.0.0/8
  picket serve echo --listen grpcs://0.0.0.0:50051 --tls-cert server.pem --tls-key server.key
  picket serve echo --reverse reverse+tcp://proxy.internal:9090 --agent-id echo --token-file /run/secrets/picket
  picket serve denylist --listen /tmp/deny.sock --block-path /admin --log-events
  picket serve denylist --listen spoe://127.0.0.1:12345 --block-path /admin
  picket serve denylist --listen extproc://127.0.0.1:50052 --block-path /admin`;

function pem(flag: string, file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(`--${flag}: cannot read ${file}: ${(err as Error).message}`, 'serve');
  }
}

/** What `--reverse` dials, in the endpoint grammar (`reverse+unix:/p`, `reverse+tcp://h:p`, `reverse+tls://h:p`). */
interface ReverseTarget {
  /** the endpoint as given */
  given: string;
  dial: string;
  tls: boolean;
}

function reverseTarget(value: string): ReverseTarget {
  let ep: ParsedEndpoint;
  try {
    ep = detectTransport(value);
  } catch (err) {
    throw new UsageError((err as Error).message, 'serve');
  }
  if (ep.kind === 'reverse') {
    const l = ep.listen;
    if (l.transport === 'tcp' && l.port === 0) {
      throw new UsageError(`--reverse ${value}: port 0 cannot be dialled`, 'serve');
    }
    return { given: value, dial: value, tls: ep.tls };
  }
  // a bare socket path or host:port names the listener too
  if (ep.kind === 'uds') return { given: value, dial: `reverse+unix:${ep.path}`, tls: false };
  if (ep.kind === 'grpc' && ep.scheme === undefined) {
    return { given: value, dial: `reverse+tcp://${ep.target}`, tls: false };
  }
  throw new UsageError(
    `--reverse ${value}: expected reverse+unix:/path, reverse+tcp://host:port or reverse+tls://host:port\naccepted endpoint forms:\n${endpointGrammar()}`,
    'serve',
  );
}

/**
 * Where `--tls-cert` goes must be explicit: a grpcs:// listener or a reverse+tls
 * dial. A certificate with only plain host:port, grpc:// or grpc+unix:
 * listeners is refused (it once turned host:port into TLS silently), naming the
 * grpcs:// fix; next to a grpcs:// listener a plain one stays plain.
 */
function tlsCertUse(listens: ParsedEndpoint[], reverses: ReverseTarget[]): void {
  if (reverses.some((r) => r.tls) || listens.some((ep) => ep.kind === 'grpc' && ep.tls)) return;
  const plain = listens.find((ep) => ep.kind === 'grpc');
  if (plain?.kind === 'grpc') {
    const fix =
      plain.scheme === 'grpc+unix'
        ? 'gRPC over a Unix socket has no TLS; drop --tls-cert/--tls-key'
        : `to serve TLS, listen on grpcs://${plain.target}`;
    throw new UsageError(
      `--listen ${plain.endpoint} is plain gRPC but --tls-cert was given: ${fix}`,
      'serve',
    );
  }
  throw new UsageError(
    '--tls-cert is used by grpcs:// listeners and reverse+tls:// endpoints; none was given',
    'serve',
  );
}

/**
 * The reverse auth token: `--token-file` or `--token`, else $PICKET_REVERSE_TOKEN.
 * The file and the variable keep it out of the command line, which every local
 * user can read (`ps`).
 */
function reverseToken(v: { token?: string; 'token-file'?: string }): string | undefined {
  if (v.token !== undefined && v['token-file'] !== undefined) {
    throw new UsageError('give --token or --token-file, not both', 'serve');
  }
  if (v['token-file'] !== undefined) {
    try {
      return readTokenFile(v['token-file']);
    } catch (err) {
      throw new UsageError(`--token-file: ${(err as Error).message}`, 'serve');
    }
  }
  if (v.token !== undefined) return v.token;
  const env = process.env.PICKET_REVERSE_TOKEN;
  if (env === '') throw new UsageError('PICKET_REVERSE_TOKEN is set but empty', 'serve');
  return env;
}

/** The reference agent `kind` with its options. */
function referenceAgent(
  kind: string,
  v: { 'agent-id'?: string; 'block-path'?: string[]; 'block-ip'?: string[] },
): AgentHandler & { agentId: string } {
  if (kind === 'echo') {
    if (v['block-path'] || v['block-ip']) {
      throw new UsageError('--block-path / --block-ip are denylist options', 'serve');
    }
    return new EchoAgent({ ...(v['agent-id'] !== undefined && { agentId: v['agent-id'] }) });
  }
  if (kind === 'denylist') {
    try {
      return new DenylistAgent({
        ...(v['agent-id'] !== undefined && { agentId: v['agent-id'] }),
        blockedPaths: v['block-path'] ?? [],
        blockedIps: v['block-ip'] ?? [],
      });
    } catch (err) {
      throw new UsageError(`--block-ip: ${(err as Error).message}`, 'serve');
    }
  }
  throw new UsageError(`unknown agent "${kind}": echo or denylist`, 'serve');
}

/** `picket serve`. */
export async function serve(args: string[]): Promise<number> {
  const { values: v, positionals } = parse('serve', args, {
    listen: { type: 'string', multiple: true },
    reverse: { type: 'string', multiple: true },
    connections: { type: 'string' },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    'agent-id': { type: 'string' },
    'block-path': { type: 'string', multiple: true },
    'block-ip': { type: 'string', multiple: true },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'tls-ca': { type: 'string' },
    'tls-server-name': { type: 'string' },
    'tls-insecure': { type: 'boolean' },
    'log-events': { type: 'boolean' },
    prox: { type: 'boolean' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (v.help) {
    process.stdout.write(`${SERVE_HELP}\n`);
    return EXIT_OK;
  }
  const kind = positionals[0];
  if (kind === undefined) throw new UsageError('missing agent: echo or denylist', 'serve');
  if (positionals.length > 1)
    throw new UsageError(`unexpected argument "${positionals[1]}"`, 'serve');
  if (v.prox) return serveProx(referenceAgent(kind, v), v);
  const spoe = (v.listen ?? []).filter(isSpoeListen).map(spoeListen);
  const extproc = (v.listen ?? []).filter(isExtProcListen).map(extProcListen);
  const listens = (v.listen ?? [])
    .filter((e) => !isSpoeListen(e) && !isExtProcListen(e))
    .map((e) => endpointArg('serve', e));
  const reverses = (v.reverse ?? []).map(reverseTarget);
  if (listens.length === 0 && reverses.length === 0 && spoe.length === 0 && extproc.length === 0) {
    throw new UsageError(
      'nothing to serve on: give --listen <endpoint> or --reverse <endpoint>',
      'serve',
    );
  }
  let handler = referenceAgent(kind, v);
  const cert = pem('tls-cert', v['tls-cert']);
  const key = pem('tls-key', v['tls-key']);
  const ca = pem('tls-ca', v['tls-ca']);
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together', 'serve');
  }
  const connections = intOption('serve', 'connections', v.connections, 1, 1);
  for (const ep of listens) {
    if (ep.kind === 'reverse') {
      throw new UsageError(
        `--listen ${ep.endpoint}: a reverse endpoint is where a proxy listens; to dial it use --reverse`,
        'serve',
      );
    }
    if (ep.kind === 'grpc' && ['dns', 'ipv4', 'ipv6'].includes(ep.scheme ?? '')) {
      throw new UsageError(
        `--listen ${ep.endpoint}: listen on host:port or grpc://host:port`,
        'serve',
      );
    }
    if (ep.kind === 'grpc' && ep.tls && (cert === undefined || key === undefined)) {
      throw new UsageError(`--listen ${ep.endpoint}: TLS needs --tls-cert and --tls-key`, 'serve');
    }
  }
  checkExtProcTls(extproc, cert !== undefined && key !== undefined);
  if (cert !== undefined && !extproc.some((l) => l.tls)) tlsCertUse(listens, reverses);
  if (reverses.length === 0 && (v.token !== undefined || v['token-file'] !== undefined)) {
    throw new UsageError('--token / --token-file are for --reverse', 'serve');
  }
  const token = reverses.length > 0 ? reverseToken(v) : undefined;

  // the one stdout sink: ids, uris and addresses a peer sent are escaped here
  const say = (event: Record<string, unknown>, text: string): void => {
    process.stdout.write(
      v.json ? `${jsonForLog(event)}\n` : `picket serve: ${escapeForLog(text)}\n`,
    );
  };
  if (v['log-events']) handler = withEventLog(handler, say);
  const id = handler.agentId;
  const given = new Map(reverses.map((r) => [r.dial, r.given]));
  const tls: TlsOptions = {
    ...(ca && { ca }),
    ...(cert && { cert }),
    ...(key && { key }),
    ...(v['tls-server-name'] !== undefined && { servername: v['tls-server-name'] }),
    ...(v['tls-insecure'] && { rejectUnauthorized: false }),
  };
  let served = new ServedAgent([]);
  try {
    if (listens.length > 0 || given.size > 0)
      served = await serveAgent([...listens.map((ep) => ep.endpoint), ...given.keys()], handler, {
        agentId: id,
        tls,
        reverse: {
          wait: false, // dial in the background, retrying; the events below report progress
          connections,
          ...(token !== undefined && { authToken: token }),
        },
        onServer: (server, ep) => {
          if (ep.kind === 'reverse') {
            reportReverse(server as ReverseAgent, given.get(ep.endpoint) ?? ep.endpoint, id, say);
          }
        },
      });
  } catch (err) {
    const ep = err instanceof ServeError ? detectTransport(err.endpoint) : undefined;
    const why =
      ep !== undefined && ep.kind !== 'reverse'
        ? listenFailure(err instanceof Error && err.cause !== undefined ? err.cause : err, ep)
        : describeFailure(err, 'serve');
    process.stderr.write(`picket serve: ${escapeForLog(why)}\n`);
    return EXIT_FAILURE;
  }
  try {
    const spoeServers = await startSpoe(spoe, handler);
    for (const endpoint of spoeServers.flatMap((s) => s.endpoints)) {
      say(
        { event: 'listening', transport: 'spoe', endpoint, agentId: id },
        `${id} listening on ${endpoint} (HAProxy SPOE)`,
      );
    }
    served = new ServedAgent([...served.servers, ...spoeServers]);
  } catch (err) {
    await served.close();
    const why = `cannot listen on ${spoe.map((l) => `spoe://${l.host}:${l.port}`).join(', ')}: ${(err as Error).message}`;
    process.stderr.write(`picket serve: ${escapeForLog(why)}\n`);
    return EXIT_FAILURE;
  }
  try {
    const extProcServers = await startExtProc(extproc, handler, tls);
    for (const endpoint of extProcServers.flatMap((s) => s.endpoints)) {
      const tlsOn = endpoint.startsWith('extprocs:');
      say(
        { event: 'listening', transport: 'extproc', endpoint, tls: tlsOn, agentId: id },
        `${id} listening on ${endpoint} (Envoy ext_proc${tlsOn ? ', TLS' : ''})`,
      );
    }
    served = new ServedAgent([...served.servers, ...extProcServers]);
  } catch (err) {
    await served.close();
    const why = `cannot listen on ${extproc.map((l) => l.given).join(', ')}: ${(err as Error).message}`;
    process.stderr.write(`picket serve: ${escapeForLog(why)}\n`);
    return EXIT_FAILURE;
  }
  for (const endpoint of served.servers.slice(0, listens.length).flatMap((s) => s.endpoints)) {
    const ep = detectTransport(endpoint);
    const transport = ep.kind;
    const tlsOn = ep.kind === 'grpc' && ep.tls;
    say(
      {
        event: 'listening',
        transport,
        endpoint,
        ...(ep.kind === 'grpc' && { tls: tlsOn }),
        agentId: id,
      },
      `${id} listening on ${endpoint} (${transport === 'grpc' ? `gRPC${tlsOn ? ', TLS' : ''}` : transport})`,
    );
  }
  // printed before any registration line: those need socket I/O, this runs first
  for (const endpoint of given.values()) {
    say(
      { event: 'dialing', transport: 'reverse', endpoint, agentId: id },
      `${id} dialing ${endpoint} (reverse, ${connections} connection(s))`,
    );
  }

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      say({ event: 'stopping', signal }, `${signal}: stopping`);
      void served.drain(2_000).then(resolve, resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return EXIT_OK;
}

type Say = (event: Record<string, unknown>, text: string) => void;

/** Reports what a reverse dialer does: registrations on stdout, refusals on stderr. */
function reportReverse(agent: ReverseAgent, endpoint: string, id: string, say: Say): void {
  agent.on('registered', (info) =>
    say(
      {
        event: 'registered',
        transport: 'reverse',
        endpoint,
        agentId: id,
        connectionId: info.connectionId,
      },
      `${id} registered with ${endpoint} (reverse, connection ${info.connectionId})`,
    ),
  );
  agent.on('registrationFailed', (err, info) => {
    // the proxy's refusal text can echo what the agent sent
    const why = escapeForLog(
      `${id} could not register with ${endpoint}${info.rejected ? ' (refused by the proxy)' : ''}: ${err.message}`,
    );
    process.stderr.write(`picket serve: ${why}; retrying\n`);
  });
  agent.on('disconnected', (info) =>
    say(
      {
        event: 'disconnected',
        transport: 'reverse',
        endpoint,
        agentId: id,
        connectionId: info.connectionId,
      },
      `${id} lost connection ${info.connectionId} to ${endpoint}; reconnecting`,
    ),
  );
}
