/**
 * A well-behaved proxy↔agent pair doing requests for as long as the harness runs, to show
 * that junk on other connections does not disturb it: every request must succeed.
 */
import { within } from './raw-conn.js';

/** Counters of a {@link GoodTraffic} loop. */
export interface GoodTrafficStats {
  sent: number;
  ok: number;
  failed: number;
  /** the first few failures, for the report */
  errors: string[];
}

/**
 * Runs `send(i)` in `concurrency` loops until {@link GoodTraffic.stop}. A call that throws
 * (or does not settle within `guardMs`) counts as failed.
 */
export class GoodTraffic {
  readonly stats: GoodTrafficStats = { sent: 0, ok: 0, failed: 0, errors: [] };
  private running = false;
  private loops: Promise<void>[] = [];
  private next = 0;

  constructor(
    private readonly name: string,
    private readonly send: (i: number) => Promise<void>,
    private readonly options: { concurrency?: number; guardMs?: number; pauseMs?: number } = {},
  ) {}

  /** Starts the loops. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const n = this.options.concurrency ?? 2;
    for (let i = 0; i < n; i++) this.loops.push(this.loop());
  }

  /** Stops after the calls in flight settle. */
  async stop(): Promise<GoodTrafficStats> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
    return this.stats;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const i = this.next++;
      this.stats.sent++;
      try {
        await within(this.send(i), this.options.guardMs ?? 15_000, `${this.name} request ${i}`);
        this.stats.ok++;
      } catch (err) {
        this.stats.failed++;
        if (this.stats.errors.length < 5) {
          this.stats.errors.push(`${this.name} #${i}: ${(err as Error).message}`);
        }
      }
      if (this.options.pauseMs !== undefined) {
        await new Promise((r) => setTimeout(r, this.options.pauseMs));
      } else {
        // let the fuzz connections have the event loop too
        await new Promise((r) => setImmediate(r));
      }
    }
  }
}
