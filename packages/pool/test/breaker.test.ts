import { describe, expect, it } from 'vitest';
import type { CircuitState } from '../src/index.js';
import { CircuitBreaker } from '../src/internal.js';

function clocked(opts = {}) {
  let now = 1_000;
  const changes: [CircuitState, CircuitState][] = [];
  const b = new CircuitBreaker(
    {
      failureThreshold: 3,
      successThreshold: 2,
      openTimeoutMs: 1_000,
      halfOpenMaxRequests: 1,
      ...opts,
    },
    (from, to) => changes.push([from, to]),
    () => now,
  );
  return { b, changes, advance: (ms: number) => (now += ms) };
}

describe('CircuitBreaker', () => {
  it('has the upstream proxy defaults', () => {
    const b = new CircuitBreaker();
    expect(b.options).toEqual({
      failureThreshold: 5,
      successThreshold: 2,
      openTimeoutMs: 30_000,
      halfOpenMaxRequests: 1,
    });
    expect(b.state).toBe('closed');
  });

  it('opens after N consecutive failures; a success resets the count', () => {
    const { b, changes } = clocked();
    b.tryAcquire()!.failure();
    b.tryAcquire()!.failure();
    b.tryAcquire()!.success();
    b.tryAcquire()!.failure();
    b.tryAcquire()!.failure();
    expect(b.state).toBe('closed');
    b.tryAcquire()!.failure();
    expect(b.state).toBe('open');
    expect(changes).toEqual([['closed', 'open']]);
    expect(b.tryAcquire()).toBeNull();
  });

  it('released permits count neither way', () => {
    const { b } = clocked();
    for (let i = 0; i < 10; i++) b.tryAcquire()!.release();
    expect(b.state).toBe('closed');
  });

  it('goes half-open after the timeout, limits probes, closes after M successes', () => {
    const { b, changes, advance } = clocked();
    for (let i = 0; i < 3; i++) b.tryAcquire()!.failure();
    advance(999);
    expect(b.state).toBe('open');
    expect(b.retryInMs).toBe(1);
    advance(1);
    expect(b.state).toBe('half_open');
    const p1 = b.tryAcquire()!;
    expect(b.tryAcquire()).toBeNull(); // one probe at a time
    p1.success();
    expect(b.state).toBe('half_open');
    b.tryAcquire()!.success();
    expect(b.state).toBe('closed');
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half_open'],
      ['half_open', 'closed'],
    ]);
  });

  it('re-opens on a half-open failure and frees the probe slot on release', () => {
    const { b, advance } = clocked({ halfOpenMaxRequests: 2 });
    for (let i = 0; i < 3; i++) b.tryAcquire()!.failure();
    advance(1_000);
    const a = b.tryAcquire()!;
    const c = b.tryAcquire()!;
    expect(b.tryAcquire()).toBeNull();
    a.release();
    const d = b.tryAcquire()!;
    expect(d).not.toBeNull();
    c.failure();
    expect(b.state).toBe('open');
    d.success(); // stale: from the previous half-open period
    expect(b.state).toBe('open');
  });

  it('ignores outcomes of permits from an earlier state and double outcomes', () => {
    const { b, advance } = clocked();
    const old = b.tryAcquire()!;
    for (let i = 0; i < 3; i++) b.tryAcquire()!.failure();
    advance(1_000);
    expect(b.state).toBe('half_open');
    old.failure(); // issued while closed: must not re-open
    expect(b.state).toBe('half_open');
    const p = b.tryAcquire()!;
    p.success();
    p.success();
    expect(b.state).toBe('half_open');
  });

  it('tickets (the pool call path): -1 while open, probe slots freed on leave, stale tickets ignored', () => {
    const { b, advance } = clocked();
    const stale = b.enter();
    expect(stale).toBeGreaterThanOrEqual(0);
    for (let i = 0; i < 3; i++) b.leave(b.enter(), 'failure');
    expect(b.state).toBe('open');
    expect(b.enter()).toBe(-1);
    advance(1_000);
    const probe = b.enter();
    expect(probe).toBeGreaterThanOrEqual(0);
    expect(b.enter()).toBe(-1); // one probe at a time
    b.leave(stale, 'failure'); // admitted while closed: counts for nothing
    expect(b.state).toBe('half_open');
    b.leave(probe, 'release');
    const next = b.enter();
    expect(next).toBeGreaterThanOrEqual(0); // the released probe freed its slot
    b.leave(next, 'success');
    b.leave(b.enter(), 'success');
    expect(b.state).toBe('closed');
  });

  it('rejects nonsense options', () => {
    expect(() => new CircuitBreaker({ failureThreshold: 0 })).toThrow(/failureThreshold/);
    expect(() => new CircuitBreaker({ openTimeoutMs: Number.NaN })).toThrow(/openTimeoutMs/);
  });
});
