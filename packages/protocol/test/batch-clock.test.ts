import { performance } from 'node:perf_hooks';
import { describe, expect, test } from 'vitest';
import { batchNow, beginBatch, endBatch } from '../src/internal/batch-clock.js';

function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // the clock must move between readings
  }
}

describe('batch clock', () => {
  test('outside a batch every call reads the clock', () => {
    const a = batchNow();
    spin(2);
    expect(batchNow()).toBeGreaterThan(a);
  });

  test('inside a batch the first reading is shared; the next batch reads again', () => {
    beginBatch();
    try {
      const first = batchNow();
      spin(2);
      expect(batchNow()).toBe(first);
      beginBatch(); // a nested batch keeps the outer reading
      expect(batchNow()).toBe(first);
      endBatch();
      expect(batchNow()).toBe(first);
    } finally {
      endBatch();
    }
    const after = batchNow();
    spin(2);
    expect(batchNow()).toBeGreaterThan(after); // outside again
    beginBatch();
    try {
      expect(batchNow()).toBeGreaterThan(after); // a new batch takes a new reading
    } finally {
      endBatch();
    }
  });

  test('an unmatched end does not leave the clock frozen', () => {
    endBatch();
    const a = batchNow();
    spin(2);
    expect(batchNow()).toBeGreaterThan(a);
  });
});
