import type { CircuitState } from './breaker.js';

/** A change in the pool worth telling an operator about. */
export type PoolStatus =
  | { type: 'agent_added'; agentId: string }
  | { type: 'agent_removed'; agentId: string }
  | { type: 'connection_added'; agentId: string; connectionId: string }
  | { type: 'connection_removed'; agentId: string; connectionId: string; reason: string }
  /** a (re)connect attempt failed; the next one follows after `retryInMs` */
  | { type: 'connect_failed'; agentId: string; attempt: number; retryInMs: number; error: Error }
  | { type: 'agent_healthy'; agentId: string; healthyConnections: number }
  | { type: 'agent_unhealthy'; agentId: string }
  | { type: 'circuit'; agentId: string; from: CircuitState; to: CircuitState };

/** The pool's typed events. */
export interface PoolEventMap {
  status: [status: PoolStatus];
}

/**
 * A bounded buffer behind `AgentPool.status()`: the oldest entries are dropped
 * when a slow consumer falls `capacity` events behind.
 */
export class StatusStream implements AsyncIterableIterator<PoolStatus> {
  private readonly buffer: PoolStatus[] = [];
  private waiting: ((r: IteratorResult<PoolStatus>) => void) | undefined;
  private ended = false;
  /** events dropped because the consumer was too slow */
  dropped = 0;

  constructor(
    private readonly capacity: number,
    private readonly onEnd: (s: StatusStream) => void,
  ) {}

  push(s: PoolStatus): void {
    if (this.ended) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w({ value: s, done: false });
      return;
    }
    if (this.buffer.length >= this.capacity) {
      this.buffer.shift();
      this.dropped++;
    }
    this.buffer.push(s);
  }

  /** Ends the stream after the buffered events. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(this);
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<PoolStatus>> {
    const s = this.buffer.shift();
    if (s) return Promise.resolve({ value: s, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  return(): Promise<IteratorResult<PoolStatus>> {
    this.buffer.length = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<PoolStatus> {
    return this;
  }
}
