/**
 * The request target and Host (RFC 9112 §3.2): exactly one valid Host, a
 * target in origin-form (`/path?q`) or absolute-form (`http://host/path?q`),
 * whose authority then replaces Host (§3.2.2).
 */
import { isIPv6 } from 'node:net';

export type TargetResult =
  | {
      ok: true;
      /** the host (`name[:port]`) used for routing, agents and upstream; undefined for HTTP/1.0 without Host */
      host: string | undefined;
      /** the host came from an absolute-form target and replaces the Host header */
      fromTarget: boolean;
      /** origin-form `/path?query` */
      pathAndQuery: string;
    }
  | { ok: false; reason: string };

/** host name, IPv4 or `[IPv6]`, optional `:port` — no userinfo, no list, no percent-escapes */
const HOST = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._~-]+))(?::(\d{1,5}))?$/;
const ABSOLUTE = /^https?:\/\/([^/?#]*)(.*)$/is;

/** Why `value` is not a valid `host[:port]`, or undefined when it is. */
export function hostProblem(value: string): string | undefined {
  if (value === '') return 'empty Host';
  const m = HOST.exec(value);
  if (!m || value.length > 262) return 'invalid Host (expected host[:port])';
  if (m[1] !== undefined && !isIPv6(m[1])) return 'invalid IPv6 address in Host';
  if (m[3] !== undefined && Number(m[3]) > 65535) return 'Host port out of range';
  return undefined;
}

/**
 * Checks the Host header lines (`req.headersDistinct.host`) and the raw
 * request target (`req.url`).
 */
export function readTarget(
  url: string,
  hostLines: readonly string[] | undefined,
  httpVersion: string,
): TargetResult {
  if (hostLines && hostLines.length > 1) return { ok: false, reason: 'more than one Host header' };
  let host = hostLines?.[0];
  if (host === undefined && httpVersion !== '1.0')
    return { ok: false, reason: 'missing Host header' };
  if (host !== undefined) {
    const p = hostProblem(host);
    if (p) return { ok: false, reason: `${p} header` };
  }
  if (url.startsWith('/')) return { ok: true, host, fromTarget: false, pathAndQuery: url };
  const abs = ABSOLUTE.exec(url);
  if (!abs) {
    return {
      ok: false,
      reason: 'request target must be a path ("/…") or an absolute http(s) URL',
    };
  }
  const authority = abs[1] as string;
  const p = hostProblem(authority);
  if (p) return { ok: false, reason: `${p} in the request target's authority` };
  host = authority;
  const rest = abs[2] as string;
  const pathAndQuery = rest === '' ? '/' : rest.startsWith('/') ? rest : `/${rest}`;
  return { ok: true, host, fromTarget: true, pathAndQuery };
}
