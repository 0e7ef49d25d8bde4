import {
  type AgentCapabilities,
  type AgentHandler,
  type AgentResponse,
  allow,
  createCapabilities,
  type RequestBodyChunkEvent,
  type RequestCompleteEvent,
  type RequestHeadersEvent,
  type ResponseBodyChunkEvent,
  type ResponseHeadersEvent,
  setHeader,
  type WebSocketFrameEvent,
  websocketAllow,
} from '@picket/protocol';

export interface EchoAgentOptions {
  agentId?: string;
  /** `'v2'` (default): the Zentinel v2 echo agent; `'v1'`: the legacy one (one header). */
  mode?: 'v1' | 'v2';
  /** prefix of every echo header; default `X-Echo-` */
  prefix?: string;
  /** also echo client ip, timestamp, user agent, content type and header counts */
  verbose?: boolean;
}

/**
 * Reflects what it sees into request/response headers and audit data, and
 * always allows. In v2 mode it adds `X-Echo-Agent`, `-Correlation-Id`,
 * `-Request-Num`, `-Method` and `-Path` to requests (tags `echo`,
 * `request_headers`); in v1 mode exactly one header, `X-Echo-Agent` set to the
 * correlation id (tag `echo`). Useful to see what a proxy sends and to test a chain.
 */
export class EchoAgent implements AgentHandler {
  readonly agentId: string;
  private readonly mode: 'v1' | 'v2';
  private readonly prefix: string;
  private readonly verbose: boolean;
  private requests = 0;

  constructor(options: EchoAgentOptions = {}) {
    this.agentId = options.agentId ?? 'echo-agent';
    this.mode = options.mode ?? 'v2';
    this.prefix = options.prefix ?? 'X-Echo-';
    this.verbose = options.verbose ?? false;
    this.version = `${this.agentId}/1.0`;
  }

  capabilities(): AgentCapabilities {
    return createCapabilities({
      agentId: this.agentId,
      name: 'Echo Agent',
      version: '1.0.0',
      features: {
        streaming_body: true,
        websocket: true,
        cancellation: true,
        concurrent_requests: 100,
      },
    });
  }

  /** echo header names, built once each (not a fresh string per header per event) */
  private readonly names = new Map<string, string>();
  /** the `Agent` header's value */
  private readonly version: string;

  private h(name: string): string {
    let full = this.names.get(name);
    if (full === undefined) {
      full = this.prefix + name;
      this.names.set(name, full);
    }
    return full;
  }

  onRequestHeaders(e: RequestHeadersEvent): AgentResponse {
    const cid = e.metadata.correlation_id;
    if (this.mode === 'v1') {
      return allow({ requestHeaders: [setHeader(this.h('Agent'), cid)], tags: ['echo'] });
    }
    const num = ++this.requests;
    const ops = [
      setHeader(this.h('Agent'), this.version),
      setHeader(this.h('Correlation-Id'), cid),
      setHeader(this.h('Request-Num'), String(num)),
      setHeader(this.h('Method'), e.method),
      setHeader(this.h('Path'), e.uri),
    ];
    if (this.verbose) {
      ops.push(setHeader(this.h('Client-Ip'), e.metadata.client_ip));
      ops.push(setHeader(this.h('Timestamp'), e.metadata.timestamp));
      const ua = e.headers['user-agent']?.[0];
      if (ua !== undefined) ops.push(setHeader(this.h('User-Agent'), ua));
      const ct = e.headers['content-type']?.[0];
      if (ct !== undefined) ops.push(setHeader(this.h('Content-Type'), ct));
      ops.push(setHeader(this.h('Header-Count'), String(Object.keys(e.headers).length)));
    }
    return allow({
      requestHeaders: ops,
      tags: ['echo', 'request_headers'],
      custom: { request_num: num, method: e.method, uri: e.uri },
    });
  }

  onRequestBodyChunk(e: RequestBodyChunkEvent): AgentResponse {
    if (this.mode === 'v1') return allow();
    const ops = [
      setHeader(this.h('Body-Chunk-Size'), String(e.data.byteLength)),
      setHeader(this.h('Body-Last-Chunk'), String(e.is_last)),
    ];
    if (e.total_size != null) ops.push(setHeader(this.h('Body-Total-Size'), String(e.total_size)));
    return allow({
      requestHeaders: ops,
      tags: ['echo', 'request_body'],
      custom: { chunk_size: e.data.byteLength },
    });
  }

  onResponseHeaders(e: ResponseHeadersEvent): AgentResponse {
    if (this.mode === 'v1') return allow();
    const ops = [
      setHeader(this.h('Response-Status'), String(e.status)),
      setHeader(this.h('Response-Correlation-Id'), e.correlation_id),
    ];
    if (this.verbose) {
      ops.push(setHeader(this.h('Response-Header-Count'), String(Object.keys(e.headers).length)));
      const ct = e.headers['content-type']?.[0];
      if (ct !== undefined) ops.push(setHeader(this.h('Response-Content-Type'), ct));
    }
    return allow({
      responseHeaders: ops,
      tags: ['echo', 'response_headers'],
      custom: { status: e.status },
    });
  }

  onResponseBodyChunk(e: ResponseBodyChunkEvent): AgentResponse {
    if (this.mode === 'v1') return allow();
    const ops = [
      setHeader(this.h('Response-Body-Chunk-Size'), String(e.data.byteLength)),
      setHeader(this.h('Response-Body-Last-Chunk'), String(e.is_last)),
    ];
    if (e.total_size != null) {
      ops.push(setHeader(this.h('Response-Body-Total-Size'), String(e.total_size)));
    }
    return allow({
      responseHeaders: ops,
      tags: ['echo', 'response_body'],
      custom: { chunk_size: e.data.byteLength },
    });
  }

  onRequestComplete(e: RequestCompleteEvent): AgentResponse {
    if (this.mode === 'v1') return allow();
    return allow({
      tags: ['echo', 'request_complete'],
      custom: {
        status: e.status,
        duration_ms: e.duration_ms,
        request_body_size: e.request_body_size,
        response_body_size: e.response_body_size,
      },
    });
  }

  onWebSocketFrame(e: WebSocketFrameEvent): AgentResponse {
    return websocketAllow({
      tags: ['echo', 'websocket_frame'],
      custom: { opcode: e.opcode, size: e.data.byteLength },
    });
  }
}
