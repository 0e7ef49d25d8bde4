import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AllowList, TokenSet } from '../src/index.js';
import { redact } from '../src/internal.js';

describe('TokenSet', () => {
  it('shared tokens: any agent, exact value only', () => {
    const set = new TokenSet(['alpha-token', 'beta-token']);
    expect(set.verify('a', 'alpha-token')).toBe(true);
    expect(set.verify('b', 'beta-token')).toBe(true);
    for (const bad of ['', 'alpha', 'alpha-token ', 'ALPHA-TOKEN', 'alpha-tokenx']) {
      expect(set.verify('a', bad)).toBe(false);
    }
  });

  it('per-agent tokens: an agent only with its own, an unknown agent never', () => {
    const set = new TokenSet({ 'waf-1': ['old', 'new'], 'waf-2': 'two' });
    expect(set.verify('waf-1', 'old')).toBe(true);
    expect(set.verify('waf-1', 'new')).toBe(true);
    expect(set.verify('waf-1', 'two')).toBe(false);
    expect(set.verify('waf-2', 'two')).toBe(true);
    expect(set.verify('waf-3', 'two')).toBe(false);
  });

  it('keeps digests, not the tokens', () => {
    const set = new TokenSet({ 'waf-1': ['plain-text-secret'] });
    expect(inspect(set, { depth: 10 })).not.toContain('plain-text-secret');
  });

  it('refuses empty tokens and lists', () => {
    expect(() => new TokenSet([])).toThrow(/empty list/);
    expect(() => new TokenSet([''])).toThrow(/non-empty/);
    expect(() => new TokenSet({ a: [''] })).toThrow(/non-empty/);
    expect(() => new TokenSet({ a: 3 as unknown as string })).toThrow(/string or a list/);
  });
});

describe('AllowList', () => {
  it('exact ids and anchored globs', () => {
    const list = new AllowList(['auth', 'waf-*', 'r?-x', 'a.b']);
    for (const ok of ['auth', 'waf-', 'waf-1', 'waf-eu-1', 'r1-x', 'a.b']) {
      expect(list.allows(ok)).toBe(true);
    }
    for (const no of ['auth2', 'xwaf-1', 'r12-x', 'r-x', 'aXb', 'WAF-1']) {
      expect(list.allows(no)).toBe(false);
    }
  });

  it('empty allows everyone; * allows everyone', () => {
    expect(new AllowList().allowsAll).toBe(true);
    expect(new AllowList(['*']).allows('anything at all')).toBe(true);
  });
});

describe('redact', () => {
  it('removes every occurrence of the secret', () => {
    expect(redact('a s3 b s3', 's3')).toBe('a [redacted] b [redacted]');
    expect(redact('text', null)).toBe('text');
    expect(redact('text', '')).toBe('text');
  });
});
