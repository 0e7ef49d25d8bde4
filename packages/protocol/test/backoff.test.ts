import { describe, expect, it } from 'vitest';
import { backoffDelay, resolveBackoff } from '../src/internal/index.js';

const o = { initialDelayMs: 100, maxDelayMs: 1_000, multiplier: 2, jitter: 0.5 };

describe('backoffDelay (the one backoff of picket)', () => {
  it('grows exponentially from initialDelayMs and is capped at maxDelayMs, forever', () => {
    const none = { ...o, jitter: 0 };
    expect([0, 1, 2, 3, 4, 50, 5_000].map((a) => backoffDelay(a, none))).toEqual([
      100, 200, 400, 800, 1_000, 1_000, 1_000,
    ]);
    // a negative attempt counts as the first
    expect(backoffDelay(-3, none)).toBe(100);
  });

  it('jitter is the random fraction taken off the delay: [base × (1 − jitter), base]', () => {
    expect(backoffDelay(2, o, () => 0)).toBe(200);
    expect(backoffDelay(2, o, () => 0.5)).toBe(300);
    expect(backoffDelay(2, o, () => 0.999_999)).toBe(400);
    expect(backoffDelay(2, { ...o, jitter: 1 }, () => 0.25)).toBe(100);
    expect(backoffDelay(2, { ...o, jitter: 0.2 }, () => 0.5)).toBe(360);
  });

  it('never exceeds maxDelayMs nor the first delay initialDelayMs, whatever the randomness', () => {
    for (const jitter of [0, 0.2, 0.5, 1]) {
      for (const r of [0, 0.3, 0.999]) {
        expect(backoffDelay(0, { ...o, jitter }, () => r)).toBeLessThanOrEqual(100);
        expect(backoffDelay(40, { ...o, jitter }, () => r)).toBeLessThanOrEqual(1_000);
        expect(backoffDelay(40, { ...o, jitter }, () => r)).toBeGreaterThanOrEqual(
          1_000 * (1 - jitter) - 1,
        );
      }
    }
  });
});

describe('resolveBackoff', () => {
  const defaults = { initialDelayMs: 100, maxDelayMs: 30_000, multiplier: 2, jitter: 0.2 };

  it('fills the defaults; an explicit undefined keeps the default', () => {
    expect(resolveBackoff(undefined, defaults, 'x')).toEqual(defaults);
    expect(resolveBackoff({ jitter: undefined, maxDelayMs: 500 }, defaults, 'x')).toEqual({
      ...defaults,
      maxDelayMs: 500,
    });
  });

  it.each([
    [{ jitter: 1.5 }, 'r.jitter: expected a number from 0 to 1, got 1.5'],
    [{ jitter: -0.1 }, 'r.jitter: expected a number from 0 to 1, got -0.1'],
    [{ multiplier: 0.5 }, 'r.multiplier: expected a finite number ≥ 1, got 0.5'],
    [{ initialDelayMs: -1 }, 'r.initialDelayMs: expected a finite number ≥ 0, got -1'],
    [{ initialDelayMs: Number.NaN }, 'r.initialDelayMs: expected a finite number ≥ 0, got NaN'],
    [{ maxDelayMs: 50 }, 'r.maxDelayMs: expected a finite number ≥ initialDelayMs (100), got 50'],
    [
      { maxDelayMs: Infinity },
      'r.maxDelayMs: expected a finite number ≥ initialDelayMs (100), got Infinity',
    ],
    [{ jitter: '0.5' as unknown as number }, 'r.jitter: expected a number from 0 to 1, got 0.5'],
  ])('refuses %o naming the field', (bad, message) => {
    expect(() => resolveBackoff(bad, defaults, 'r')).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message }),
    );
  });
});
