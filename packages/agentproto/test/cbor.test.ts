/** The canonical CBOR codec and the incremental sequence decoder (spec §2.2). */
import { AgentProtocolError } from '@picket/protocol';
import { decode as cborxDecode } from 'cbor-x';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CborSequenceDecoder,
  type CborValue,
  DEFAULT_MAX_ITEM_SIZE,
  decodeCbor,
  decodeCborSequence,
  encodeCbor,
  encodeCborParts,
  encodeCborSequence,
} from '../src/cbor.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

function errorOf(fn: () => unknown): AgentProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentProtocolError);
    return err as AgentProtocolError;
  }
  throw new Error('expected an error');
}

describe('encodeCbor: canonical form', () => {
  it.each([
    [0, '00'],
    [23, '17'],
    [24, '1818'],
    [255, '18ff'],
    [256, '190100'],
    [65535, '19ffff'],
    [65536, '1a00010000'],
    [0xffffffff, '1affffffff'],
    [2 ** 32, '1b0000000100000000'],
    [Number.MAX_SAFE_INTEGER, '1b001fffffffffffff'],
    [2n ** 53n, '1b0020000000000000'],
    [2n ** 64n - 1n, '1bffffffffffffffff'],
    [5n, '05'],
    [-1, '20'],
    [-24, '37'],
    [-25, '3818'],
    [-256, '38ff'],
    [-257, '390100'],
    [-(2 ** 32), '3affffffff'],
    [-(2n ** 64n), '3bffffffffffffffff'],
  ])('integer %s → shortest head %s', (value, want) => {
    expect(hex(encodeCbor(value))).toBe(want);
  });

  it('byte strings for Uint8Array and Buffer alike (no typed-array tag), text for strings', () => {
    expect(hex(encodeCbor(new Uint8Array([0x68, 0x69])))).toBe('426869');
    expect(hex(encodeCbor(Buffer.from('hi')))).toBe('426869');
    expect(hex(encodeCbor('hi'))).toBe('626869');
    expect(hex(encodeCbor('é'))).toBe('62c3a9');
  });

  it('sorts map keys length-first, then bytewise, whatever the insertion order', () => {
    expect(hex(encodeCbor({ ccc: 3, bb: 2, a: 1 }))).toBe(
      'a36161016262620263636363 03'.replace(/ /g, ''),
    );
    expect(hex(encodeCbor({ sig: 1, t: 4 }))).toBe('a2617404637369670 1'.replace(/ /g, ''));
    expect(
      hex(
        encodeCbor(
          new Map<CborValue, CborValue>([
            ['b', 1],
            ['a', 2],
          ]),
        ),
      ),
    ).toBe('a2616102616201');
    // RFC 7049 length-first, as fxamacker's SortCanonical: "a" (6161) before 256 (190100), although
    // bytewise order (RFC 8949) would put 256 first. Text keys alone never tell the two apart.
    expect(
      hex(
        encodeCbor(
          new Map<CborValue, CborValue>([
            [256, 0],
            ['a', 0],
          ]),
        ),
      ),
    ).toBe('a2616100190100 00'.replace(/ /g, ''));
  });

  it('definite lengths, null and undefined, booleans, nested lists', () => {
    expect(hex(encodeCbor([1, [2, 3], null, true, false]))).toBe('8501820203f6f5f4');
    expect(hex(encodeCbor(undefined))).toBe('f7');
    expect(hex(encodeCbor({ a: undefined, b: null }))).toBe('a16162f6');
    expect(hex(encodeCbor([]))).toBe('80');
    expect(hex(encodeCbor({}))).toBe('a0');
  });

  it('refuses what the wire cannot carry', () => {
    expect(() => encodeCbor(1.5)).toThrow(RangeError);
    expect(() => encodeCbor(2 ** 60)).toThrow(/bigint/);
    expect(() => encodeCbor(2n ** 64n)).toThrow(RangeError);
    expect(() => encodeCbor(new Uint16Array(1) as never)).toThrow(RangeError);
    expect(() => encodeCbor((() => 1) as never)).toThrow(RangeError);
  });

  it('agrees with an independent decoder (cbor-x) on random values', () => {
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.integer(),
        fc.string(),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('v'), { maxLength: 4 }),
        fc
          .dictionary(fc.string({ maxLength: 6 }), tie('v'), { maxKeys: 4 })
          .filter((o) => !Object.keys(o).includes('__proto__')),
      ),
    })).v;
    fc.assert(
      fc.property(value, (v) => {
        expect(cborxDecode(encodeCbor(v as never))).toEqual(v);
      }),
    );
  });
});

