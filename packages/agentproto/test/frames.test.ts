/** Frames: the spec's byte vectors, the Go struct rules (omitempty vs always present), tolerant decoding. */
import { AgentProtocolError } from '@picket/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCbor } from '../src/cbor.js';
import {
  type DecodedFrame,
  decodeFrame,
  encodeFrame,
  FileOp,
  type FileOpReq,
  type FileStat,
  type Frame,
  FrameDecoder,
  FrameType,
  isKnownFrame,
  type UnknownFrame,
} from '../src/frames.js';
import { frame } from './arbitraries.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');
const EM = 'open /x: no such file or directory';

/** The spec's verified vectors (§2.2), spaces as printed there. */
const vectors: Array<[string, Frame, string]> = [
  ['stdout "hi"', { t: 2, s: 1, d: Buffer.from('hi') }, 'a3 6164 426869 6173 01 6174 02'],
  ['stdin "hi", s:0 omitted', { t: 2, s: 0, d: Buffer.from('hi') }, 'a2 6164 426869 6174 02'],
  ['exit 0', { t: 5, c: 0 }, 'a1 6174 05'],
  ['exit 128+SIGTERM', { t: 5, c: 143 }, 'a2 6163 188f 6174 05'],
  ['signal 15', { t: 4, sig: 15 }, 'a2 6174 04 63736967 0f'],
  ['Getwd probe', { t: 11, fop: { id: 1, op: 16 } }, 'a2 6174 0b 63666f70 a2 626964 01 626f70 10'],
  [
    'FileResp ENOENT',
    { t: 12, frp: { id: 7, er: 2, em: EM } },
    `a2 6174 0c 63667270 a3 62656d 78 22 ${hex(Buffer.from(EM))} 626572 02 626964 07`,
  ],
];

function errorOf(fn: () => unknown): AgentProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentProtocolError);
    return err as AgentProtocolError;
  }
  throw new Error('expected an error');
}

describe('spec byte vectors', () => {
  it.each(vectors)('%s: encodes to the exact bytes and decodes back', (_name, frame, want) => {
    expect(hex(encodeFrame(frame))).toBe(want.replace(/\s+/g, ''));
    expect(decodeFrame(bytes(want))).toEqual(frame);
  });

  it('a 32 KiB stdout Data frame: the payload between its head and the other fields', () => {
    const d = Buffer.alloc(32 * 1024);
    for (let i = 0; i < d.length; i++) d[i] = i % 251;
    const want = Buffer.concat([bytes('a3 6164 598000'), d, bytes('6173 01 6174 02')]);
    expect(hex(encodeFrame({ t: 2, s: 1, d }))).toBe(hex(want));
    expect(decodeFrame(want)).toEqual({ t: 2, s: 1, d });
  });

  it('omitted fields decode to their zero values', () => {
    expect(decodeFrame(bytes('a2 6164 426869 6174 02'))).toEqual({
      t: 2,
      s: 0,
      d: Buffer.from('hi'),
    });
    expect(decodeFrame(bytes('a1 6174 05'))).toEqual({ t: 5, c: 0 });
    expect(decodeFrame(bytes('a1 6174 03'))).toEqual({ t: 3, s: 0 });
    expect(decodeFrame(bytes('a1 6174 02'))).toEqual({ t: 2, s: 0, d: Buffer.alloc(0) });
  });

  it('two frames back to back (a sequence), however the bytes are split', () => {
    const seq = bytes('a3616441616173016174 02 a1617405');
    for (let cut = 0; cut <= seq.length; cut++) {
      const d = new FrameDecoder();
      const got: DecodedFrame[] = [];
      for (const part of [seq.subarray(0, cut), seq.subarray(cut)]) {
        d.push(part);
        for (let f = d.next(); f; f = d.next()) got.push(f);
      }
      d.end();
      expect(got).toEqual([
        { t: 2, s: 1, d: Buffer.from('a') },
        { t: 5, c: 0 },
      ]);
    }
  });
});

