/**
 * Body inspection as a chain of pull-based stages, one per agent, each an
 * async generator of Buffers: agent k sees the body as agent k-1 left it.
 * Data only moves on once the agent has answered for it, so nothing an agent
 * has not cleared reaches the next hop (request) or the client (response).
 */
import type { AgentResponse, BodyMutation } from '@picket/protocol';
import type { AgentSpec } from './engine.js';

/** A non-allow decision (or a refusal the engine makes for an agent) that ends the exchange. */
export class DecisionSignal extends Error {
  constructor(
    readonly agent: string,
    readonly response: AgentResponse,
  ) {
    super(`agent "${agent}" decided ${JSON.stringify(response.decision)}`);
    this.name = 'DecisionSignal';
  }
}

/** One body event, before it is shaped into a request or response chunk event. */
export interface ChunkInfo {
  data: Buffer;
  isLast: boolean;
  /** the whole body's size when known */
  totalSize: number | null;
  chunkIndex: number;
  /** bytes of this body the agent has been offered so far, this chunk included */
  cumulative: number;
}

/** What a stage needs from the exchange. */
export interface StageHooks {
  /**
   * Sends one chunk to the agent and resolves with its answer; throws
   * {@link DecisionSignal} when the answer is not allow.
   */
  send(agent: AgentSpec, chunk: ChunkInfo): Promise<AgentResponse>;
  /** the mutation field of this direction (`request_body_mutation` / `response_body_mutation`) */
  mutation(r: AgentResponse): BodyMutation | null;
  /**
   * Buffer mode and the body is larger than `max_body_bytes`: returns the
   * response that stands in for the agent (fail-closed: a block), or undefined
   * to let the body through uninspected (fail-open).
   */
  overLimit(agent: AgentSpec, size: number): AgentResponse | undefined;
}

const EMPTY = Buffer.alloc(0);

/**
 * Stream mode: every chunk goes to the agent as it arrives and moves on once
 * answered. `needs_more` on a non-last chunk holds it (and the following ones)
 * back until an answer without it; a mutation may then name any held chunk by
 * `chunk_index` (otherwise it applies to the current one). The end of the
 * body is the chunk whose bytes reach `totalSize`, or else an extra empty
 * chunk with `is_last`.
 */
export async function* streamStage(
  input: AsyncIterable<Buffer>,
  agent: AgentSpec,
  hooks: StageHooks,
  totalSize: number | null,
): AsyncGenerator<Buffer> {
  let held: { index: number; data: Buffer }[] = [];
  let index = 0;
  let cumulative = 0;
  let sentLast = false;
  const process = async (data: Buffer, isLast: boolean): Promise<Buffer[]> => {
    cumulative += data.length;
    const chunkIndex = index++;
    const current = { index: chunkIndex, data };
    held.push(current);
    const r = await hooks.send(agent, { data, isLast, totalSize, chunkIndex, cumulative });
    const m = hooks.mutation(r);
    if (m && m.data !== null) {
      const target = held.find((h) => h.index === m.chunk_index) ?? current;
      target.data = m.data === '' ? EMPTY : Buffer.from(m.data, 'utf8');
    }
    if (r.needs_more && !isLast) return [];
    const out = held.map((h) => h.data).filter((d) => d.length > 0);
    held = [];
    return out;
  };
  for await (const chunk of input) {
    if (chunk.length === 0 || sentLast) continue;
    const isLast = totalSize !== null && cumulative + chunk.length >= totalSize;
    if (isLast) sentLast = true;
    yield* await process(chunk, isLast);
  }
  if (!sentLast) yield* await process(EMPTY, true);
}

/**
 * Buffer mode: collects the whole body (up to `max_body_bytes`), sends it as
 * one chunk (index 0, `is_last`), and yields the (possibly replaced) body.
 * Over the limit, {@link StageHooks.overLimit} decides: block, or pass the
 * body through uninspected.
 */
export async function* bufferStage(
  input: AsyncIterable<Buffer>,
  agent: AgentSpec,
  hooks: StageHooks,
): AsyncGenerator<Buffer> {
  const it = input[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const next = await it.next();
    if (next.done) break;
    size += next.value.length;
    chunks.push(next.value);
    if (size > agent.maxBodyBytes) {
      const refusal = hooks.overLimit(agent, size);
      if (refusal) {
        await it.return?.();
        throw new DecisionSignal(agent.name, refusal);
      }
      yield* chunks;
      for (;;) {
        const rest = await it.next();
        if (rest.done) return;
        yield rest.value;
      }
    }
  }
  let data = Buffer.concat(chunks, size);
  const r = await hooks.send(agent, {
    data,
    isLast: true,
    totalSize: size,
    chunkIndex: 0,
    cumulative: size,
  });
  const m = hooks.mutation(r);
  if (m && m.data !== null) data = m.data === '' ? EMPTY : Buffer.from(m.data, 'utf8');
  if (data.length > 0) yield data;
}

/** Chains one stage per agent over `source`. */
export function bodyPipeline(
  source: AsyncIterable<Buffer>,
  agents: readonly AgentSpec[],
  hooks: StageHooks,
  totalSize: number | null,
): AsyncIterable<Buffer> {
  let out = source;
  for (const [i, agent] of agents.entries()) {
    // only the first stage knows the exact size; later ones may see a mutated body
    out =
      agent.bodyMode === 'buffer'
        ? bufferStage(out, agent, hooks)
        : streamStage(out, agent, hooks, i === 0 ? totalSize : null);
  }
  return out;
}

/** Drains an async iterable into one Buffer. */
export async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of source) chunks.push(c);
  return Buffer.concat(chunks);
}