describe('decodeCbor', () => {
  it('integers: number while safe, bigint beyond 2^53 (both signs)', () => {
    expect(decodeCbor(bytes('1b001fffffffffffff'))).toBe(Number.MAX_SAFE_INTEGER);
    expect(decodeCbor(bytes('1b0020000000000000'))).toBe(2n ** 53n);
    expect(decodeCbor(bytes('1b18b7621060544d15'))).toBe(1781000000123456789n);
    expect(decodeCbor(bytes('1b0000000000000001'))).toBe(1);
    expect(decodeCbor(bytes('3b001ffffffffffffe'))).toBe(-Number.MAX_SAFE_INTEGER);
    expect(decodeCbor(bytes('3b001fffffffffffff'))).toBe(-(2n ** 53n));
    expect(decodeCbor(bytes('3bffffffffffffffff'))).toBe(-(2n ** 64n));
    expect(decodeCbor(bytes('20'))).toBe(-1);
  });

  it('byte strings as Buffers, text as strings, maps as Maps', () => {
    const v = decodeCbor(bytes('a2616442686961730 1'.replace(/ /g, ''))) as Map<string, unknown>;
    expect(v).toBeInstanceOf(Map);
    expect(Buffer.isBuffer(v.get('d'))).toBe(true);
    expect(Buffer.from(v.get('d') as Uint8Array).toString()).toBe('hi');
    expect(v.get('s')).toBe(1);
  });

  it('accepts indefinite lengths (arrays, maps, byte and text strings)', () => {
    expect(decodeCbor(bytes('9f0102ff'))).toEqual([1, 2]);
    expect(decodeCbor(bytes('bf616101ff'))).toEqual(new Map([['a', 1]]));
    expect(Buffer.from(decodeCbor(bytes('5f41684169ff')) as Uint8Array).toString('hex')).toBe(
      '6869',
    );
    expect(decodeCbor(bytes('7f61686169ff'))).toBe('hi');
    expect(decodeCbor(bytes('5fff'))).toEqual(Buffer.alloc(0));
  });

  it('floats, tags and simple values decode (frames never use them)', () => {
    expect(decodeCbor(bytes('f93c00'))).toBe(1);
    expect(decodeCbor(bytes('fa3fc00000'))).toBe(1.5);
    expect(decodeCbor(bytes('fb3ff8000000000000'))).toBe(1.5);
    const tag = decodeCbor(bytes('c11a5f5e1000')) as { tag: number; value: number };
    expect([tag.tag, tag.value]).toEqual([1, 1600000000]);
  });

  it.each([
    ['1c', /reserved additional info 28/],
    ['1f', /indefinite length is not allowed for major type 0/],
    ['ff', /unexpected break/],
    ['820102ff', /trailing/],
    ['8201', /truncated/],
    ['62c328', /not valid UTF-8/],
    ['5f6161ff', /same type/],
    ['bf6161ff', /key without a value/],
    ['f810', /simple value 16 must be 32 or more/],
    ['', /empty/],
  ])('%s → a clear error (%s)', (h, message) => {
    const err = errorOf(() => decodeCbor(bytes(h)));
    expect(err.code).toBe('INVALID_MESSAGE');
    expect(err.message).toMatch(message);
  });

  it('limits nesting (default 32 levels, like fxamacker)', () => {
    const deep = (n: number) => Buffer.concat([Buffer.alloc(n, 0x81), Buffer.from([0])]);
    expect(() => decodeCbor(deep(32))).not.toThrow();
    expect(errorOf(() => decodeCbor(deep(33))).message).toMatch(/nested deeper than 32/);
    expect(errorOf(() => decodeCbor(deep(5), { maxDepth: 4 })).message).toMatch(/deeper than 4/);
  });
});

