import { MAX_V1_MESSAGE_SIZE } from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import {
  decodeV1Frames,
  encodeV1Frame,
  encodeV1FrameHeader,
  FramingError,
  V1_HEADER_SIZE,
  V1FrameDecoder,
} from '../src/index.js';
import { bytewise, catchError, concat, header, toHex } from './helpers.js';

const MAX = MAX_V1_MESSAGE_SIZE;
const json = (text: string) => new TextEncoder().encode(text);

function expectFramingError(fn: () => unknown, code: FramingError['code'], message?: string) {
  const error = catchError(fn);
  expect(error).toBeInstanceOf(FramingError);
  expect((error as FramingError).code).toBe(code);
  if (message !== undefined) expect((error as FramingError).message).toBe(message);
  return error as FramingError;
}

describe('encodeV1Frame / encodeV1FrameHeader', () => {
  it('writes a 4-byte big-endian length of the payload only', () => {
    expect(V1_HEADER_SIZE).toBe(4);
    expect(toHex(encodeV1Frame(json('{}')))).toBe('000000027b7d');
    expect(toHex(encodeV1FrameHeader(2))).toBe('00000002');
  });

  it('accepts exactly 10 MiB and rejects one byte more', () => {
    const frame = encodeV1Frame(new Uint8Array(MAX));
    expect(toHex(frame.subarray(0, 4))).toBe('00a00000');
    expect(decodeV1Frames(frame)[0]).toHaveLength(MAX);
    const message = 'v1 message length 10485761 exceeds the 10485760-byte limit';
    expectFramingError(() => encodeV1Frame(new Uint8Array(MAX + 1)), 'FRAME_TOO_LARGE', message);
    expectFramingError(() => encodeV1FrameHeader(MAX + 1), 'FRAME_TOO_LARGE', message);
  });

  it('rejects an empty payload (readers reject L = 0)', () => {
    expectFramingError(() => encodeV1Frame(new Uint8Array(0)), 'ZERO_LENGTH');
    expectFramingError(() => encodeV1FrameHeader(0), 'ZERO_LENGTH');
  });

  it('honours maxMessageSize and validates it', () => {
    expect(encodeV1Frame(new Uint8Array(5), { maxMessageSize: 5 })).toHaveLength(9);
    expectFramingError(
      () => encodeV1Frame(new Uint8Array(6), { maxMessageSize: 5 }),
      'FRAME_TOO_LARGE',
    );
    for (const maxMessageSize of [0, -1, 2.5, 2 ** 32]) {
      expect(() => encodeV1Frame(json('{}'), { maxMessageSize })).toThrow(RangeError);
      expect(() => new V1FrameDecoder({ maxMessageSize })).toThrow(RangeError);
    }
    expect(() => encodeV1FrameHeader(-1)).toThrow(RangeError);
  });
});

describe('V1FrameDecoder', () => {
  it('decodes several messages from one chunk and one byte at a time', () => {
    const stream = concat([encodeV1Frame(json('{"a":1}')), encodeV1Frame(json('{}'))]);
    const expected = ['{"a":1}', '{}'];
    const text = (payloads: Uint8Array[]) => payloads.map((p) => new TextDecoder().decode(p));
    expect(text(new V1FrameDecoder().push(stream))).toEqual(expected);
    const decoder = new V1FrameDecoder();
    expect(text(bytewise(stream).flatMap((chunk) => decoder.push(chunk)))).toEqual(expected);
    expect(decoder.bufferedBytes).toBe(0);
    decoder.finish();
  });

  it('rejects L = 0 as soon as the length arrives', () => {
    const decoder = new V1FrameDecoder();
    expect(decoder.push(Uint8Array.of(0, 0))).toEqual([]);
    expectFramingError(
      () => decoder.push(Uint8Array.of(0, 0)),
      'ZERO_LENGTH',
      'zero-length v1 message',
    );
    expectFramingError(() => decoder.push(json('{}')), 'DECODER_FAILED');
  });

  it('accepts L = max and rejects L = max + 1 before any payload', () => {
    const decoder = new V1FrameDecoder();
    expect(decoder.push(header(MAX))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(4);
    expect(decoder.push(new Uint8Array(MAX - 1))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(MAX + 3);
    expect(decoder.push(Uint8Array.of(1))[0]).toHaveLength(MAX);

    expectFramingError(
      () => new V1FrameDecoder().push(header(MAX + 1)),
      'FRAME_TOO_LARGE',
      'v1 message length 10485761 exceeds the 10485760-byte limit',
    );
    expectFramingError(
      () => new V1FrameDecoder({ maxMessageSize: 3 }).push(header(4)),
      'FRAME_TOO_LARGE',
      'v1 message length 4 exceeds the 3-byte limit',
    );
  });

  it('has no type byte: any first payload byte is accepted', () => {
    expect(new V1FrameDecoder().push(Uint8Array.of(0, 0, 0, 1, 0xff))).toEqual([
      Uint8Array.of(0xff),
    ]);
  });

  it('returns views for whole frames', () => {
    const chunk = encodeV1Frame(json('{}'));
    const [payload] = new V1FrameDecoder().push(chunk);
    expect(payload!.buffer).toBe(chunk.buffer);
  });

  it('finish() throws TRUNCATED mid-frame and stays failed', () => {
    const decoder = new V1FrameDecoder();
    decoder.push(Uint8Array.of(0, 0, 0, 5, 0x7b));
    expectFramingError(
      () => decoder.finish(),
      'TRUNCATED',
      'stream ended mid-v1 message: 1 of 5 payload bytes received',
    );
    expectFramingError(() => decoder.finish(), 'DECODER_FAILED');

    const midHeader = new V1FrameDecoder();
    midHeader.push(Uint8Array.of(0));
    expectFramingError(
      () => midHeader.finish(),
      'TRUNCATED',
      'stream ended mid-v1 message: 1 of 4 header bytes received',
    );
    expectFramingError(() => decodeV1Frames(Uint8Array.of(0, 0, 0, 2, 0x7b)), 'TRUNCATED');
  });
});
