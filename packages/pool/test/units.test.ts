import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_BACKOFF, type LoadBalanceStrategy } from '../src/index.js';
import { AffinityTable, BoundedTtlMap, backoffDelay, pickIndex } from '../src/internal.js';

describe('backoffDelay', () => {
  const o = { initialDelayMs: 100, maxDelayMs: 1_000, multiplier: 2, jitter: 0.5 };

  it('grows exponentially, is capped, never gives up', () => {
    expect([0, 1, 2, 3, 4, 50, 5_000].map((a) => backoffDelay(a, o, () => 1))).toEqual([
      100, 200, 400, 800, 1_000, 1_000, 1_000,
    ]);
  });

  it('randomises the jitter fraction only', () => {
    expect(backoffDelay(2, o, () => 0)).toBe(200);
    expect(backoffDelay(2, o, () => 0.5)).toBe(300);
    expect(backoffDelay(2, { ...o, jitter: 0 }, () => 0)).toBe(400);
  });

  it('has sane defaults', () => {
    expect(DEFAULT_BACKOFF).toEqual({
      initialDelayMs: 100,
      maxDelayMs: 30_000,
      multiplier: 2,
      jitter: 0.5,
    });
  });
});

describe('BoundedTtlMap (correlation affinity)', () => {
  afterEach(() => vi.useRealTimers());

  it('cap 3 with 10 inserts keeps 3 and counts 7 rejections; re-insert at cap is fine', () => {
    const m = new BoundedTtlMap<string>(3, 60_000);
    for (let i = 0; i < 10; i++) m.set(`c${i}`, 'x');
    expect(m.size).toBe(3);
    expect(m.rejections).toBe(7);
    expect(m.set('c1', 'y')).toBe(true);
    expect(m.rejections).toBe(7);
    expect(m.get('c1')).toBe('y');
    m.delete('c1');
    expect(m.get('c1')).toBeUndefined();
    expect(m.set('c9', 'z')).toBe(true);
  });

  it('re-setting a key below the cap updates it in place; freed slots serve new keys one each', () => {
    const m = new BoundedTtlMap<number>(10, 60_000);
    m.set('a', 1);
    m.set('b', 2);
    m.delete('a'); // a free slot now
    expect(m.set('b', 3)).toBe(true); // an existing key: must not take the free slot
    expect(m.size).toBe(1);
    m.set('c', 4);
    m.set('d', 5);
    m.set('e', 6);
    expect([m.get('b'), m.get('c'), m.get('d'), m.get('e'), m.get('a')]).toEqual([
      3,
      4,
      5,
      6,
      undefined,
    ]);
    expect(m.size).toBe(4);
    for (const k of ['b', 'c', 'd', 'e']) m.delete(k);
    expect(m.size).toBe(0);
    for (let i = 0; i < 10; i++) expect(m.set(`k${i}`, i)).toBe(true); // the whole budget is back
    expect(m.set('k10', 10)).toBe(false);
  });

  it('TTL 0 sweep removes everything and counts evictions', () => {
    const m = new BoundedTtlMap<number>(10, 0);
    m.set('a', 1);
    m.set('b', 2);
    expect(m.sweep()).toBe(2);
    expect(m.evictions).toBe(2);
    expect(m.size).toBe(0);
  });

  it('expires by age (fake clock); get refreshes only when sliding', () => {
    vi.useFakeTimers();
    const fixed = new BoundedTtlMap<number>(10, 1_000);
    const sliding = new BoundedTtlMap<number>(10, 1_000, true);
    fixed.set('a', 1);
    sliding.set('a', 1);
    fixed.set('b', 2);
    vi.advanceTimersByTime(600);
    expect(fixed.get('a')).toBe(1);
    expect(sliding.get('a')).toBe(1);
    vi.advanceTimersByTime(600);
    expect(fixed.get('a')).toBeUndefined();
    expect(sliding.get('a')).toBe(1);
    expect(fixed.sweep()).toBe(1); // b
    expect(fixed.evictions).toBe(2);
    expect(sliding.sweep()).toBe(0);
  });

  it('keys named like Object.prototype members are plain entries', () => {
    const m = new BoundedTtlMap<string>(10, 60_000);
    expect(m.get('toString')).toBeUndefined();
    for (const k of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) m.set(k, `v-${k}`);
    expect(m.size).toBe(4);
    expect(m.get('__proto__')).toBe('v-__proto__');
    expect(m.get('constructor')).toBe('v-constructor');
    expect(m.delete('toString')).toBe(true);
    expect(m.delete('toString')).toBe(false);
    expect(m.size).toBe(3);
  });

  it('sweep finds every expired entry, whatever the order they were set in', () => {
    vi.useFakeTimers();
    const m = new BoundedTtlMap<number>(10, 1_000);
    m.set('old-1', 1);
    vi.advanceTimersByTime(500);
    m.set('young', 2);
    m.set('old-1', 3); // refreshed: young again
    vi.advanceTimersByTime(100);
    m.set('middle', 4);
    vi.advanceTimersByTime(950);
    expect(m.sweep()).toBe(2); // young and old-1 (set at 500 ms), not middle (600 ms)
    expect(m.get('middle')).toBe(4);
    expect(m.size).toBe(1);
  });

  it('AffinityTable: one bound for every agent, ids kept apart per agent, counts survive a removed agent', () => {
    const t = new AffinityTable(3, 60_000);
    expect(t.set('waf', 'r1', 'c1')).toBe(true);
    expect(t.set('auth', 'r1', 'c7')).toBe(true);
    expect(t.set('waf', 'r2', 'c2')).toBe(true);
    expect(t.set('auth', 'r2', 'c8')).toBe(false); // the shared bound of 3
    expect(t.rejections).toBe(1);
    expect(t.get('waf', 'r1')).toBe('c1');
    expect(t.get('auth', 'r1')).toBe('c7');
    expect(t.set('waf', 'r1', 'c3')).toBe(true); // re-set at the bound is fine
    t.deleteEverywhere('r1');
    expect([t.get('waf', 'r1'), t.get('auth', 'r1'), t.size]).toEqual([undefined, undefined, 1]);
    expect(t.set('auth', 'r2', 'c8')).toBe(true);
    t.dropAgent('auth');
    expect([t.size, t.rejections]).toEqual([1, 1]);
    expect(t.set('auth', 'r3', 'c9')).toBe(true); // a new map for the agent, not the dropped one
    expect([t.get('auth', 'r3'), t.size]).toEqual(['c9', 2]);
    t.deleteEverywhere('r3');
    expect([t.get('auth', 'r3'), t.size]).toEqual([undefined, 1]);
    t.clear();
    expect([t.size, t.get('waf', 'r2')]).toEqual([0, undefined]);
  });

  it('null TTL never expires; deleteWhere removes by value', () => {
    const m = new BoundedTtlMap<string>(10, null);
    m.set('a', 'conn1');
    m.set('b', 'conn2');
    m.set('c', 'conn1');
    expect(m.sweep()).toBe(0);
    expect(m.deleteWhere((v) => v === 'conn1')).toBe(2);
    expect(m.get('b')).toBe('conn2');
  });
});

