/**
 * The per-request header and id helpers the exchange is built from (http-util.ts), beyond
 * what the gateway's units test covers: the pooled traceparent entropy.
 */
import { describe, expect, it } from 'vitest';
import { newTraceparent, parseTraceparent } from '../src/http-util.js';

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
