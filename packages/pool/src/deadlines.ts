/**
 * One timer for many deadlines: armed for the earliest, it expires every entry
 * due when it fires and re-arms for the next. Entries are linked through their
 * own fields (no Set: the churn of a Set's table under one add and one delete
 * per call pushed in-flight calls into old space in the pool benchmark), so a
 * call that is answered in time costs two pointer updates and no timer.
 */

/** Something with a deadline on the `performance.now()` clock, linked by the timer. */
export interface Deadline {
  readonly dueAt: number;
  /** called once when the deadline passed while the entry was still registered */
  expire(): void;
  /** the timer's links; undefined while not registered */
  prevDeadline: Deadline | undefined;
  nextDeadline: Deadline | undefined;
}

/** setTimeout's largest delay; longer deadlines re-arm when the timer fires. */
const MAX_DELAY_MS = 2_147_483_647;
/** Deadlines within this of each other expire together (saves re-arming for each). */
const SLACK_MS = 1;

export class DeadlineTimer {
  private head: Deadline | undefined;
  private tail: Deadline | undefined;
  private count = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  get size(): number {
    return this.count;
  }

  add(entry: Deadline): void {
    if (this.has(entry)) return;
    entry.prevDeadline = this.tail;
    entry.nextDeadline = undefined;
    if (this.tail) this.tail.nextDeadline = entry;
    else this.head = entry;
    this.tail = entry;
    this.count++;
    if (entry.dueAt < this.timerAt) this.arm(entry.dueAt, performance.now());
  }

  delete(entry: Deadline): void {
    if (!this.has(entry)) return;
    const { prevDeadline: prev, nextDeadline: next } = entry;
    if (prev) prev.nextDeadline = next;
    else this.head = next;
    if (next) next.prevDeadline = prev;
    else this.tail = prev;
    entry.prevDeadline = undefined;
    entry.nextDeadline = undefined;
    this.count--;
    // with others left the timer stays armed (it finds nothing due and re-arms);
    // with none it stops, so an idle pool keeps no timer that holds the process
    if (this.count === 0) this.stopTimer();
  }

  private has(entry: Deadline): boolean {
    return entry.prevDeadline !== undefined || this.head === entry;
  }

  private stopTimer(): void {
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
    const due: Deadline[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (let e = this.head; e; e = e.nextDeadline) {
      if (e.dueAt <= now + SLACK_MS) due.push(e);
      else if (e.dueAt < next) next = e.dueAt;
    }
    for (const e of due) this.delete(e);
    if (next !== Number.POSITIVE_INFINITY) this.arm(next, now);
    for (const e of due) e.expire();
  }
}