describe('pickIndex', () => {
  const idle = (n: number) => Array.from({ length: n }, () => ({ active: 0, errorRate: 0 }));
  const spread = (
    strategy: LoadBalanceStrategy,
    cands = idle(4),
    n = 400,
    random = Math.random,
  ) => {
    const state = { cursor: 0 };
    const counts = new Array(cands.length).fill(0);
    for (let i = 0; i < n; i++) counts[pickIndex(strategy, cands, state, random)]++;
    return counts;
  };

  it('returns -1 for no candidates and 0 for one', () => {
    expect(pickIndex('random', [], { cursor: 0 })).toBe(-1);
    expect(pickIndex('least_connections', idle(1), { cursor: 0 })).toBe(0);
  });

  it('round robin cycles evenly', () => {
    expect(spread('round_robin')).toEqual([100, 100, 100, 100]);
  });

  it('least connections prefers the idle one and spreads ties', () => {
    const c = [
      { active: 3, errorRate: 0 },
      { active: 0, errorRate: 0 },
      { active: 2, errorRate: 0 },
    ];
    expect(spread('least_connections', c, 30)).toEqual([0, 30, 0]);
    expect(spread('least_connections', idle(4))).toEqual([100, 100, 100, 100]);
  });

  it('health based avoids the erroring connection', () => {
    const c = [
      { active: 0, errorRate: 0.5 },
      { active: 0, errorRate: 0 },
      { active: 0, errorRate: 0 },
    ];
    const counts = spread('health_based', c, 100);
    expect(counts[0]).toBe(0);
    expect(counts[1]! + counts[2]!).toBe(100);
    expect(Math.min(counts[1]!, counts[2]!)).toBeGreaterThan(0);
  });

  it('random and power-of-two spread over all connections', () => {
    for (const s of ['random', 'power_of_two_choices'] as const) {
      const counts = spread(s);
      for (const c of counts) expect(c).toBeGreaterThan(0);
    }
  });

  it('power of two picks the less loaded of its two samples', () => {
    const c = [
      { active: 9, errorRate: 0 },
      { active: 1, errorRate: 0 },
    ];
    const seq = [0.1, 0.1]; // a = 0, b = 0 → shifted to 1
    let i = 0;
    expect(pickIndex('power_of_two_choices', c, { cursor: 0 }, () => seq[i++]!)).toBe(1);
  });
});