describe('CborSequenceDecoder', () => {
  it('splits a sequence into items however it is chunked (the spec vector)', () => {
    const seq = bytes('a3616441616173016174 02 a1617405'.replace(/ /g, ''));
    for (let cut = 0; cut <= seq.length; cut++) {
      const d = new CborSequenceDecoder();
      const items = [...d.push(seq.subarray(0, cut)), ...d.push(seq.subarray(cut))];
      d.end();
      expect(items).toHaveLength(2);
      expect((items[1] as Map<string, number>).get('t')).toBe(5);
    }
  });

  it('refuses a declared length beyond the cap before buffering anything', () => {
    const d = new CborSequenceDecoder({ maxItemSize: 1024 });
    const err = errorOf(() => d.push(bytes('5a40000000'))); // a 1 GiB byte string header
    expect(err.code).toBe('MESSAGE_TOO_LARGE');
    expect(err.message).toMatch(/declared string length of 1073741824 bytes.*limit of 1024/);
    expect(d.bufferedBytes).toBe(0);
    const arrays = new CborSequenceDecoder({ maxItemSize: 1024 });
    expect(errorOf(() => arrays.push(bytes('9b00000001000000 00'.replace(/ /g, '')))).code).toBe(
      'MESSAGE_TOO_LARGE',
    );
    const huge = new CborSequenceDecoder({ maxItemSize: 1024 });
    expect(errorOf(() => huge.push(bytes('5bffffffffffffffff'))).code).toBe('MESSAGE_TOO_LARGE');
  });

  it('counts the bytes actually received: an endless indefinite array fails at the cap', () => {
    const d = new CborSequenceDecoder({ maxItemSize: 1000 });
    d.push(bytes('9f'));
    let err: AgentProtocolError | undefined;
    for (let i = 0; i < 2000 && !err; i++) {
      try {
        d.push(Buffer.alloc(1, 0));
        expect(d.bufferedBytes).toBeLessThanOrEqual(1000);
      } catch (e) {
        err = e as AgentProtocolError;
      }
    }
    expect(err?.code).toBe('MESSAGE_TOO_LARGE');
    // the decoder stays failed
    expect(() => d.push(bytes('00'))).toThrow(err?.message);
  });

  it('a truncated tail is reported by end() with what was missing', () => {
    const d = new CborSequenceDecoder();
    expect(d.push(bytes('a1617405 4a0102'.replace(/ /g, '')))).toHaveLength(1);
    expect(errorOf(() => d.end()).message).toMatch(
      /stream ended in the middle of an item.*8 string bytes missing/,
    );
    const h = new CborSequenceDecoder();
    h.push(bytes('1a0001'));
    expect(errorOf(() => h.end()).message).toMatch(/inside a head/);
    const clean = new CborSequenceDecoder();
    clean.push(bytes('00'));
    expect(() => clean.end()).not.toThrow();
  });

  it('good items before a bad one are returned; the fault comes with the next call', () => {
    const d = new CborSequenceDecoder();
    expect(d.push(bytes('01 02 1c 03'.replace(/ /g, '')))).toEqual([1, 2]);
    expect(d.failure?.message).toMatch(/reserved additional info 28/);
    expect(() => d.push(bytes('00'))).toThrow(/reserved additional info 28/);
    expect(() => d.end()).toThrow(/reserved/);
  });

  it('rejects invalid options', () => {
    expect(() => new CborSequenceDecoder({ maxItemSize: 0 })).toThrow(RangeError);
    expect(() => new CborSequenceDecoder({ maxDepth: 1.5 })).toThrow(RangeError);
    expect(new CborSequenceDecoder().maxItemSize).toBe(DEFAULT_MAX_ITEM_SIZE);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const cborValue: fc.Arbitrary<CborValue> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.integer(),
    fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n }),
    fc.string(),
    fc.uint8Array({ maxLength: 40 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 5 }),
    fc
      .uniqueArray(fc.tuple(fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), tie('v')), {
        maxLength: 5,
        selector: ([k]) => k,
      })
      .map((entries) => new Map(entries as Array<[CborValue, CborValue]>)),
  ),
})).v as fc.Arbitrary<CborValue>;

/** What decoding gives back: bigints in the safe range become numbers, bytes become Buffers. */
function normalize(v: CborValue): unknown {
  if (typeof v === 'bigint')
    return Number.isSafeInteger(Number(v)) && BigInt(Number(v)) === v ? Number(v) : v;
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (Array.isArray(v)) return v.map(normalize);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [normalize(k), normalize(x)]));
  return v;
}

/** Split points: random chunk boundaries of a byte array. */
function chunked(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(data.subarray(prev, p));
    prev = p;
  }
  out.push(data.subarray(prev));
  return out;
}

