/**
 * The exchange's upstream call: one request to the upstream, retried on the
 * connection failures that prove the upstream application never saw it.
 */
import type { Readable } from 'node:stream';
import type { Headers } from '@picket/protocol';
import type { Dispatcher } from 'undici';
import type { Upstream } from './gateway.js';
import { toOutgoing } from './http-util.js';
import type { GatewayMetrics } from './metrics.js';

/** An upstream that failed or timed out, or has no server to send to (`unavailable`). */
export class UpstreamFailure extends Error {
  constructor(
    readonly kind: 'error' | 'timeout' | 'unavailable',
    message: string,
  ) {
    super(message);
  }
}

export const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);
/** errors that prove the request never reached the upstream application */
export const RETRYABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE']);

export function errorCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur && typeof cur === 'object'; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** One upstream request as the exchange prepared it. */
export interface UpstreamRequest {
  /** the request path in the route's form (appended to the upstream's base path) */
  uri: string;
  method: Dispatcher.HttpMethod;
  headers: Headers;
  body: Buffer | Readable | undefined;
  /** the body can be sent again (none, or buffered) */
  replayable: boolean;
  signal: AbortSignal;
}

/**
 * Sends the request upstream, retrying connection failures of replayable requests.
 * `attempted` counts each try; `abandon` throws when the exchange itself must stop
 * (a decision, a client gone) instead of reporting an upstream failure.
 */
export async function requestUpstream(
  up: Upstream,
  metrics: GatewayMetrics,
  r: UpstreamRequest,
  attempted: () => void,
  abandon: (e: unknown) => void,
): Promise<Dispatcher.ResponseData> {
  for (let attempt = 0; ; attempt++) {
    // each attempt (a retry too) goes to the next of the upstream's servers
    const target = up.pick();
    if (!target) throw new UpstreamFailure('unavailable', up.noTargetsReason);
    attempted();
    const t0 = performance.now();
    try {
      const res = await target.dispatcher.request({
        path: target.basePath + r.uri,
        method: r.method,
        headers: toOutgoing(r.headers),
        body: r.body ?? null,
        signal: r.signal,
        headersTimeout: up.config.timeoutMs,
        bodyTimeout: up.config.timeoutMs,
      });
      metrics.upstreamResponse(up.config.name, (performance.now() - t0) / 1000);
      return res;
    } catch (e) {
      abandon(e);
      const code = errorCode(e);
      const kind = code !== undefined && TIMEOUT_CODES.has(code) ? 'timeout' : 'error';
      metrics.upstreamError(up.config.name, kind);
      if (
        kind === 'error' &&
        r.replayable &&
        attempt < up.config.retries &&
        code !== undefined &&
        RETRYABLE_CODES.has(code)
      ) {
        continue;
      }
      const msg = `upstream "${up.config.name}" ${kind === 'timeout' ? 'timed out' : 'failed'}: ${
        (e as Error).message
      }${code ? ` (${code})` : ''}`;
      throw new UpstreamFailure(kind, msg);
    }
  }
}