describe('what Go always writes (Details §1)', () => {
  it('ExecMsg path/argv/env/cwd even when empty, nil lists as null; fds only when set', () => {
    expect(hex(encodeFrame({ t: 1, x: { path: '', argv: null, env: null, cwd: '' } }))).toBe(
      'a2 6174 01 6178 a4 63637764 60 63656e76 f6 6461726776 f6 6470617468 60'.replace(/ /g, ''),
    );
    // an empty (non-nil) list is an empty array, not null
    expect(hex(encodeFrame({ t: 1, x: { path: 'p', argv: [], env: [], cwd: '', fds: [] } }))).toBe(
      'a2 6174 01 6178 a4 63637764 60 63656e76 80 6461726776 80 6470617468 6170'.replace(/ /g, ''),
    );
    const withFds = encodeFrame({
      t: 1,
      x: { path: 'p', argv: ['p'], env: ['A=1'], cwd: '/', fds: [3, 4] },
    });
    expect(hex(withFds)).toContain('63666473 82 03 04'.replace(/ /g, ''));
  });

  it('LogEntry lvl/msg, AgentConfig lists, PathInfo entries, PathInfoEntry fields', () => {
    expect(hex(encodeFrame({ t: 7, l: { lvl: 0, msg: '' } }))).toBe(
      'a2616c a2 636c766c 00 636d7367 60 6174 07'.replace(/ /g, ''),
    );
    expect(hex(encodeFrame({ t: 8, cfg: { env_keep: null, env_remove: null } }))).toBe(
      'a2 6174 08 63636667 a2 68656e765f6b656570 f6 6a656e765f72656d6f7665 f6'.replace(/ /g, ''),
    );
    expect(hex(encodeFrame({ t: 10, i: { entries: null } }))).toBe(
      'a2 6169 a1 67656e7472696573 f6 6174 0a'.replace(/ /g, ''),
    );
    const entry = encodeFrame({
      t: 10,
      i: { entries: [{ name: '', path: '', mode: 0, size: 0 }] },
    });
    expect(hex(entry)).toBe(
      'a2 6169 a1 67656e7472696573 81 a4 646d6f6465 00 646e616d65 60 6470617468 60 6473697a65 00 6174 0a'.replace(
        / /g,
        '',
      ),
    );
  });

  it('FileOpReq id/op, FileOpResp id, FileStat n/s/m (an empty directory keeps s: 0)', () => {
    expect(hex(encodeFrame({ t: 11, fop: { id: 0, op: 0 } }))).toBe(
      'a2 6174 0b 63666f70 a2 626964 00 626f70 00'.replace(/ /g, ''),
    );
    expect(hex(encodeFrame({ t: 12, frp: { id: 0 } }))).toBe(
      'a2 6174 0c 63667270 a1 626964 00'.replace(/ /g, ''),
    );
    const st: FileStat = { n: 'd', s: 0, m: 2147484141, d: true };
    expect(hex(encodeFrame({ t: 12, frp: { id: 3, st } }))).toBe(
      'a2 6174 0c 63667270 a2 626964 03 627374 a4 6164 f5 616d 1a800001ed 616e 6164 6173 00'.replace(
        / /g,
        '',
      ),
    );
  });

  it('pointer payloads are written whenever set, even empty; q:{} is an empty map', () => {
    expect(hex(encodeFrame({ t: 9, q: {} }))).toBe('a2 6171 a0 6174 09'.replace(/ /g, ''));
    expect(hex(encodeFrame({ t: 9 }))).toBe('a1617409');
  });

  it('int64 fields beyond 2^53 as uint64/neg64 heads; negative offsets', () => {
    const req: FileOpReq = { id: 1, op: FileOp.Chtimes, p: '/f', at: 1781000000123456789n, mt: -1 };
    const enc = encodeFrame({ t: 11, fop: req });
    expect(hex(enc)).toContain('6261741b18b7621060544d15');
    expect(hex(enc)).toContain('626d7420');
    expect(decodeFrame(enc)).toEqual({ t: 11, fop: req });
    const append = encodeFrame({
      t: 11,
      fop: { id: 2, op: FileOp.WriteAt, h: 1, of: -1, d: Buffer.from('x') },
    });
    expect(decodeFrame(append)).toMatchObject({ fop: { of: -1 } });
  });
});

