/**
 * The per-request header and id helpers the exchange is built from (http-util.ts), beyond
 * what the gateway's units test covers: the pooled traceparent entropy, the cached current
 * timestamp, and the next hop's AbortNotice.
 */
import { describe, expect, it } from 'vitest';
import { AbortNotice } from '../src/abort-notice.js';
import { newTraceparent, parseTraceparent, rfc3339 } from '../src/http-util.js';

describe('newTraceparent', () => {
  it('gives valid, never repeated ids across many refills of its entropy buffer', () => {
    const ids = new Set<string>();
    // 24 bytes each from a 4 KiB buffer: 1000 calls cross six refills
    for (let i = 0; i < 1000; i++) {
      const tp = newTraceparent();
      expect(parseTraceparent(tp)).toBe(tp);
      const [, trace, span] = tp.split('-');
      ids.add(trace as string);
      ids.add(span as string);
    }
    expect(ids.size).toBe(2000);
  });
});

describe('AbortNotice', () => {
  it('fires once; its signal aborts with it, also when first read after it fired', () => {
    const n = new AbortNotice();
    let fired = 0;
    n.once('abort', () => fired++);
    const early = n.signal;
    expect(n.aborted).toBe(false);
    expect(early.aborted).toBe(false);
    n.abort();
    n.abort();
    expect(fired).toBe(1);
    expect(n.aborted).toBe(true);
    expect(early.aborted).toBe(true);
    expect(n.signal).toBe(early);
    const late = new AbortNotice();
    late.abort();
    expect(late.signal.aborted).toBe(true);
  });
});

describe('rfc3339', () => {
  it('formats a given date, and now (its second cached) between the clock before and after', async () => {
    expect(rfc3339(new Date(Date.UTC(2026, 11, 5, 12, 0, 0, 7)))).toBe(
      '2026-12-05T12:00:00.007+00:00',
    );
    for (let i = 0; i < 200; i++) {
      const before = Date.now();
      const now = rfc3339();
      const after = Date.now();
      expect(now).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$/);
      const t = Date.parse(now);
      expect(t).toBeGreaterThanOrEqual(before);
      expect(t).toBeLessThanOrEqual(after);
    }
    // a later millisecond and a later second get their own text
    const first = Date.parse(rfc3339());
    while (Date.now() <= first + 1) {
      // spin until the clock has moved on
    }
    expect(Date.parse(rfc3339())).toBeGreaterThan(first + 1);
    const nextSecond = (Math.floor(Date.now() / 1000) + 1) * 1000;
    while (Date.now() < nextSecond) {
      await new Promise((r) => setTimeout(r, nextSecond - Date.now()));
    }
    const later = rfc3339();
    expect(Date.parse(later)).toBeGreaterThanOrEqual(nextSecond);
    expect(later).toBe(`${new Date(Date.parse(later)).toISOString().slice(0, -1)}+00:00`);
  });
});
