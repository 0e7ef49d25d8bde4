/**
 * The gateway's next hop: one request to the route's upstream, retried on the
 * connection failures that prove the upstream application never saw it.
 */
import {
  type Exchange,
  type NextHop,
  type NextHopRequest,
  type NextHopResponse,
  UpstreamFailure,
} from '@picket/http';
import { errorCode, TIMEOUT_CODES, toOutgoing } from '@picket/http/internal';
import type { Dispatcher } from 'undici';
import type { Upstream } from './gateway.js';
import type { GatewayMetrics } from './metrics.js';

/** errors that prove the request never reached the upstream application */
export const RETRYABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE']);

/** The next hop of the routes to upstream `up` (see {@link requestUpstream}). */
export function upstreamHop(up: Upstream, metrics: GatewayMetrics): NextHop {
  return (r, exchange) => requestUpstream(up, metrics, r, exchange);
}

/**
 * Sends the request upstream, retrying connection failures of replayable requests.
 * Each try is counted on the exchange; a failure while the exchange itself ended
 * (a decision, a client gone) is rethrown as it is, not reported as an upstream failure.
 */
export async function requestUpstream(
  up: Upstream,
  metrics: GatewayMetrics,
  r: NextHopRequest,
  exchange: Exchange,
): Promise<NextHopResponse> {
  for (let attempt = 0; ; attempt++) {
    // each attempt (a retry too) goes to the next of the upstream's servers
    const target = up.pick();
    if (!target) throw new UpstreamFailure('unavailable', up.noTargetsReason);
    exchange.countAttempt();
    const t0 = performance.now();
    try {
      const res = await target.dispatcher.request({
        path: target.basePath + r.uri,
        method: r.method as Dispatcher.HttpMethod,
        headers: toOutgoing(r.headers),
        body: r.body ?? null,
        // the engine's AbortNotice, not an AbortSignal: undici takes an EventEmitter as it is
        signal: r.abort,
        headersTimeout: up.config.timeoutMs,
        bodyTimeout: up.config.timeoutMs,
      });
      metrics.upstreamResponse(up.config.name, (performance.now() - t0) / 1000);
      return res;
    } catch (e) {
      exchange.rethrowIfEnded(e);
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
