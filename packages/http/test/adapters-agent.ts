/**
 * The adapter tests' agent, served over a real Unix socket, and a pool with it plus two
 * agents whose sockets nobody listens on (one fail-open, one fail-closed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AgentHandler,
  type AgentResponse,
  allow,
  block,
  type CancelReason,
  createCapabilities,
  type RequestBodyChunkEvent,
  type RequestContext,
  type RequestHeadersEvent,
  type ResponseBodyChunkEvent,
  type ResponseHeadersEvent,
  redirect,
  removeHeader,
  replaceBody,
  setHeader,
} from '@picket/protocol';
import { createPool } from '@picket/transport';
import { UdsAgentServerV2 } from '@picket/uds';

/**
 * Decides by path: `/blocked` → 403, `/redirect` → 307, `/hang` waits until cancelled;
 * every other request gets `x-agent-req` set and `x-remove-me` removed, and its response
 * `x-agent-resp`. A request body containing `replace-me` is rewritten; the response body of
 * `/rewrite-response` is replaced; the response of `/response-blocked` is refused (451); a body
 * chunk containing `evil` is blocked (403). Remembers what it saw.
 */
export class TestAgent implements AgentHandler {
  readonly seen: RequestHeadersEvent[] = [];
  readonly responses: ResponseHeadersEvent[] = [];
  readonly requestBodies: string[] = [];
  readonly hanging: string[] = [];
  readonly cancels: { cid: string; reason: CancelReason }[] = [];
  private readonly uris = new Map<string, string>();

  capabilities = () =>
    createCapabilities({
      agentId: 'test',
      name: 'test',
      version: '1.0.0',
      features: { streaming_body: true, cancellation: true, concurrent_requests: 100 },
    });

  onRequestHeaders(
    e: RequestHeadersEvent,
    ctx: RequestContext,
  ): Promise<AgentResponse> | AgentResponse {
    this.seen.push(e);
    this.uris.set(e.metadata.correlation_id, e.uri);
    if (e.uri.startsWith('/blocked')) return block(403, { body: 'blocked by agent\n' });
    if (e.uri.startsWith('/redirect')) return redirect('https://login.example/next', 307);
    if (e.uri.startsWith('/hang')) {
      this.hanging.push(ctx.correlationId);
      return new Promise((resolve) => {
        ctx.signal.addEventListener('abort', () => resolve(allow()), { once: true });
      });
    }
    return allow({
      requestHeaders: [setHeader('x-agent-req', 'yes'), removeHeader('x-remove-me')],
      responseHeaders: [setHeader('x-agent-resp', 'yes')],
    });
  }

  onRequestBodyChunk(e: RequestBodyChunkEvent): AgentResponse {
    const text = Buffer.from(e.data).toString('utf8');
    this.requestBodies.push(text);
    if (text.includes('evil')) return block(403, { body: 'evil chunk\n' });
    if (text.includes('replace-me')) {
      return allow({ requestBodyMutation: replaceBody('the agent rewrote this body ✓', 0) });
    }
    return allow();
  }

  onResponseHeaders(e: ResponseHeadersEvent): AgentResponse {
    this.responses.push(e);
    if (this.uris.get(e.correlation_id) === '/response-blocked') {
      return block(451, { body: 'the agent refused this response\n' });
    }
    return allow({ responseHeaders: [setHeader('x-agent-resp-phase', String(e.status))] });
  }

  onResponseBodyChunk(e: ResponseBodyChunkEvent): AgentResponse {
    if (this.uris.get(e.correlation_id) === '/rewrite-response') {
      return allow({ responseBodyMutation: replaceBody('{"rewritten":"ja, straße"}', 0) });
    }
    return allow();
  }

  onCancel(cid: string, reason: CancelReason): void {
    this.cancels.push({ cid, reason });
  }
}

/** A running agent and a pool: `test`, and `down-open` / `down-closed` (no agent listening). */
export interface AgentFixture {
  agent: TestAgent;
  pool: ReturnType<typeof createPool>;
  socket: string;
  close(): Promise<void>;
}

export async function startAgent(): Promise<AgentFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'picket-http-'));
  const socket = join(dir, 'agent.sock');
  const agent = new TestAgent();
  const server = new UdsAgentServerV2(socket, agent);
  await server.listen();
  const pool = createPool({ requestTimeoutMs: 10_000, connectTimeoutMs: 2_000 });
  await pool.addAgent('test', socket, { failureMode: 'closed' });
  const nowhere = join(dir, 'nobody.sock');
  await pool.addAgent('down-open', nowhere, { failureMode: 'open' });
  await pool.addAgent('down-closed', nowhere, { failureMode: 'closed' });
  return {
    agent,
    pool,
    socket,
    async close() {
      await pool.close({ drainTimeoutMs: 0 });
      await server.close({ drainTimeoutMs: 0 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `f` until it returns something (the agent hears of a cancel asynchronously). */
export async function until<T>(f: () => T | undefined, what = 'condition'): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}
