/**
 * The host's header mapping against plain reference implementations of the same rules (Go's
 * canonical header keys by regex, first values, the first Host / Content-Length /
 * Transfer-Encoding by a case-insensitive scan): the fast paths must give the same answers.
 */
import type { Headers, RequestHeadersEvent } from '@picket/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalHeaderKey,
  contentLength,
  firstValues,
  requestInfo,
} from '../src/host/mapping.js';

function referenceKey(name: string): string {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return name;
  return name
    .toLowerCase()
    .replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

function referenceFirstValues(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, values] of Object.entries(headers)) {
    const v = values[0];
    if (v === undefined) continue;
    const key = referenceKey(name);
    if (key === 'Host' || Object.hasOwn(out, key)) continue;
    Object.defineProperty(out, key, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function referenceHeader(headers: Headers, name: string): string | undefined {
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v[0];
  return undefined;
}

const nameChars = fc.constantFrom(...'aAzZ09-_.!~xXkK é\u0130\u212a:'.split(''));
const headerName = fc.oneof(
  fc.constantFrom(
    'host',
    'Host',
    'HOST',
    'content-length',
    'Content-Length',
    'CONTENT-LENGTH',
    'transfer-encoding',
    'Transfer-Encoding',
    'x-forwarded-for',
    '__proto__',
    'www-authenticate',
    '-x',
    'a--b',
    '1abc',
    'Host ',
    'transfer-encod\u0130ng',
  ),
  fc.array(nameChars, { maxLength: 20 }).map((c) => c.join('')),
);
const headers = fc
  .array(
    fc.tuple(
      headerName,
      fc.array(fc.constantFrom('1', '12', ' 7 ', 'x', 'a:1', ''), { maxLength: 2 }),
    ),
    {
      maxLength: 12,
    },
  )
  .map((entries) => {
    const h: Headers = {};
    for (const [k, v] of entries)
      Object.defineProperty(h, k, {
        value: v,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return h;
  });

function event(h: Headers): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: 'c',
      request_id: 'r',
      client_ip: '192.0.2.7',
      client_port: 1,
      protocol: 'HTTP/1.1',
      timestamp: '2026-01-01T00:00:00.000+00:00',
    },
    method: 'GET',
    uri: '/p?q=1',
    headers: h,
  };
}

describe('header mapping: the same answers as the reference rules', () => {
  it('canonicalHeaderKey, including names that are not tokens', () => {
    fc.assert(
      fc.property(headerName, (name) => {
        expect(canonicalHeaderKey(name)).toBe(referenceKey(name));
        expect(canonicalHeaderKey(name)).toBe(referenceKey(name)); // cached now
      }),
      { numRuns: 2000 },
    );
    expect(canonicalHeaderKey('content-type')).toBe('Content-Type');
    expect(canonicalHeaderKey('X-REQUEST-ID')).toBe('X-Request-Id');
    expect(canonicalHeaderKey('bad name')).toBe('bad name');
    expect(canonicalHeaderKey('')).toBe('');
  });

  it('canonicalHeaderKey stays right after more distinct names than its cache holds', () => {
    for (let i = 0; i < 3000; i++) {
      const name = `x-name-${i}-VALUE`;
      expect(canonicalHeaderKey(name)).toBe(`X-Name-${i}-Value`);
    }
    expect(canonicalHeaderKey('accept-encoding')).toBe('Accept-Encoding');
  });

  it('firstValues, Host, Content-Length and Transfer-Encoding', () => {
    fc.assert(
      fc.property(headers, (h) => {
        const got = firstValues(h);
        const want = referenceFirstValues(h);
        expect(Object.entries(got)).toEqual(Object.entries(want));
        expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
        const info = requestInfo(event(h), 'gw:0');
        expect(info.host).toBe(referenceHeader(h, 'host') ?? '');
        const cl = referenceHeader(h, 'content-length');
        const wantCl =
          cl !== undefined && /^\d{1,15}$/.test(cl.trim())
            ? Number(cl.trim())
            : referenceHeader(h, 'transfer-encoding') !== undefined
              ? -1
              : 0;
        expect(info.contentLength).toBe(wantCl);
        expect(contentLength(h)).toBe(wantCl);
      }),
      { numRuns: 2000 },
    );
  });
});
