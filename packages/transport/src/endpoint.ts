/**
 * The endpoint grammar: one string names an agent and how to reach it.
 * Upstream's rule (`unix:` prefix, leading `/`, `.sock` suffix ⇒ UDS, the rest
 * ⇒ gRPC) is kept for everything upstream accepts; picket adds explicit
 * schemes for TLS, legacy v1 and reverse listeners, and refuses what it cannot
 * read instead of guessing.
 */
import { AgentProtocolError, ErrorCode } from '@picket/protocol';

/** v2 binary protocol over a Unix socket the agent listens on. */
export interface UdsEndpoint {
  kind: 'uds';
  /** the string as given */
  endpoint: string;
  /** socket path (`unix:` stripped) */
  path: string;
}

/** gRPC (`zentinel.agent.v2.AgentServiceV2`). */
export interface GrpcEndpoint {
  kind: 'grpc';
  endpoint: string;
  /** what grpc-js dials: `host:port`, `dns:///host:port`, `unix:/path`, … */
  target: string;
  /** the endpoint asks for TLS (`https://`, `grpcs://`) */
  tls: boolean;
  /**
   * The scheme the endpoint named (`http`, `https`, `grpc`, `grpcs`, `dns`, `ipv4`,
   * `ipv6`, `grpc+unix`), or undefined for a bare `host:port`. With `http`/`grpc`
   * the endpoint insists on plaintext; otherwise TLS options turn TLS on.
   */
  scheme?: string;
}

/** Legacy protocol v1 over a Unix socket. */
export interface V1Endpoint {
  kind: 'v1';
  endpoint: string;
  path: string;
}

/** Where a reverse listener binds. */
export type ReverseListenAddress =
  | { transport: 'uds'; path: string }
  | {
      transport: 'tcp';
      host: string;
      port: number /** `host:port` (IPv6 in brackets) */;
      address: string;
    };

/** A reverse-connection listener: the proxy listens, agents dial in and register. */
export interface ReverseEndpoint {
  kind: 'reverse';
  endpoint: string;
  listen: ReverseListenAddress;
  /** `reverse+tls://`: TLS on the TCP listener (certificate and key from the options) */
  tls: boolean;
}

/**
 * A prox plugin that picket starts, supervises and calls (`prox+exec:/path/to/plugin [args]`,
 * @picket/prox). The command line is split into argv by @picket/prox when it connects:
 * words separated by spaces, `'…'` literal, `"…"` with `\"` and `\\`, `\` escaping one
 * character outside quotes.
 */
export interface ProxEndpoint {
  kind: 'prox';
  endpoint: string;
  /** what follows `prox+exec:` (the plugin program and its arguments) */
  commandLine: string;
}

/** What {@link detectTransport} makes of an endpoint string. */
export type ParsedEndpoint =
  | UdsEndpoint
  | GrpcEndpoint
  | V1Endpoint
  | ReverseEndpoint
  | ProxEndpoint;

/** The accepted endpoint forms, as printed in errors and `--help`. */
export const ENDPOINT_FORMS: readonly (readonly [form: string, meaning: string])[] = [
  ['/path/agent.sock, ./agent.sock, agent.sock, unix:/path', 'v2 over a Unix socket (UDS)'],
  ['host:port, http://host[:port], grpc://host:port', 'gRPC, plaintext'],
  ['https://host[:port], grpcs://host:port', 'gRPC over TLS'],
  ['dns:///host:port, ipv4:addr:port, ipv6:[addr]:port', 'gRPC, target passed to grpc-js'],
  ['grpc+unix:/path', 'gRPC over a Unix socket'],
  ['v1+unix:/path', 'legacy protocol v1 over a Unix socket'],
  ['reverse+unix:/path', 'reverse listener on a Unix socket (agents dial in)'],
  ['reverse+tcp://host:port, reverse+tls://host:port', 'reverse listener on TCP / TLS'],
  ['prox+exec:/path/to/plugin [args]', 'a prox plugin picket runs and calls (@picket/prox)'],
];

/** {@link ENDPOINT_FORMS} as an indented two-column text block. */
export function endpointGrammar(indent = '  '): string {
  const width = Math.max(...ENDPOINT_FORMS.map(([f]) => f.length));
  return ENDPOINT_FORMS.map(([f, m]) => `${indent}${f.padEnd(width)}  ${m}`).join('\n');
}

function invalid(endpoint: string, problem: string): AgentProtocolError {
  return new AgentProtocolError(
    ErrorCode.InvalidArgument,
    `invalid agent endpoint ${JSON.stringify(endpoint)}: ${problem}\naccepted endpoint forms:\n${endpointGrammar()}`,
  );
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?):(\d{1,5})$/;
const AUTHORITY =
  /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)(?::(\d{1,5}))?$/;

function port(endpoint: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n > 65_535) throw invalid(endpoint, `port ${text} is out of range`);
  return n;
}

function socketPath(endpoint: string, rest: string, scheme: string): string {
  // `unix:///abs` (grpc-js style) and `unix:/abs` name the same absolute path
  const path = rest.startsWith('//') ? rest.slice(2) : rest;
  if (path === '') throw invalid(endpoint, `${scheme} needs a socket path`);
  if (rest.startsWith('//') && !path.startsWith('/')) {
    throw invalid(endpoint, `${scheme}//… needs an absolute path (${scheme}///path)`);
  }
  return path;
}

/**
 * Parses an endpoint string (see the README's grammar table). Throws
 * INVALID_ARGUMENT, listing the accepted forms, for anything else — an unknown
 * scheme (`ftp://x`, `grpc+quic://x`), a gRPC URL with a path, a bare host
 * without a port.
 */
