import { isIP } from 'node:net';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';

/** Where a reverse-connecting agent dials, parsed from an endpoint string. */
export type ReverseEndpoint =
  | { kind: 'uds'; path: string }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'tls'; host: string; port: number };

/** A TCP listen address. */
export interface HostPort {
  host: string;
  port: number;
}

function bad(endpoint: string, problem: string): AgentProtocolError {
  return new AgentProtocolError(
    ErrorCode.InvalidArgument,
    `invalid reverse endpoint "${endpoint}": ${problem}`,
  );
}

/**
 * Splits `host:port` / `[v6]:port`. `allowZero` admits port 0 (listen on any free
 * port); dialling needs a real port.
 */
export function parseHostPort(text: string, allowZero = false, original = text): HostPort {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0 || text[end + 1] !== ':') throw bad(original, 'expected [ipv6]:port');
    host = text.slice(1, end);
    portText = text.slice(end + 2);
    if (isIP(host) !== 6) throw bad(original, `"${host}" is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0) throw bad(original, 'expected host:port');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) throw bad(original, 'an IPv6 address must be written [addr]:port');
  }
  if (!/^\d{1,5}$/.test(portText)) throw bad(original, `port "${portText}" is not a number`);
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !allowZero)) {
    throw bad(original, `port ${port} is out of range (${allowZero ? 0 : 1}-65535)`);
  }
  return { host, port };
}

/**
 * Parses an agent-side endpoint:
 * - `unix:/path`, `/path`, `./path` ⇒ Unix socket;
 * - `tcp://host:port` ⇒ plain TCP;
 * - `tls://host:port` ⇒ TLS;
 * - `host:port` ⇒ TCP, or TLS when `tlsRequested` (TLS options were given).
 *
 * `tcp://` together with TLS options is refused as contradictory.
 */
export function parseReverseEndpoint(endpoint: string, tlsRequested = false): ReverseEndpoint {
  if (typeof endpoint !== 'string' || endpoint === '') throw bad(String(endpoint), 'empty');
  if (endpoint.startsWith('unix:')) {
    const path = endpoint.slice(5);
    if (path === '') throw bad(endpoint, 'no socket path after "unix:"');
    if (tlsRequested) throw bad(endpoint, 'TLS options given for a Unix socket endpoint');
    return { kind: 'uds', path };
  }
  if (endpoint.startsWith('/') || endpoint.startsWith('./') || endpoint.startsWith('../')) {
    if (tlsRequested) throw bad(endpoint, 'TLS options given for a Unix socket endpoint');
    return { kind: 'uds', path: endpoint };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(endpoint);
  if (scheme !== null) {
    const name = (scheme[1] as string).toLowerCase();
    const rest = endpoint.slice(scheme[0].length).replace(/\/$/, '');
    if (name === 'tcp') {
      if (tlsRequested) throw bad(endpoint, 'TLS options given for a tcp:// endpoint (use tls://)');
      return { kind: 'tcp', ...parseHostPort(rest, false, endpoint) };
    }
    if (name === 'tls') return { kind: 'tls', ...parseHostPort(rest, false, endpoint) };
    throw bad(endpoint, `unsupported scheme "${name}://" (unix:, tcp://, tls://)`);
  }
  const hp = parseHostPort(endpoint, false, endpoint);
  return tlsRequested ? { kind: 'tls', ...hp } : { kind: 'tcp', ...hp };
}

/** `host:port` with IPv6 hosts bracketed. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