describe('decoding is tolerant where Go is, strict where Go is', () => {
  it('null reads as absent, unknown keys are ignored', () => {
    const v = encodeCbor({ t: 2, s: null, d: Buffer.from('x'), zz: [1, 2], 99: 'x' });
    expect(decodeFrame(v)).toEqual({ t: 2, s: 0, d: Buffer.from('x') });
    const x = encodeCbor({
      t: 1,
      x: { path: 'p', argv: null, env: null, cwd: null, fds: null, extra: 1 },
    });
    expect(decodeFrame(x)).toEqual({ t: 1, x: { path: 'p', argv: null, env: null, cwd: '' } });
    expect(decodeFrame(encodeCbor({ t: 8, cfg: null }))).toEqual({ t: 8 });
  });

  it('fields of other frame types are dropped; nested zero values are left out', () => {
    expect(decodeFrame(encodeCbor({ t: 5, c: 1, s: 3, sig: 9 }))).toEqual({ t: 5, c: 1 });
    expect(decodeFrame(encodeCbor({ t: 12, frp: { id: 1, er: 0, em: '', eof: false } }))).toEqual({
      t: 12,
      frp: { id: 1 },
    });
  });

  it('unknown frame types (and a missing t) decode as UnknownFrame', () => {
    const f = decodeFrame(encodeCbor({ t: 13, s: 1 }));
    expect(f).toEqual({ t: 13, unknown: true });
    expect(isKnownFrame(f)).toBe(false);
    expect(decodeFrame(encodeCbor({ s: 1 }))).toEqual({ t: 0, unknown: true });
    expect(hex(encodeFrame(f as UnknownFrame))).toBe('a161740d');
  });

  it.each([
    [[1, 2], /invalid frame: expected a map, got an array/],
    [{ t: 'x' }, /field "t" must be an integer, got a text string/],
    [{ t: 256 }, /field "t" = 256 is out of range/],
    [{ t: 2, s: -1 }, /field "s" = -1 is out of range/],
    [{ t: 2, s: 2 ** 32 }, /field "s" = 4294967296 is out of range/],
    [{ t: 2, d: 'hi' }, /field "d" must be a byte string, got a text string/],
    [{ t: 6, e: Buffer.from('x') }, /field "e" must be a text string, got a byte string/],
    [{ t: 5, c: 2n ** 60n }, /field "c" = 1152921504606846976 is out of range \(a safe integer/],
    [{ t: 1, x: { argv: 'ls' } }, /invalid frame\.x: field "argv" must be an array/],
    [
      { t: 1, x: { argv: [1] } },
      /invalid frame\.x\.argv\[0\]: expected a text string, got an integer/,
    ],
    [{ t: 1, x: { fds: [-3] } }, /frame\.x\.fds\[0\]: expected a uint32 fd number/],
    [{ t: 11, fop: { id: 1, op: 300 } }, /frame\.fop: field "op" = 300 is out of range/],
    [{ t: 11, fop: { id: 1, op: 5, fl: 2 ** 31 } }, /field "fl" = 2147483648 is out of range/],
    [{ t: 12, frp: { id: 1, st: 5 } }, /frame\.frp\.st: expected a map, got an integer/],
    [{ t: 12, frp: { id: 1, eof: 1 } }, /field "eof" must be a boolean/],
    [
      { t: 12, frp: { id: 1, n: -(2n ** 63n) - 1n } },
      /field "n" = -9223372036854775809 is out of range/,
    ],
  ])('bad frame %# → %s', (value, message) => {
    const err = errorOf(() => decodeFrame(encodeCbor(value as never)));
    expect(err.code).toBe('INVALID_MESSAGE');
    expect(err.message).toMatch(message);
  });

  it('a float where an integer belongs is a clear error', () => {
    // {t: 1.5} with a half-precision float
    expect(errorOf(() => decodeFrame(bytes('a1 6174 f93e00'))).message).toMatch(
      /"t" must be an integer, got a float/,
    );
  });

  it('a whole float beyond 2^53 is range-checked exactly (2^63 does not fit an int64)', () => {
    // {t: 12, frp: {id: 1, n: 2^63 as float64}}: as a double, 2^63 equals the rounded int64 max
    expect(
      errorOf(() => decodeFrame(bytes('a2 6174 0c 63667270 a2 626964 01 616e fb43e0000000000000')))
        .message,
    ).toMatch(/field "n" = 9223372036854776000 is out of range/);
    // 2^62 as a float64 fits
    expect(decodeFrame(bytes('a2 6174 0c 63667270 a2 626964 01 616e fb43d0000000000000'))).toEqual({
      t: 12,
      frp: { id: 1, n: 2 ** 62 },
    });
  });
});

describe('FrameDecoder', () => {
  it('delivers every frame before a bad item, then the error, then stays failed', () => {
    const d = new FrameDecoder();
    d.push(
      Buffer.concat([
        encodeFrame({ t: 5, c: 1 }),
        encodeFrame({ t: 4, sig: 2 }),
        bytes('a1 6174 6178'),
      ]),
    );
    expect(d.next()).toEqual({ t: 5, c: 1 });
    expect(d.next()).toEqual({ t: 4, sig: 2 });
    expect(() => d.next()).toThrow(/field "t" must be an integer/);
    expect(() => d.next()).toThrow(/field "t"/);
    expect(() => d.end()).toThrow(/field "t"/);
  });

  it('empty input: no frame, and the end of the stream is clean (Go: io.EOF)', () => {
    const d = new FrameDecoder();
    d.push(new Uint8Array(0));
    expect(d.next()).toBeUndefined();
    expect(() => d.end()).not.toThrow();
  });

  it('a structural fault after good frames in the same chunk', () => {
    const d = new FrameDecoder();
    d.push(Buffer.concat([encodeFrame({ t: 3, s: 1 }), bytes('1c')]));
    expect(d.queued).toBe(1);
    expect(d.next()).toEqual({ t: 3, s: 1 });
    expect(() => d.next()).toThrow(/reserved additional info 28/);
  });

  it('end() reports a stream cut inside a frame; frames over the size cap are refused', () => {
    const d = new FrameDecoder();
    const f = encodeFrame({ t: 2, s: 1, d: Buffer.alloc(100) });
    d.push(f.subarray(0, 50));
    expect(d.next()).toBeUndefined();
    expect(() => d.end()).toThrow(/stream ended in the middle of an item/);
    const small = new FrameDecoder({ maxItemSize: 64 });
    small.push(f.subarray(0, 12));
    const err = errorOf(() => small.next());
    expect(err.code).toBe('MESSAGE_TOO_LARGE');
  });

  it('a 1 MiB Data frame fed a few bytes at a time', () => {
    const payload = Buffer.alloc(1024 * 1024, 7);
    const f = encodeFrame({ t: 2, s: 1, d: payload });
    const d = new FrameDecoder();
    for (let i = 0; i < f.length; i += 997) d.push(f.subarray(i, i + 997));
    const got = d.next();
    expect(got?.t).toBe(FrameType.Data);
    expect(Buffer.from((got as { d: Uint8Array }).d).equals(payload)).toBe(true);
  });
});

describe('properties', () => {
  it('decodeFrame(encodeFrame(f)) = f for random frames of every type', () => {
    fc.assert(
      fc.property(frame, (f) => {
        const enc = encodeFrame(f);
        const dec = decodeFrame(enc);
        expect(dec).toEqual(f);
        expect(hex(encodeFrame(dec))).toBe(hex(enc));
      }),
      { numRuns: 1000 },
    );
  });

  it('mutated frames never raise anything but an AgentProtocolError', () => {
    fc.assert(
      fc.property(
        fc.array(frame, { minLength: 1, maxLength: 4 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        (frames, edits) => {
          const seq = Buffer.concat(frames.map(encodeFrame));
          for (const [at, byte] of edits) seq[at % seq.length] = byte;
          const d = new FrameDecoder({ maxItemSize: 4096 });
          try {
            d.push(seq);
            while (d.next() !== undefined) {}
            d.end();
          } catch (err) {
            expect(err).toBeInstanceOf(AgentProtocolError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('a random frame sequence in random chunks decodes to the same frames', () => {
    fc.assert(
      fc.property(
        fc.array(frame, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (frames, cuts) => {
          const seq = Buffer.concat(frames.map(encodeFrame));
          const points = [...new Set(cuts.map((c) => c % (seq.length + 1)))].sort((a, b) => a - b);
          const d = new FrameDecoder();
          const got: DecodedFrame[] = [];
          let prev = 0;
          for (const p of [...points, seq.length]) {
            d.push(seq.subarray(prev, p));
            prev = p;
            for (let f = d.next(); f; f = d.next()) got.push(f);
          }
          d.end();
          expect(got).toEqual(frames);
        },
      ),
      { numRuns: 300 },
    );
  });
});