export function detectTransport(endpoint: string): ParsedEndpoint {
  if (typeof endpoint !== 'string') {
    throw invalid(String(endpoint), 'an endpoint must be a string');
  }
  const e = endpoint.trim();
  if (e === '') throw invalid(endpoint, 'it is empty');
  const lower = e.toLowerCase();
  const prefixed = (p: string): string | undefined =>
    lower.startsWith(p) ? e.slice(p.length) : undefined;

  let rest = prefixed('prox+exec:');
  if (rest !== undefined) {
    if (rest.trim() === '') throw invalid(endpoint, 'prox+exec: needs the plugin program');
    if (/[\r\n\0]/.test(rest)) throw invalid(endpoint, 'a line break or NUL is not allowed');
    return { kind: 'prox', endpoint, commandLine: rest.trim() };
  }
  rest = prefixed('v1+unix:');
  if (rest !== undefined)
    return { kind: 'v1', endpoint, path: socketPath(endpoint, rest, 'v1+unix:') };
  rest = prefixed('reverse+unix:');
  if (rest !== undefined) {
    return {
      kind: 'reverse',
      endpoint,
      listen: { transport: 'uds', path: socketPath(endpoint, rest, 'reverse+unix:') },
      tls: false,
    };
  }
  for (const scheme of ['reverse+tcp', 'reverse+tls'] as const) {
    rest = prefixed(`${scheme}://`);
    if (rest === undefined) continue;
    const m = HOST_PORT.exec(rest.endsWith('/') ? rest.slice(0, -1) : rest);
    if (!m) throw invalid(endpoint, `${scheme}:// needs host:port (e.g. ${scheme}://0.0.0.0:9090)`);
    const host = (m[1] ?? '').replace(/^\[(.*)\]$/, '$1');
    const p = port(endpoint, m[2] ?? '');
    return {
      kind: 'reverse',
      endpoint,
      listen: {
        transport: 'tcp',
        host,
        port: p,
        address: host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`,
      },
      tls: scheme === 'reverse+tls',
    };
  }
  rest = prefixed('grpc+unix:');
  if (rest !== undefined) {
    return {
      kind: 'grpc',
      endpoint,
      target: `unix:${socketPath(endpoint, rest, 'grpc+unix:')}`,
      tls: false,
      scheme: 'grpc+unix',
    };
  }
  rest = prefixed('unix:');
  if (rest !== undefined)
    return { kind: 'uds', endpoint, path: socketPath(endpoint, rest, 'unix:') };

  const url = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/.exec(e);
  if (url) {
    const scheme = (url[1] ?? '').toLowerCase();
    const tail = url[2] ?? '';
    if (scheme === 'dns') return { kind: 'grpc', endpoint, target: e, tls: false, scheme };
    if (!['http', 'https', 'grpc', 'grpcs'].includes(scheme)) {
      throw invalid(endpoint, `unknown scheme "${scheme}://"`);
    }
    const authority = tail.endsWith('/') ? tail.slice(0, -1) : tail;
    if (/[/?#@]/.test(authority)) {
      throw invalid(
        endpoint,
        `a gRPC endpoint is ${scheme}://host:port, without path, query or user`,
      );
    }
    const m = AUTHORITY.exec(authority);
    if (!m) throw invalid(endpoint, `"${authority}" is not host[:port]`);
    const tls = scheme === 'https' || scheme === 'grpcs';
    let p: number;
    if (m[2] !== undefined) p = port(endpoint, m[2]);
    else if (scheme === 'http' || scheme === 'https') p = tls ? 443 : 80;
    else throw invalid(endpoint, `${scheme}:// needs a port`);
    return { kind: 'grpc', endpoint, target: `${m[1]}:${p}`, tls, scheme };
  }
  const grpcJs = /^(dns|ipv4|ipv6):/i.exec(e);
  if (grpcJs) {
    return {
      kind: 'grpc',
      endpoint,
      target: e,
      tls: false,
      scheme: (grpcJs[1] ?? '').toLowerCase(),
    };
  }
  // upstream: a leading `/` or a `.sock` suffix is a socket path; `./` and `../` are too
  if (e.startsWith('/') || e.startsWith('./') || e.startsWith('../') || lower.endsWith('.sock')) {
    return { kind: 'uds', endpoint, path: e };
  }
  const hp = HOST_PORT.exec(e);
  if (hp) {
    port(endpoint, hp[2] ?? '');
    return { kind: 'grpc', endpoint, target: e, tls: false };
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(e);
  if (scheme) throw invalid(endpoint, `unknown scheme "${(scheme[1] ?? '').toLowerCase()}:"`);
  if (AUTHORITY.test(e)) {
    throw invalid(
      endpoint,
      `"${e}" has no port (gRPC: host:port; a socket path: ./${e} or ${e}.sock)`,
    );
  }
  throw invalid(endpoint, 'it is neither a socket path nor host:port nor a known scheme');
}

/** The endpoint in its canonical spelling (used as the key of shared reverse listeners). */
export function formatEndpoint(e: ParsedEndpoint): string {
  switch (e.kind) {
    case 'uds':
      return `unix:${e.path}`;
    case 'v1':
      return `v1+unix:${e.path}`;
    case 'grpc':
      if (e.scheme === 'grpc+unix') return `grpc+unix:${e.target.slice(5)}`;
      if (e.scheme === 'dns' || e.scheme === 'ipv4' || e.scheme === 'ipv6') return e.target;
      return `${e.tls ? 'grpcs' : 'grpc'}://${e.target}`;
    case 'reverse':
      return e.listen.transport === 'uds'
        ? `reverse+unix:${e.listen.path}`
        : `reverse+${e.tls ? 'tls' : 'tcp'}://${e.listen.address}`;
    case 'prox':
      return `prox+exec:${e.commandLine}`;
  }
}
