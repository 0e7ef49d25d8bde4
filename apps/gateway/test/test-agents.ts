/** Agents the end-to-end tests run in the test process (over UDS). */
import {
  type AgentCapabilities,
  type AgentHandler,
  type AgentResponse,
  addHeader,
  allow,
  block,
  type CancelReason,
  challenge,
  createCapabilities,
  type RequestBodyChunkEvent,
  type RequestCompleteEvent,
  type RequestContext,
  type RequestHeadersEvent,
  type ResponseBodyChunkEvent,
  redirect,
  removeHeader,
  replaceBody,
  setHeader,
} from '@picket/protocol';

const caps = (id: string): AgentCapabilities =>
  createCapabilities({
    agentId: id,
    name: id,
    version: '1.0.0',
    features: { streaming_body: true, cancellation: true, concurrent_requests: 100 },
  });

/** Set / add / remove request headers, set a response header; remembers what it saw. */
export class StampAgent implements AgentHandler {
  readonly seen: RequestHeadersEvent[] = [];
  capabilities = () => caps('stamp');
  onRequestHeaders(e: RequestHeadersEvent): AgentResponse {
    this.seen.push(e);
    return allow({
      requestHeaders: [
        setHeader('x-stamp', 'stamped'),
        addHeader('x-multi', 'two'),
        removeHeader('x-remove-me'),
      ],
      responseHeaders: [setHeader('x-resp-stamp', 'yes')],
    });
  }
}

/** Decides by path; rewrites bodies; hangs on `/hang` until cancelled. */
export class ControlAgent implements AgentHandler {
  readonly uris = new Map<string, string>();
  readonly hanging: string[] = [];
  readonly cancels: { cid: string; reason: CancelReason }[] = [];
  readonly aborted: string[] = [];
  readonly completes: RequestCompleteEvent[] = [];
  readonly requestChunks: RequestBodyChunkEvent[] = [];
  capabilities = () => caps('control');

  onRequestHeaders(
    e: RequestHeadersEvent,
    ctx: RequestContext,
  ): AgentResponse | Promise<AgentResponse> {
    this.uris.set(e.metadata.correlation_id, e.uri);
    if (e.uri === '/redirect') return redirect('https://login.example/next', 307);
    if (e.uri === '/challenge') return challenge('bearer', { realm: 'picket' });
    if (e.uri === '/hang') {
      this.hanging.push(ctx.correlationId);
      return new Promise((resolve) => {
        ctx.signal.addEventListener('abort', () => {
          this.aborted.push(ctx.correlationId);
          resolve(allow());
        });
      });
    }
    return allow();
  }

  onRequestBodyChunk(e: RequestBodyChunkEvent): AgentResponse {
    this.requestChunks.push(e);
    const text = Buffer.from(e.data).toString('utf8');
    if (text.includes('replace-me')) {
      return allow({ requestBodyMutation: replaceBody('the agent rewrote this body ✓ — ü', 0) });
    }
    return allow();
  }

  onResponseBodyChunk(e: ResponseBodyChunkEvent): AgentResponse {
    if (this.uris.get(e.correlation_id) === '/rewrite-response') {
      return allow({ responseBodyMutation: replaceBody('{"rewritten":"ja, straße"}', 0) });
    }
    return allow();
  }

  onRequestComplete(e: RequestCompleteEvent): AgentResponse {
    this.completes.push(e);
    return allow();
  }

  onCancel(cid: string, reason: CancelReason): void {
    this.cancels.push({ cid, reason });
  }
}

/** Stream mode: upper-cases every chunk in both directions. */
export class UpperAgent implements AgentHandler {
  readonly chunks: { dir: 'req' | 'resp'; size: number; last: boolean }[] = [];
  capabilities = () => caps('upper');
  onRequestBodyChunk(e: RequestBodyChunkEvent): AgentResponse {
    this.chunks.push({ dir: 'req', size: e.data.length, last: e.is_last });
    const t = Buffer.from(e.data).toString('utf8');
    if (t.includes('evil')) return block(403, { body: 'evil chunk' });
    return allow({
      requestBodyMutation: { data: t === '' ? null : t.toUpperCase(), chunk_index: e.chunk_index },
    });
  }
  onResponseBodyChunk(e: ResponseBodyChunkEvent): AgentResponse {
    this.chunks.push({ dir: 'resp', size: e.data.length, last: e.is_last });
    const t = Buffer.from(e.data).toString('utf8');
    if (t.includes('evil')) return block(403, { body: 'evil response' });
    return allow({
      responseBodyMutation: { data: t === '' ? null : t.toUpperCase(), chunk_index: e.chunk_index },
    });
  }
}
