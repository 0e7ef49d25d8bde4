import { Encoder } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { createMessageCodec, msgpackCodec } from '../src/index.js';
import { F64, MsgpackWriter } from '../src/msgpack-writer.js';
import { hex } from './helpers.js';

const reference = new Encoder();

function write(v: unknown): Uint8Array {
  const w = new MsgpackWriter(8);
  w.value(v);
  return w.finish();
}

describe('MsgpackWriter', () => {
  test('is byte-identical with @msgpack/msgpack for plain data (smallest int / str / bin / array / map forms)', () => {
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.integer({ min: -(2 ** 31), max: 2 ** 32 }),
        fc.maxSafeInteger(),
        fc.double({ noNaN: true }),
        fc.string({ unit: 'grapheme', maxLength: 300 }),
        fc.string({ unit: 'grapheme-ascii', minLength: 28, maxLength: 40 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.array(tie('v'), { maxLength: 20 }),
        fc.dictionary(
          fc.string().filter((k) => k !== '__proto__'),
          tie('v'),
          { maxKeys: 20 },
        ),
      ),
    })).v;
    fc.assert(
      fc.property(value, (v) => {
        expect(hex(write(v))).toBe(hex(reference.encode(v)));
      }),
      { numRuns: 300 },
    );
  });

  test.each([
    [0, '00'],
    [127, '7f'],
    [128, 'cc80'],
    [255, 'ccff'],
    [256, 'cd0100'],
    [65536, 'ce00010000'],
    [2 ** 32, 'cf0000000100000000'],
    [-1, 'ff'],
    [-32, 'e0'],
    [-33, 'd0df'],
    [-129, 'd1ff7f'],
    [-32769, 'd2ffff7fff'],
    [-(2 ** 31) - 1, 'd3ffffffff7fffffff'],
    [1.5, 'cb3ff8000000000000'],
    [-0, '00'],
  ])('number %s ⇒ %s', (n, expected) => {
    expect(hex(write(n))).toBe(expected);
  });

  test('short text with a non-ASCII char at any position is written as UTF-8 (odd and even lengths)', () => {
    // 'Ł' is U+0141: its low byte is an ASCII 'A', so a check of the written bytes would miss it
    for (const odd of ['é', 'Ł', '\u{1F600}', '\u0080', '\u00ff']) {
      for (let n = 1; n <= 34; n++) {
        for (let at = 0; at < n; at++) {
          const s = `${'a'.repeat(at)}${odd}${'b'.repeat(n - at - 1)}`;
          expect(hex(write(s)), JSON.stringify(s)).toBe(hex(reference.encode(s)));
        }
      }
    }
    // ASCII of every length around the fixstr limit, one writer for all (messages back to back)
    const w = new MsgpackWriter(8);
    for (let n = 0; n <= 40; n++) {
      const s = 'xy'.repeat(20).slice(0, n);
      w.str(s);
      expect(hex(w.finish())).toBe(hex(reference.encode(s)));
    }
  });

  test('large headers: str16/str32, bin16/bin32, array16, map16', () => {
    for (const len of [31, 32, 255, 256, 65535, 65536]) {
      const s = 'x'.repeat(len);
      expect(hex(write(s))).toBe(hex(reference.encode(s)));
      const b = new Uint8Array(len);
      expect(hex(write(b))).toBe(hex(reference.encode(b)));
    }
    const arr = Array.from({ length: 70000 }, (_, i) => i % 3);
    expect(hex(write(arr))).toBe(hex(reference.encode(arr)));
    const map = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i]));
    expect(hex(write(map))).toBe(hex(reference.encode(map)));
  });

  test('bigint, F64 marker, Map, toJSON, undefined-valued keys', () => {
    expect(hex(write(2n ** 63n))).toBe('cf8000000000000000');
    expect(hex(write(-(2n ** 63n)))).toBe('d38000000000000000');
    expect(hex(write(5n))).toBe('05');
    expect(hex(write(new F64(3)))).toBe('cb4008000000000000');
    expect(hex(write(new Map([['a', 1]])))).toBe('81a16101');
    expect(hex(write({ a: undefined, b: new Date(0) }))).toBe(
      hex(reference.encode({ b: new Date(0).toJSON() })),
    );
    expect(() => write(2n ** 64n)).toThrow(/64 bits/);
    expect(() => write(Symbol('x'))).toThrow(/symbol/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => write(cyclic)).toThrow(/nesting/);
  });

  test('a 1 MiB body grows the buffer and round-trips as bin', () => {
    const codec = createMessageCodec('msgpack', { binaryBodies: true });
    const data = Uint8Array.from({ length: 1 << 20 }, (_, i) => i & 0xff);
    const event = {
      correlation_id: 'big',
      data,
      is_last: true,
      total_size: null,
      chunk_index: 0,
      bytes_received: data.length,
    };
    const bytes = codec.encodeEvent('request_body_chunk', event, 'big');
    expect((msgpackCodec.decode(bytes) as { data: Uint8Array }).data.length).toBe(1 << 20);
    const decoded = codec.decodeEvent('request_body_chunk', bytes);
    expect(Buffer.compare(decoded.data, data)).toBe(0);
    expect({ ...decoded, data: null }).toEqual({ ...event, data: null });
    // the shared writer is reset between messages
    const small = codec.encodeEvent(
      'request_body_chunk',
      { ...event, data: new Uint8Array([1]) },
      'big',
    );
    expect(small.length).toBeLessThan(100);
  });
});
