/**
 * The handler every fuzzed server runs: the reference EchoAgent, plus a few request URIs
 * that make it misbehave on purpose so the error paths get exercised under junk too
 * (a throwing hook must become a block 500, a garbage return value too, a slow hook must
 * still be answered).
 */
import { EchoAgent } from '@picket/agents';
import {
  type AgentCapabilities,
  type AgentHandler,
  type AgentResponse,
  block,
  type RequestBodyChunkEvent,
  type RequestCompleteEvent,
  type RequestContext,
  type RequestHeadersEvent,
  type ResponseBodyChunkEvent,
  type ResponseHeadersEvent,
  type WebSocketFrameEvent,
} from '@picket/protocol';

/** Counters of what the fuzz agent saw. */
export interface FuzzAgentStats {
  requests: number;
  thrown: number;
  garbage: number;
}

/** An {@link AgentHandler} with deliberate failure triggers (see the module comment). */
export class FuzzAgent implements AgentHandler {
  readonly stats: FuzzAgentStats = { requests: 0, thrown: 0, garbage: 0 };
  private readonly echo: EchoAgent;

  constructor(agentId = 'fuzz-agent') {
    this.echo = new EchoAgent({ agentId });
  }

  capabilities(): AgentCapabilities {
    return this.echo.capabilities();
  }

  async onRequestHeaders(e: RequestHeadersEvent, ctx: RequestContext): Promise<AgentResponse> {
    this.stats.requests++;
    const uri = typeof e.uri === 'string' ? e.uri : '';
    if (uri.startsWith('/fuzz/throw')) {
      this.stats.thrown++;
      throw new Error('fuzz agent: deliberate failure');
    }
    if (uri.startsWith('/fuzz/garbage')) {
      this.stats.garbage++;
      return { decision: 'maybe' } as unknown as AgentResponse;
    }
    if (uri.startsWith('/fuzz/slow')) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1 + (uri.length % 15));
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (uri.startsWith('/fuzz/reject')) return block(403, { body: 'rejected by fuzz agent' });
    return this.echo.onRequestHeaders(e);
  }

  onRequestBodyChunk(e: RequestBodyChunkEvent): AgentResponse {
    return this.echo.onRequestBodyChunk(e);
  }

  onResponseHeaders(e: ResponseHeadersEvent): AgentResponse {
    return this.echo.onResponseHeaders(e);
  }

  onResponseBodyChunk(e: ResponseBodyChunkEvent): AgentResponse {
    return this.echo.onResponseBodyChunk(e);
  }

  onRequestComplete(e: RequestCompleteEvent): AgentResponse {
    return this.echo.onRequestComplete(e);
  }

  onWebSocketFrame(e: WebSocketFrameEvent): AgentResponse {
    return this.echo.onWebSocketFrame(e);
  }
}