describe('properties', () => {
  it('decode(encode(v)) = v, and re-encoding is byte-identical', () => {
    fc.assert(
      fc.property(cborValue, (v) => {
        const enc = encodeCbor(v as never);
        const dec = decodeCbor(enc);
        expect(dec).toEqual(normalize(v));
        expect(hex(encodeCbor(dec as never))).toBe(hex(enc));
      }),
    );
  });

  it('any chunking of a sequence decodes to the same items', () => {
    fc.assert(
      fc.property(
        fc.array(cborValue, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (values, cuts) => {
          const seq = encodeCborSequence(values as never);
          const d = new CborSequenceDecoder();
          const got = chunked(seq, cuts).flatMap((c) => d.push(c));
          d.end();
          expect(got).toEqual(values.map(normalize));
          expect(decodeCborSequence(seq)).toEqual(got);
        },
      ),
    );
  });

  it('a sequence cut inside an item keeps the items before it and reports truncation', () => {
    fc.assert(
      fc.property(
        fc.array(cborValue, { minLength: 1, maxLength: 5 }),
        fc.nat(),
        fc.nat(),
        (values, pick, cut) => {
          const items = values.map((v) => encodeCbor(v as never));
          const i = pick % items.length;
          const item = items[i] as Uint8Array;
          if (item.length < 2) return;
          const keep = 1 + (cut % (item.length - 1)); // strictly inside item i
          const prefix = Buffer.concat([...items.slice(0, i), item.subarray(0, keep)]);
          const d = new CborSequenceDecoder();
          expect(d.push(prefix)).toEqual(values.slice(0, i).map(normalize));
          const err = errorOf(() => d.end());
          expect(err.code).toBe('INVALID_MESSAGE');
          expect(err.message).toMatch(/truncated/);
        },
      ),
    );
  });

  it('junk never throws anything but an AgentProtocolError and never buffers past the cap', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.integer({ min: 1, max: 64 }),
        (junk, cuts, cap) => {
          const d = new CborSequenceDecoder({ maxItemSize: cap, maxDepth: 8 });
          try {
            for (const c of chunked(junk, cuts)) {
              for (const item of d.pushRaw(c)) expect(item.length).toBeLessThanOrEqual(cap);
              expect(d.bufferedBytes).toBeLessThanOrEqual(cap);
            }
            d.end();
          } catch (err) {
            expect(err).toBeInstanceOf(AgentProtocolError);
            expect(['INVALID_MESSAGE', 'MESSAGE_TOO_LARGE']).toContain(
              (err as AgentProtocolError).code,
            );
          }
          // the value decoder too
          try {
            decodeCbor(junk, { maxItemSize: cap, maxDepth: 8 });
          } catch (err) {
            expect(err).toBeInstanceOf(AgentProtocolError);
          }
          try {
            decodeCborSequence(junk);
          } catch (err) {
            expect(err).toBeInstanceOf(AgentProtocolError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

// Byte strings of 256 bytes and more are not copied into the scratch buffer but referenced and
// copied once into the result (or handed out as they are by encodeCborParts, for the Mux).
describe('long byte and text strings', () => {
  it('a 300-byte string: 2-byte length head, then the bytes', () => {
    const b = Buffer.alloc(300, 0xab);
    expect(hex(encodeCbor(b))).toBe(`59012c${'ab'.repeat(300)}`);
    expect(hex(encodeCbor('é'.repeat(150)))).toBe(`79012c${'c3a9'.repeat(150)}`);
  });

  const item = fc.oneof(
    fc.uint8Array({ maxLength: 700 }).map((b) => Buffer.from(b)),
    fc.string({ maxLength: 400 }),
    fc.integer(),
  );
  const value = fc.record({
    a: fc.array(item, { maxLength: 8 }),
    bb: item,
    c: fc.record({ x: item, longer: item }),
  });
  const asDecoded = (v: { a: unknown[]; bb: unknown; c: { x: unknown; longer: unknown } }) =>
    normalize(
      new Map<CborValue, CborValue>([
        ['a', v.a as CborValue[]],
        ['bb', v.bb as CborValue],
        [
          'c',
          new Map<CborValue, CborValue>([
            ['x', v.c.x as CborValue],
            ['longer', v.c.longer as CborValue],
          ]),
        ],
      ]),
    );

  it('land in place at every position and nesting (cbor-x decodes the same values)', () => {
    fc.assert(
      fc.property(value, (v) => {
        const enc = encodeCbor(v);
        // an independent decoder: byte strings as Uint8Array, maps as objects
        const other = cborxDecode(Buffer.from(enc)) as typeof v;
        expect(other.a.map((x) => (x instanceof Uint8Array ? hex(x) : x))).toEqual(
          v.a.map((x) => (x instanceof Uint8Array ? hex(x) : x)),
        );
        expect(normalize(decodeCbor(enc))).toEqual(asDecoded(v));
      }),
      { numRuns: 300 },
    );
  });

  it("encodeCborParts: the same bytes, long byte strings as the caller's own arrays", () => {
    fc.assert(
      fc.property(value, (v) => {
        const parts = encodeCborParts(v);
        expect(hex(Buffer.concat(parts))).toBe(hex(encodeCbor(v)));
        const long = [...v.a, v.bb, v.c.x, v.c.longer].filter(
          (x) => x instanceof Uint8Array && x.length >= 256,
        );
        for (const b of long) expect(parts.some((p) => p === b)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('an encode nested in another (a key not cached yet) does not disturb it', () => {
    const payload = Buffer.alloc(1000, 7);
    // 600 distinct new keys: the key cache (512) fills, later keys are encoded mid-item
    const obj: Record<string, Buffer> = {};
    for (let i = 0; i < 600; i++) obj[`fresh-key-${i}`] = payload;
    const dec = decodeCbor(encodeCbor(obj)) as Map<string, Buffer>;
    expect(dec.size).toBe(600);
    for (const [k, b] of dec) {
      expect(k).toMatch(/^fresh-key-\d+$/);
      expect(b.equals(payload)).toBe(true);
    }
  });
});
