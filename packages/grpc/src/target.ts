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
