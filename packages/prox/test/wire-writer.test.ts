/**
 * The msgpack writer's fast paths: ASCII strings written in place (every length class), other
 * strings through the UTF-8 encoder, and the scratch buffer writers share — byte for byte what
 * the reference encoder (@msgpack/msgpack) writes.
 */
import { encode as referenceEncode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeRequestInfo } from '../src/index.js';
import { MsgpackWriter } from '../src/wire/msgpack.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function written(fill: (w: MsgpackWriter) => void): Uint8Array {
  const w = new MsgpackWriter();
  fill(w);
  return w.finish();
}

describe('MsgpackWriter strings', () => {
  it.each([0, 1, 31, 32, 255, 256, 65_535, 65_536, 100_000])(
    'ASCII of %i chars and the same length with one non-ASCII char',
    (n) => {
      const ascii = 'a'.repeat(n);
      expect(hex(written((w) => w.str(ascii)))).toBe(hex(referenceEncode(ascii)));
      if (n > 0) {
        const mixed = `${'b'.repeat(n - 1)}é`; // one more byte than chars: may change the head
        expect(hex(written((w) => w.str(mixed)))).toBe(hex(referenceEncode(mixed)));
      }
    },
  );

  it('any strings, in maps and after other values', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string(), fc.string({ unit: 'grapheme', maxLength: 300 }))),
        (pairs) => {
          const m: Record<string, string> = {};
          for (const [k, v] of pairs) if (k !== '__proto__') m[k] = v;
          expect(hex(written((w) => w.int(300).stringMap(m).str('tail')))).toBe(
            hex(Buffer.concat([referenceEncode(300), referenceEncode(m), referenceEncode('tail')])),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it('two writers at once, and a writer abandoned after a throw, do not disturb each other', () => {
    const a = new MsgpackWriter();
    const b = new MsgpackWriter();
    a.str('first');
    b.str('second');
    a.str('x'.repeat(5000)); // grows whichever buffer it has
    expect(hex(a.finish())).toBe(
      hex(Buffer.concat([referenceEncode('first'), referenceEncode('x'.repeat(5000))])),
    );
    expect(hex(b.finish())).toBe(hex(referenceEncode('second')));
    // an encode that throws half way (a header value that is not a string) gives its buffer back
    expect(() =>
      encodeRequestInfo({ path: '/a', headers: { ok: 'v', bad: 7 as unknown as string } }),
    ).toThrow();
    const again = encodeRequestInfo({ path: '/a', headers: { ok: 'v' } });
    expect(hex(again)).toBe(hex(encodeRequestInfo({ path: '/a', headers: { ok: 'v' } })));
    expect(hex(written((w) => w.str('after')))).toBe(hex(referenceEncode('after')));
  });
});
