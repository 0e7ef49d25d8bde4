import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AgentHandler,
  type AgentResponse,
  allow,
  createCapabilities,
  type EventType,
  type RequestContext,
} from '@picket/protocol';
import { AgentClientV2Uds, silentLogger, UdsAgentServerV2 } from '@picket/uds';

/** A fresh temp dir; `cleanup()` removes it. */
export function tempDir(): { dir: string; sock(name: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'picket-'));
  return {
    dir,
    sock: (name) => join(dir, `${name}.sock`),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** One event as the agent saw it. */
export interface Seen {
  type: EventType;
  cid: string;
  connectionId: string;
}

/** Decides an event; default allow. May be async (e.g. wait on a gate). */
export type Decide = (
  type: EventType,
  ctx: RequestContext,
  event: unknown,
) => AgentResponse | Promise<AgentResponse>;

/**
 * A real UDS agent that records which server-side connection saw each event.
 * `decide` can be swapped at any time.
 */
export class RecordingAgent {
  readonly seen: Seen[] = [];
  readonly cancels: { cid: string; reason: string }[] = [];
  server: UdsAgentServerV2;
  decide: Decide = () => allow();

  constructor(
    readonly agentId: string,
    readonly path: string,
  ) {
    this.server = this.makeServer();
  }

  private makeServer(): UdsAgentServerV2 {
    const hook =
      (type: EventType) =>
      (event: unknown, ctx: RequestContext): AgentResponse | Promise<AgentResponse> => {
        this.seen.push({ type, cid: ctx.correlationId, connectionId: ctx.connectionId });
        return this.decide(type, ctx, event);
      };
    const handler: AgentHandler = {
      capabilities: () => createCapabilities({ agentId: this.agentId }),
      onRequestHeaders: hook('request_headers'),
      onRequestBodyChunk: hook('request_body_chunk'),
      onResponseHeaders: hook('response_headers'),
      onResponseBodyChunk: hook('response_body_chunk'),
      onRequestComplete: hook('request_complete'),
      onConfigure: hook('configure'),
      onCancel: (cid, reason) => {
        this.cancels.push({ cid, reason });
      },
    };
    return new UdsAgentServerV2(this.path, handler, { logger: silentLogger, drainTimeoutMs: 0 });
  }

  async listen(): Promise<void> {
    await this.server.listen();
  }

  /** Kills the agent: every connection destroyed at once, then the listener closed. */
  async kill(): Promise<void> {
    for (const c of this.server.connections) c.destroy();
    await this.server.close({ drainTimeoutMs: 0 });
  }

  /** A new server on the same path (the old one must be closed). */
  async restart(): Promise<void> {
    this.server = this.makeServer();
    await this.server.listen();
  }

  /** Drops the server-side connection `id` at once (as a crashing agent process would). */
  drop(id: string): void {
    for (const c of this.server.connections) if (c.id === id) c.destroy();
  }

  /** Requests per server-side connection id. */
  perConnection(filter: (s: Seen) => boolean = () => true): Map<string, number> {
    const m = new Map<string, number>();
    for (const s of this.seen)
      if (filter(s)) m.set(s.connectionId, (m.get(s.connectionId) ?? 0) + 1);
    return m;
  }

  /** Factory for `pool.addAgent`: a UDS client to this agent. */
  connector(timeoutMs = 2_000): () => Promise<AgentClientV2Uds> {
    return () =>
      AgentClientV2Uds.connect(this.agentId, this.path, {
        timeoutMs,
        connectTimeoutMs: 1_000,
        handshakeTimeoutMs: 1_000,
        logger: silentLogger,
      });
  }
}

export function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
