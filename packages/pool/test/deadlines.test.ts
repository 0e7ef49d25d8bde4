/** The shared deadline timer behind the pool's per-call guard. */
import { describe, expect, it } from 'vitest';
import { type Deadline, DeadlineTimer } from '../src/deadlines.js';

function entry(inMs: number, log: string[], name: string): Deadline {
  return {
    dueAt: performance.now() + inMs,
    expire: () => log.push(name),
    prevDeadline: undefined,
    nextDeadline: undefined,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('DeadlineTimer', () => {
  it('expires entries in any insertion order once due, and never a removed one', async () => {
    const log: string[] = [];
    const t = new DeadlineTimer();
    const late = entry(60, log, 'late');
    const early = entry(10, log, 'early');
    const removed = entry(20, log, 'removed');
    const middle = entry(30, log, 'middle');
    for (const e of [late, early, removed, middle]) t.add(e);
    t.add(early); // adding twice is a no-op
    expect(t.size).toBe(4);
    t.delete(removed);
    t.delete(removed);
    expect(t.size).toBe(3);
    await sleep(40);
    expect(log).toEqual(['early', 'middle']);
    expect(t.size).toBe(1);
    await sleep(60);
    expect(log).toEqual(['early', 'middle', 'late']);
    expect(t.size).toBe(0);
  });

  it('an earlier deadline added later re-arms the timer; removing every entry stops it', async () => {
    const log: string[] = [];
    const t = new DeadlineTimer();
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const far = entry(10_000, log, 'far');
    t.add(far);
    t.add(entry(10, log, 'soon'));
    await sleep(50);
    expect(log).toEqual(['soon']);
    expect(timers()).toBe(before + 1); // re-armed for `far`
    t.delete(far);
    expect(t.size).toBe(0);
    expect(timers()).toBe(before); // an idle pool holds no timer
    // nothing is left that could hold the process: a re-added entry still fires
    t.add(entry(5, log, 'again'));
    await sleep(40);
    expect(log).toEqual(['soon', 'again']);
  });
});
