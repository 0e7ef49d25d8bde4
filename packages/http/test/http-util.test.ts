/**
 * The per-request header and id helpers the exchange is built from (http-util.ts), beyond
 * what the gateway's units test covers: the pooled traceparent entropy, and the next hop's
 * AbortNotice.
 */
import { describe, expect, it } from 'vitest';
import { AbortNotice } from '../src/abort-notice.js';
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
