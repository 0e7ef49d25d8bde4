import { describe, expect, it } from 'vitest';
import { IdTable } from '../src/internal/index.js';

/** A small deterministic PRNG so a failure can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Runs the same random operations on an IdTable and a Map and compares them after each. */
function agreesWithMap(table: IdTable<number>, seed: number, ops: number, ids: number): void {
  const map = new Map<string, number>();
  const rnd = prng(seed);
  for (let n = 0; n < ops; n++) {
    const id = `id-${Math.floor(rnd() * ids)}`;
    const r = rnd();
    if (r < 0.35) {
      const added = table.add(id, n);
      expect(added).toBe(!map.has(id));
      if (added) map.set(id, n);
    } else if (r < 0.5) {
      table.set(id, n);
      map.set(id, n);
    } else if (r < 0.75) {
      expect(table.take(id)).toBe(map.get(id));
      map.delete(id);
    } else if (r < 0.9) {
      expect(table.delete(id)).toBe(map.delete(id));
    } else {
      expect(table.get(id)).toBe(map.get(id));
      expect(table.has(id)).toBe(map.has(id));
    }
    expect(table.size).toBe(map.size);
  }
  for (const [id, v] of map) expect(table.get(id)).toBe(v);
  expect(table.values().sort((a, b) => a - b)).toEqual([...map.values()].sort((a, b) => a - b));
  expect(table.ids().sort()).toEqual([...map.keys()].sort());
}

describe('IdTable', () => {
  it('behaves like a Map under random adds, replaces, takes and deletes (growing past 1024 and back)', () => {
    for (const [seed, ids] of [
      [1, 8],
      [2, 100],
      [3, 5_000],
    ] as const) {
      agreesWithMap(new IdTable<number>(), seed, 40_000, ids);
    }
  });

  it('removal keeps every colliding entry reachable (ids with the same home slot, wrapping around)', () => {
    // every id hashes to the last slot: runs wrap from the end of the arrays to the start
    const table = new IdTable<number>(() => 15);
    for (let i = 0; i < 6; i++) table.set(`c${i}`, i);
    expect(table.take('c0')).toBe(0);
    expect(table.delete('c3')).toBe(true);
    expect([1, 2, 4, 5].map((i) => table.get(`c${i}`))).toEqual([1, 2, 4, 5]);
    expect(table.get('c0')).toBeUndefined();
    expect(table.size).toBe(4);
  });

  it('ids chosen to collide move the table onto a Map; it keeps working there', () => {
    const table = new IdTable<number>(() => 7); // an attacker who controls the hash
    for (let i = 0; i < 200; i++) expect(table.add(`x${i}`, i)).toBe(true);
    expect(table.add('x5', 0)).toBe(false);
    expect(table.size).toBe(200);
    expect(table.take('x5')).toBe(5);
    expect(table.get('x6')).toBe(6);
    expect(table.values()).toHaveLength(199);
    table.clear();
    expect([table.size, table.get('x6')]).toEqual([0, undefined]);
    // and a colliding table that degrades in the middle of random work stays right
    agreesWithMap(new IdTable<number>(() => 7), 9, 5_000, 200);
  });

  it('keys named like Object.prototype members are plain entries', () => {
    const table = new IdTable<string>();
    for (const k of ['__proto__', 'constructor', 'toString', '']) table.set(k, `v-${k}`);
    expect(table.get('__proto__')).toBe('v-__proto__');
    expect(table.get('')).toBe('v-');
    expect(table.get('hasOwnProperty')).toBeUndefined();
    expect(table.size).toBe(4);
  });
});
