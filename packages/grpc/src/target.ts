import * as net from 'node:net';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';

/** What {@link parseTarget} makes of an endpoint string. */
export interface ParsedTarget {
  /** the grpc-js target (`host:port`, `dns:///host:port`, `unix:/path`, `ipv4:…`, …) */
  target: string;
  /** the endpoint asked for TLS (`https://`, `grpcs://`), plaintext (`http://`, `grpc://`), or did not say */
  tls?: boolean;
}

/**
 * Accepts grpc-js target syntax verbatim, and strips a URL scheme: `http://` and
 * `grpc://` mean plaintext, `https://` and `grpcs://` TLS (a trailing `/` is dropped).
 * Anything else is passed to grpc-js unchanged.
 */
export function parseTarget(endpoint: string): ParsedTarget {
  const m = /^(https?|grpcs?):\/\/([^/]+)\/?$/i.exec(endpoint.trim());
  if (!m) return { target: endpoint.trim() };
  const scheme = (m[1] ?? '').toLowerCase();
  return { target: m[2] ?? '', tls: scheme === 'https' || scheme === 'grpcs' };
}

/** Where a grpc-js target points, for a plain socket: a Unix path or host + port; undefined when unsure. */
export function socketAddressOf(
  target: string,
): { path: string } | { host: string; port: number } | undefined {
  if (target.startsWith('unix:')) {
    const path = target.slice(5).replace(/^\/\/(?=\/)/, '');
    return path.startsWith('/') ? { path } : undefined;
  }
  const bare = target.replace(/^(dns:(\/\/[^/]*\/)?|ipv4:|ipv6:)/, '');
  const m = /^(?:\[([^\]]+)\]|([^:,/]+)):(\d+)$/.exec(bare);
  if (m === null) return undefined;
  return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) };
}

/**
 * Resolves once something accepts a connection at `target` (the socket is closed again);
 * rejects CONNECTION_FAILED when nothing does within `timeoutMs`. Targets it cannot read
 * (several addresses, other resolvers) pass unchecked.
 */
export function checkReachable(target: string, where: string, timeoutMs: number): Promise<void> {
  const address = socketAddressOf(target);
  if (address === undefined) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const socket = 'path' in address ? net.connect({ path: address.path }) : net.connect(address);
    const timer = setTimeout(
      () => fail(new Error(`no connection within ${timeoutMs} ms`)),
      timeoutMs,
    );
    function fail(err: Error): void {
      clearTimeout(timer);
      socket.destroy();
      const message = `cannot connect to ${where}: ${err.message}`;
      reject(new AgentProtocolError(ErrorCode.ConnectionFailed, message, { cause: err }));
    }
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    });
  });
}
