/**
 * One timer for many deadlines: armed for the earliest, it expires every entry
 * due when it fires and re-arms for the next. Adding and removing an entry is a
 * Set operation, so a call that is answered in time (the usual case) costs no
 * timer of its own.
 */

/** Something with a deadline on the `performance.now()` clock. */
export interface Deadline {
  readonly dueAt: number;
  /** called once when the deadline passed while the entry was still registered */
  expire(): void;
}

/** setTimeout's largest delay; longer deadlines re-arm when the timer fires. */
const MAX_DELAY_MS = 2_147_483_647;
/** Deadlines within this of each other expire together (saves re-arming for each). */
const SLACK_MS = 1;

export class DeadlineTimer<T extends Deadline> {
  private readonly entries = new Set<T>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  get size(): number {
    return this.entries.size;
  }

  add(entry: T): void {
    this.entries.add(entry);
    if (entry.dueAt < this.timerAt) this.arm(entry.dueAt, performance.now());
  }

  delete(entry: T): void {
    this.entries.delete(entry);
    // with others left the timer stays armed (it finds nothing due and re-arms);
    // with none it stops, so an idle pool keeps no timer that holds the process
    if (this.entries.size === 0 && this.timer !== undefined) this.clear();
  }

  /** Stops the timer; registered entries never expire. */
  clear(): void {
    this.entries.clear();
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private arm(at: number, now: number): void {
    clearTimeout(this.timer);
    this.timerAt = at;
    const delay = Math.min(Math.max(1, Math.ceil(at - now)), MAX_DELAY_MS);
    this.timer = setTimeout(() => this.fire(), delay);
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const due: T[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const e of this.entries) {
      if (e.dueAt <= now + SLACK_MS) due.push(e);
      else if (e.dueAt < next) next = e.dueAt;
    }
    for (const e of due) this.entries.delete(e);
    if (next !== Number.POSITIVE_INFINITY) this.arm(next, now);
    for (const e of due) e.expire();
  }
}
