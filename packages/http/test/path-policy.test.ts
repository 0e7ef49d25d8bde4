/**
 * The fast path of the path normaliser (a path already in canonical form is returned as it
 * came) against the full character-by-character rewrite: same answer, every policy, lenient
 * or not. The normaliser's own cases are in apps/gateway/test/path-policy.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ESCAPED_SLASHES,
  lenientPath,
  normalizePath,
  type PathPolicy,
  rewritePath,
} from '../src/path-policy.js';

/** pieces that make paths interesting: dots, slashes, escapes, params, odd characters */
const PIECES = [
  '/',
  '/',
  '/',
  'a',
  'Zz9',
  '.',
  '..',
  '...',
  ';',
  ';x',
  '.;',
  '..;',
  '%',
  '%2F',
  '%2f',
  '%5C',
  '%41',
  '%7e',
  '%00',
  '%zz',
  '\\',
  '?',
  '?q=/../',
  '#',
  ' ',
  '~',
  '-_',
  '@:',
  '"',
  '<',
  '|',
  'é',
  '\t',
  '\u007f',
  '//',
  '%2e',
  '%2E%2E',
  '+,=',
  "!$&'()*",
];

const target = fc
  .tuple(fc.constantFrom('/', '', 'a'), fc.array(fc.constantFrom(...PIECES), { maxLength: 12 }))
  .map(([start, pieces]) => start + pieces.join(''));

const policy: fc.Arbitrary<PathPolicy> = fc.record({
  normalize: fc.boolean(),
  mergeSlashes: fc.boolean(),
  escapedSlashes: fc.constantFrom(...ESCAPED_SLASHES),
});

const LENIENT: PathPolicy = { normalize: true, mergeSlashes: true, escapedSlashes: 'decode' };

describe('path normaliser fast path', () => {
  it('answers exactly as the full rewrite, for every policy', () => {
    fc.assert(
      fc.property(target, policy, (t, p) => {
        expect(normalizePath(t, p)).toEqual(rewritePath(t, p, false));
        const full = rewritePath(t, LENIENT, true);
        expect(lenientPath(t)).toBe(full.ok ? full.path : undefined);
      }),
      { numRuns: 20_000 },
    );
  });

  it('takes canonical paths as they are, and still rewrites the rest', () => {
    const p: PathPolicy = { normalize: true, mergeSlashes: true, escapedSlashes: 'reject' };
    for (const t of ['/', '/api/items?page=1', '/a/b/', '/x;y=1/z', "/~u/!$&'()*+,;=:@"]) {
      expect(normalizePath(t, p)).toEqual({ ok: true, path: t });
    }
    expect(normalizePath('/a/./b/../c', p)).toEqual({ ok: true, path: '/a/c' });
    expect(normalizePath('/a//b', p)).toEqual({ ok: true, path: '/a/b' });
    expect(normalizePath('/%61dmin', p)).toEqual({ ok: true, path: '/admin' });
    expect(normalizePath('/a/..;x/b', p).ok).toBe(false);
    expect(normalizePath('/a/.;/b', p).ok).toBe(false);
    expect(normalizePath('/a#f', p).ok).toBe(false);
    expect(normalizePath('/../x', p).ok).toBe(false);
  });
});
