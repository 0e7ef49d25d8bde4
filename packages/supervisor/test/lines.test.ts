/** The stdout/stderr line splitter and its limit. */
import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../src/lines.js';

function split(limit: number, chunks: (string | Buffer)[], end = true) {
  const lines: string[] = [];
  const overflows: number[] = [];
  const s = new LineSplitter(
    limit,
    (l) => lines.push(l),
    (n) => overflows.push(n),
  );
  for (const c of chunks) s.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  if (end) s.end();
  return { lines, overflows };
}

describe('LineSplitter', () => {
  it('splits across chunks, drops \\n and \\r\\n, keeps empty lines and a last unterminated line', () => {
    expect(split(100, ['a', 'b\nc', '\r\n\n', 'd']).lines).toEqual(['ab', 'c', '', 'd']);
    expect(split(100, ['x\n'], false).lines).toEqual(['x']);
    expect(split(100, ['x'], false).lines).toEqual([]);
  });

  it('decodes UTF-8 split across chunks', () => {
    const bytes = Buffer.from('é€\n');
    expect(
      split(100, [bytes.subarray(0, 1), bytes.subarray(1, 3), bytes.subarray(3)]).lines,
    ).toEqual(['é€']);
  });

  it('a line of exactly the limit passes; one byte more overflows once, and the next line is read', () => {
    expect(split(4, ['abcd\n'])).toEqual({ lines: ['abcd'], overflows: [] });
    const r = split(4, ['abc', 'de', 'fgh', 'ij\nok\n']);
    expect(r.lines).toEqual(['ok']);
    expect(r.overflows).toEqual([5]);
    expect(split(4, ['abcdefgh'], false).overflows).toEqual([8]);
  });

  it('gives the same lines for every way of cutting the bytes into three chunks', () => {
    const text = 'ab\r\n\né€x\n\r\nlast';
    const bytes = Buffer.from(text);
    const whole = split(1 << 20, [bytes]).lines;
    expect(whole).toEqual(['ab', '', 'é€x', '', 'last']);
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        const chunks = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)];
        expect(split(1 << 20, chunks).lines, `cut at ${i}, ${j}`).toEqual(whole);
      }
    }
  });
});
