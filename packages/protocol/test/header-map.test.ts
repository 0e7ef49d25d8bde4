/**
 * `headerMap()`: an object indistinguishable from `{}`, that V8 keeps in fast mode for a
 * request's worth of headers stored by computed key, whatever the first maps looked like.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { headerMap, putOwn } from '../src/index.js';

describe('headerMap', () => {
  it('is a plain empty object', () => {
    const h = headerMap();
    expect(Object.getPrototypeOf(h)).toBe(Object.prototype);
    expect(h.constructor).toBe(Object);
    expect(Object.prototype.toString.call(h)).toBe('[object Object]');
    expect(h).toStrictEqual({});
    expect(Object.keys(h)).toEqual([]);
    expect(headerMap()).not.toBe(h);
  });

  it('keeps entries in insertion order, prototype names as own entries', () => {
    const h = headerMap();
    h.host = ['a'];
    const named: string = 'constructor'; // typed as string: the entry, not Object's member
    h[named] = ['b'];
    putOwn(h, '__proto__', ['c']);
    h['x-1'] = ['d'];
    expect(Object.keys(h)).toEqual(['host', 'constructor', '__proto__', 'x-1']);
    // toEqual: a "constructor" entry defeats toStrictEqual's type check
    expect(JSON.parse(JSON.stringify(h))).toEqual({
      host: ['a'],
      constructor: ['b'],
      ['__proto__']: ['c'],
      'x-1': ['d'],
    });
    expect(Object.getPrototypeOf(h)).toBe(Object.prototype);
  });

  it('stays a fast-mode object for two dozen headers, even after small first maps (V8)', () => {
    // %HasFastProperties needs --allow-natives-syntax: asked in a child process
    const src = fileURLToPath(new URL('../src/header-map.ts', import.meta.url));
    const script = `
      const { headerMap } = await import(${JSON.stringify(src)});
      const fill = (h, n) => { for (let i = 0; i < n; i++) h['x-header-' + i] = ['v']; return h; };
      for (let i = 0; i < 10; i++) fill(headerMap(), 2); // health checks first
      const fast = (n) => %HasFastProperties(fill(headerMap(), n));
      console.log(JSON.stringify({ map20: fast(20), map24: fast(24), literal20: %HasFastProperties(fill({}, 20)) }));
    `;
    const out = execFileSync(
      process.execPath,
      ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    // a literal {} turns into a dictionary at 20 (what headerMap avoids)
    expect(JSON.parse(out)).toEqual({ map20: true, map24: true, literal20: false });
  });
});
