/**
 * SPOP encoding checked against byte vectors worked out by hand from HAProxy's
 * doc/SPOE.txt (section 3.1 varint ranges and typed data, 3.2 frames, 3.2.4/3.2.5
 * HELLO, 3.4 set-var) and the req.hdrs_bin format of the configuration manual.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeActions,
  decodeFrame,
  decodeKvList,
  decodeMessages,
  decodeVarint,
  encodeActions,
  encodeBinaryHeaderBlock,
  encodeFrame,
  encodeKvList,
  encodeMessages,
  encodeVarint,
  parseBinaryHeaderBlock,
  parseTextHeaderBlock,
  type SpopError,
  SpopFrameType,
  SpopStatus,
  type SpopValue,
  supportsVersion,
} from '../src/index.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const ascii = (s: string) => Buffer.from(s, 'latin1').toString('hex');

describe('varint (SPOE.txt 3.1, "Peers encoding")', () => {
  // Each range boundary of the table: 1 byte below 240, then 11, 18, 25, 32 bits.
  const vectors: [number | bigint, string][] = [
    [0, '00'],
    [1, '01'],
    [239, 'ef'],
    [240, 'f000'],
    [241, 'f100'],
    [255, 'ff00'],
    [256, 'f001'],
    [2287, 'ff7f'],
    [2288, 'f08000'],
    [16380, 'fcf006'], // HAProxy's default max-frame-size (tune.bufsize 16384 - 4)
    [264431, 'ffff7f'],
    [264432, 'f0808000'],
    [33818863, 'ffffff7f'],
    [33818864, 'f080808000'],
    [4328786159, 'ffffffff7f'],
    [4328786160, 'f08080808000'],
    [(1n << 64n) - 1n, 'fff0fefefefefefefe0e'],
  ];
  it.each(vectors)('%s ⇄ %s', (value, h) => {
    expect(hex(encodeVarint(value))).toBe(h);
    const d = decodeVarint(bytes(h));
    expect(d.value).toBe(BigInt(value));
    expect(d.next).toBe(h.length / 2);
  });

  it('the byte length follows the ranges of the table', () => {
    const lengths: [number, number][] = [
      [239, 1],
      [2287, 2],
      [264431, 3],
      [33818863, 4],
      [4328786159, 5],
    ];
    for (const [max, len] of lengths) {
      expect(encodeVarint(max)).toHaveLength(len);
      expect(encodeVarint(max + 1)).toHaveLength(len + 1);
    }
  });

  it('round-trips any 64-bit value', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
        expect(decodeVarint(encodeVarint(v)).value).toBe(v);
      }),
    );
  });

  it('refuses a truncated varint, one longer than 10 bytes, and one past 64 bits', () => {
    expect(() => decodeVarint(bytes('f080'))).toThrow(/truncated/);
    expect(() => decodeVarint(bytes('ff'.repeat(11)))).toThrow(/longer than 10 bytes/);
    expect(() => decodeVarint(bytes('ffffffffffffffffff7f'))).toThrow(/exceeds 64 bits/);
    expect(() => encodeVarint(-1)).toThrow(/out of range/);
  });
});

describe('typed data (SPOE.txt 3.1)', () => {
  const kv = (v: SpopValue) => encodeKvList([['k', v]]);
  const vectors: [SpopValue, string][] = [
    [{ type: 'null' }, '00'],
    [{ type: 'bool', value: false }, '01'],
    [{ type: 'bool', value: true }, '11'], // the value is the first FLAGS bit
    [{ type: 'int32', value: 42 }, '022a'],
    [{ type: 'uint32', value: 16380 }, '03fcf006'],
    [{ type: 'int64', value: -1n }, '04fff0fefefefefefefe0e'],
    [{ type: 'uint64', value: 240n }, '05f000'],
    [{ type: 'ipv4', value: '127.0.0.1' }, '067f000001'],
    [{ type: 'ipv6', value: '::1' }, `07${'00'.repeat(15)}01`],
    [{ type: 'ipv6', value: '2001:db8::8:800:200c:417a' }, '0720010db8000000000008080020 0c417a'],
    [{ type: 'string', value: 'abc' }, '0803616263'],
    [{ type: 'binary', value: Uint8Array.of(0, 255) }, '090200ff'],
  ];
  it.each(vectors.map(([v, h]) => [v.type, h, v] as const))('%s ⇄ %s', (_t, h, value) => {
    const encoded = kv(value);
    expect(hex(encoded)).toBe(`016b${h.replace(/\s+/g, '')}`);
    expect(decodeKvList(encoded)).toEqual([['k', value]]);
  });

  it('reads a negative int32 written as 64 bits (HAProxy) or as 32-bit two’s complement', () => {
    expect(decodeKvList(bytes('016b 02 fff0fefefefefefefe0e'))).toEqual([
      ['k', { type: 'int32', value: -1 }],
    ]);
    expect(decodeKvList(bytes('016b 02 fff0fefe7e'))).toEqual([
      ['k', { type: 'int32', value: -1 }],
    ]);
  });

  it('refuses an unknown type (10-15 are reserved) and a string longer than the payload', () => {
    expect(() => decodeKvList(bytes('016b0a'))).toThrow(/unknown data type 10/);
    expect(() => decodeKvList(bytes('016b 08 05 6162'))).toThrow(/announces 5 bytes, 2 remain/);
    try {
      decodeKvList(bytes('016b0a'));
    } catch (err) {
      expect((err as SpopError).status).toBe(SpopStatus.Invalid);
    }
  });
});

describe('frames (SPOE.txt 3.2)', () => {
  it('a HAPROXY-HELLO as HAProxy writes it decodes field by field', () => {
    const payload = [
      `12${ascii('supported-versions')}0803${ascii('2.0')}`,
      `0e${ascii('max-frame-size')}03fcf006`,
      `0c${ascii('capabilities')}0810${ascii('pipelining,async')}`,
      `0b${ascii('healthcheck')}11`,
    ].join('');
    const frame = bytes(`01 00000001 00 00 ${payload}`);
    const f = decodeFrame(frame);
    expect(f).toMatchObject({ type: 1, flags: 1, streamId: 0, frameId: 0 });
    expect(decodeKvList(f.payload)).toEqual([
      ['supported-versions', { type: 'string', value: '2.0' }],
      ['max-frame-size', { type: 'uint32', value: 16380 }],
      ['capabilities', { type: 'string', value: 'pipelining,async' }],
      ['healthcheck', { type: 'bool', value: true }],
    ]);
  });

  it('an AGENT-HELLO is written byte for byte: length, type 101, FIN, ids 0, KV-LIST', () => {
    const frame = encodeFrame({
      type: SpopFrameType.AgentHello,
      payload: encodeKvList([
        ['version', { type: 'string', value: '2.0' }],
        ['max-frame-size', { type: 'uint32', value: 16380 }],
        ['capabilities', { type: 'string', value: 'pipelining' }],
      ]),
    });
    const body = [
      '65 00000001 00 00',
      `07${ascii('version')}0803${ascii('2.0')}`,
      `0e${ascii('max-frame-size')}03fcf006`,
      `0c${ascii('capabilities')}080a${ascii('pipelining')}`,
    ]
      .join('')
      .replace(/\s+/g, '');
    const len = (body.length / 2).toString(16).padStart(8, '0');
    expect(hex(frame)).toBe(`${len}${body}`);
  });

  it('an ACK with set-var: type 1, 3 args, scope byte, name without a type byte, typed value', () => {
    const payload = encodeActions([
      {
        type: 'set-var',
        scope: 'txn',
        name: 'decision',
        value: { type: 'string', value: 'allow' },
      },
      { type: 'set-var', scope: 'sess', name: 'status', value: { type: 'int32', value: 403 } },
      { type: 'unset-var', scope: 'txn', name: 'x' },
    ]);
    expect(hex(payload)).toBe(
      `010302 08${ascii('decision')} 0805${ascii('allow')} 010301 06${ascii('status')} 02f30a 020202 0178`.replace(
        /\s+/g,
        '',
      ),
    );
    expect(decodeActions(payload)).toHaveLength(3);
    // stream-id and frame-id as varints after the flags
    const ack = encodeFrame({ type: SpopFrameType.Ack, streamId: 300, frameId: 2, payload });
    expect(hex(ack.subarray(4, 12))).toBe('6700000001fc0302');
  });

  it('NOTIFY messages: name, one-byte argument count, KV-LIST of arguments', () => {
    const payload = encodeMessages([
      { name: 'picket', args: [['method', { type: 'string', value: 'GET' }]] },
    ]);
    expect(hex(payload)).toBe(
      `06${ascii('picket')}01 06${ascii('method')} 0803${ascii('GET')}`.replace(/\s+/g, ''),
    );
    expect(decodeMessages(payload)).toEqual([
      { name: 'picket', args: [['method', { type: 'string', value: 'GET' }]] },
    ]);
    expect(() => decodeMessages(bytes(`06${ascii('picket')}02 06${ascii('method')}00`))).toThrow(
      /truncated/,
    );
  });

  it('a frame shorter than type + flags + two ids is invalid', () => {
    expect(() => decodeFrame(bytes('03000000'))).toThrow(/shorter than 7/);
  });
});

describe('header blocks', () => {
  it('req.hdrs_bin: (<str:name><str:value>)* then two empty strings', () => {
    const block = encodeBinaryHeaderBlock([
      ['host', 'a.test'],
      ['x-tag', '1'],
      ['X-Tag', '2'],
    ]);
    expect(hex(block)).toBe(
      `04${ascii('host')}06${ascii('a.test')}05${ascii('x-tag')}01${ascii('1')}05${ascii('X-Tag')}01${ascii('2')}0000`,
    );
    expect(parseBinaryHeaderBlock(block)).toEqual({ host: ['a.test'], 'x-tag': ['1', '2'] });
  });

  it('req.hdrs_bin without its end marker, or with bytes after it, is refused', () => {
    expect(() => parseBinaryHeaderBlock(bytes(`04${ascii('host')}00`))).toThrow(
      /truncated|end marker/,
    );
    expect(() => parseBinaryHeaderBlock(bytes('000001'))).toThrow(/after the end marker/);
  });

  it('a header named __proto__ is an own key, not the prototype', () => {
    const h = parseBinaryHeaderBlock(encodeBinaryHeaderBlock([['__proto__', 'x']]));
    expect(Object.hasOwn(h, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(h)).toBe(Object.prototype);
  });

  it('req.hdrs text: CRLF lines, lowercased names, trimmed values', () => {
    expect(parseTextHeaderBlock('Host: a.test\r\nX-A:  1 \r\nx-a: 2\r\n\r\n')).toEqual({
      host: ['a.test'],
      'x-a': ['1', '2'],
    });
    expect(() => parseTextHeaderBlock('no colon here\r\n\r\n')).toThrow(/without "name:"/);
  });
});

describe('supported-versions', () => {
  it('accepts a list announcing major 2, spaces ignored; refuses others', () => {
    expect(supportsVersion('2.0')).toBe(true);
    expect(supportsVersion(' 2.0 , 1.5')).toBe(true);
    expect(supportsVersion('2.3')).toBe(true);
    expect(supportsVersion('1.0')).toBe(false);
    expect(supportsVersion('3.0')).toBe(false);
    expect(supportsVersion('')).toBe(false);
  });
});
