import {
  type AgentHandler,
  addHeader,
  allow,
  block,
  challenge,
  createCapabilities,
  needsMore,
  redirect,
  removeHeader,
  replaceBody,
  setHeader,
} from '@picket/protocol';

// Every hook is optional and may be async; an event without a hook is answered with allow.
export const shopGuard: AgentHandler = {
  capabilities: () =>
    createCapabilities({
      agentId: 'shop-guard',
      name: 'Shop guard',
      version: '1.0.0',
      events: ['request_headers', 'request_body_chunk', 'response_headers', 'request_complete'],
      features: { cancellation: true },
    }),

  // once per connection, before any event: refuse proxies we do not know
  onHandshake: (info) =>
    info.kind === 'handshake' && info.request.proxy_id === 'untrusted-proxy'
      ? { accept: false, error: 'unknown proxy' }
      : { accept: true },

  onRequestHeaders(e, ctx) {
    // names arrive in lower case; each value list has one entry per header line
    const cookies = e.headers.cookie ?? [];
    if (e.uri.startsWith('/account') && cookies.length === 0) {
      return redirect(`/login?next=${encodeURIComponent(e.uri)}`, 303);
    }
    if (e.headers['x-bot-score']?.[0] === 'high') {
      return challenge('captcha', { site_key: 'site-key-1' }, { reasonCodes: ['BOT'] });
    }
    if (e.method === 'DELETE') {
      return block(405, {
        body: 'deleting is not allowed',
        headers: { allow: 'GET, POST' },
        reasonCodes: ['METHOD_NOT_ALLOWED'],
        ruleIds: ['shop-7'],
      });
    }
    return allow({
      requestHeaders: [setHeader('x-request-id', ctx.correlationId), removeHeader('x-debug')],
      responseHeaders: [addHeader('set-cookie', 'seen=1')],
      routingMetadata: { pool: 'blue' },
      tags: ['shop'],
      confidence: 0.9,
      custom: { cookies: cookies.length },
    });
  },

  onRequestBodyChunk(e) {
    // hold the request until the last chunk has been seen
    if (!e.is_last) return needsMore();
    const text = new TextDecoder().decode(e.data);
    if (!text.includes('card=')) return allow();
    return allow({
      requestBodyMutation: replaceBody(
        text.replaceAll(/card=\d+/g, 'card=[redacted]'),
        e.chunk_index,
      ),
    });
  },

  onResponseHeaders(e) {
    return allow({ responseHeaders: e.status >= 500 ? [removeHeader('server')] : [] });
  },

  // audit only: the exchange is over, the decision is not applied
  onRequestComplete(e) {
    if (e.status >= 500) console.warn(`request ${e.correlation_id} failed upstream`);
    return allow();
  },

  // the proxy gave up on a request; that request's ctx.signal aborts too
  onCancel(correlationId, reason) {
    console.info(`cancelled ${correlationId}: ${reason}`);
  },
};
