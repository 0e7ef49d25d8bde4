/**
 * The next hop's "stop": fired once when an agent decides or the client goes away while the
 * request is with the next hop.
 */
import { EventEmitter } from 'node:events';

/**
 * Fired (event `abort`, once) when the exchange no longer wants the next hop's answer: an
 * agent decided, or the client went away. An EventEmitter with `aborted`, so undici's
 * `request({ signal })` takes it as it is; `signal` gives a standard `AbortSignal` for other
 * next hops, made on first use. Why not an AbortController per request: one costs several
 * microseconds to make and listen to, this a fraction of one (docs/perf-notes.md).
 */
export class AbortNotice extends EventEmitter<{ abort: [] }> {
  #aborted = false;
  #signal: AbortSignal | undefined;

  /** whether it fired */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** An `AbortSignal` that aborts with the notice (the same one each time). */
  get signal(): AbortSignal {
    if (this.#signal === undefined) {
      if (this.#aborted) this.#signal = AbortSignal.abort();
      else {
        const c = new AbortController();
        this.once('abort', () => c.abort());
        this.#signal = c.signal;
      }
    }
    return this.#signal;
  }

  /** Fires the notice; later calls do nothing. The engine calls it. */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.emit('abort');
  }
}
