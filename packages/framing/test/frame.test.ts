import { MAX_UDS_FRAME_LENGTH, MessageType } from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import {
  decodeFrames,
  encodeFrame,
  encodeFrameHeader,
  FRAME_HEADER_SIZE,
  FrameDecoder,
  FramingError,
  isFramingError,
  MAX_FRAME_PAYLOAD_LENGTH,
} from '../src/index.js';
import { bytewise, catchError, concat, header, toHex } from './helpers.js';

const MAX = MAX_UDS_FRAME_LENGTH;
const KNOWN_TYPES = Object.values(MessageType);
const byteCase = (type: number) => ({ type, hex: `0x${type.toString(16).padStart(2, '0')}` });
// The ones the upstream docs / Go SDK use, plus the extremes.
const UNKNOWN_TYPES = [0x00, 0x03, 0x04, 0x21, 0xe0, 0xf0, 0xf1, 0xff].map(byteCase);

function expectFramingError(fn: () => unknown, code: FramingError['code'], message?: string) {
  const error = catchError(fn);
  expect(error).toBeInstanceOf(FramingError);
  expect((error as FramingError).code).toBe(code);
  if (message !== undefined) expect((error as FramingError).message).toBe(message);
  return error as FramingError;
}

describe('constants', () => {
  it('has a 5-byte header and a 16 MiB - 1 payload limit', () => {
    expect(FRAME_HEADER_SIZE).toBe(5);
    expect(MAX).toBe(16 * 1024 * 1024);
    expect(MAX_FRAME_PAYLOAD_LENGTH).toBe(MAX - 1);
  });
});

describe('encodeFrame / encodeFrameHeader', () => {
  it('writes the length including the type byte, big-endian', () => {
    const payload = Uint8Array.of(0xaa, 0xbb, 0xcc);
    expect(toHex(encodeFrame(MessageType.Ping, payload))).toBe('0000000441aabbcc');
    expect(toHex(encodeFrameHeader(MessageType.Ping, 3))).toBe('0000000441');
  });

  it('encodes an empty payload as L = 1', () => {
    expect(toHex(encodeFrame(MessageType.Pong, new Uint8Array(0)))).toBe('0000000142');
    expect(toHex(encodeFrameHeader(MessageType.Pong, 0))).toBe('0000000142');
  });

  it('returns one contiguous new buffer and does not alias the payload', () => {
    const payload = Uint8Array.of(1, 2, 3);
    const frame = encodeFrame(MessageType.AgentResponse, payload);
    expect(frame.byteOffset).toBe(0);
    expect(frame.buffer.byteLength).toBe(8);
    payload[0] = 9;
    expect(frame[5]).toBe(1);
  });

  it('accepts the largest payload a reader accepts (16 MiB - 1, L = 16 MiB)', () => {
    const payload = new Uint8Array(MAX - 1);
    payload[MAX - 2] = 0x7f;
    const frame = encodeFrame(MessageType.RequestBodyChunk, payload);
    expect(toHex(frame.subarray(0, 5))).toBe('0100000011');
    expect(frame.length).toBe(MAX + 4);
    expect(toHex(encodeFrameHeader(MessageType.RequestBodyChunk, MAX - 1))).toBe('0100000011');
    const [decoded] = decodeFrames(frame);
    expect(decoded!.payload.length).toBe(MAX - 1);
    expect(decoded!.payload[MAX - 2]).toBe(0x7f);
  });

  it('rejects a 16 MiB payload that Rust writers allow but Rust readers refuse', () => {
    const message =
      'payload of 16777216 bytes exceeds the 16777215-byte limit (frame length 16777217 > 16777216)';
    expectFramingError(
      () => encodeFrame(MessageType.RequestBodyChunk, new Uint8Array(MAX)),
      'FRAME_TOO_LARGE',
      message,
    );
    expectFramingError(
      () => encodeFrameHeader(MessageType.RequestBodyChunk, MAX),
      'FRAME_TOO_LARGE',
      message,
    );
    expectFramingError(() => encodeFrameHeader(0x10, 2 ** 32), 'FRAME_TOO_LARGE');
  });

  it('honours a lower maxFrameLength', () => {
    const options = { maxFrameLength: 10 };
    expect(encodeFrame(0x10, new Uint8Array(9), options)).toHaveLength(14);
    expectFramingError(
      () => encodeFrame(0x10, new Uint8Array(10), options),
      'FRAME_TOO_LARGE',
      'payload of 10 bytes exceeds the 9-byte limit (frame length 11 > 10)',
    );
    expect(toHex(encodeFrame(0x10, new Uint8Array(0), { maxFrameLength: 1 }))).toBe('0000000110');
  });

  it('writes every defined type', () => {
    for (const type of KNOWN_TYPES) {
      expect(encodeFrame(type, Uint8Array.of(1))[4]).toBe(type);
    }
  });

  it.each(UNKNOWN_TYPES)('rejects unknown type $hex', ({ type, hex }) => {
    expectFramingError(
      () => encodeFrame(type, Uint8Array.of(1)),
      'UNKNOWN_TYPE',
      `unknown message type ${hex}`,
    );
    expectFramingError(() => encodeFrameHeader(type, 0), 'UNKNOWN_TYPE');
  });

  it('rejects type values that are not a byte, even with a permissive acceptType', () => {
    const acceptType = () => true;
    for (const type of [-1, 256, 1.5, Number.NaN]) {
      expectFramingError(() => encodeFrame(type, Uint8Array.of(1), { acceptType }), 'UNKNOWN_TYPE');
    }
  });

  it('lets acceptType widen or narrow the accepted types', () => {
    const onlyF0 = { acceptType: (type: number) => type === 0xf0 };
    expect(toHex(encodeFrame(0xf0, new Uint8Array(0), onlyF0))).toBe('00000001f0');
    expectFramingError(
      () => encodeFrame(MessageType.Ping, new Uint8Array(0), onlyF0),
      'UNKNOWN_TYPE',
      'message type Ping (0x41) is not accepted here',
    );
  });

  it('rejects invalid options and lengths with RangeError', () => {
    for (const maxFrameLength of [0, -1, 1.5, 2 ** 32, Number.NaN]) {
      expect(() => encodeFrame(0x10, new Uint8Array(0), { maxFrameLength })).toThrow(RangeError);
    }
    for (const length of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => encodeFrameHeader(0x10, length)).toThrow(RangeError);
    }
  });
});

describe('FrameDecoder', () => {
  it('decodes L = 1 to an empty payload, whole or split', () => {
    const bytes = Uint8Array.of(0, 0, 0, 1, 0x41);
    const [frame] = new FrameDecoder().push(bytes);
    expect(frame).toEqual({ type: 0x41, payload: new Uint8Array(0) });
    expect(frame!.payload).toBeInstanceOf(Uint8Array);

    const decoder = new FrameDecoder();
    const frames = bytewise(bytes).flatMap((chunk) => decoder.push(chunk));
    expect(frames).toEqual([{ type: 0x41, payload: new Uint8Array(0) }]);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('rejects L = 0 as soon as the 4 length bytes arrive', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push(Uint8Array.of(0, 0, 0))).toEqual([]);
    expectFramingError(() => decoder.push(Uint8Array.of(0)), 'ZERO_LENGTH', 'zero-length frame');
    expectFramingError(() => new FrameDecoder().push(header(0, 0x10)), 'ZERO_LENGTH');
  });

  it('accepts L = max: buffers at most the frame, then returns it', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push(header(MAX, MessageType.RequestBodyChunk))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(5);
    const body = new Uint8Array(MAX - 1).fill(0x61);
    const half = MAX / 2;
    expect(decoder.push(body.subarray(0, half))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(5 + half);
    const frames = decoder.push(concat([body.subarray(half), Uint8Array.of(0, 0, 0)]));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.type).toBe(0x11);
    expect(frames[0]!.payload.length).toBe(MAX - 1);
    expect(frames[0]!.payload.every((byte) => byte === 0x61)).toBe(true);
    expect(decoder.bufferedBytes).toBe(3);
  });

  it('rejects L = max + 1 from the 4 length bytes alone, before the type byte', () => {
    const decoder = new FrameDecoder();
    const error = expectFramingError(
      () => decoder.push(header(MAX + 1)),
      'FRAME_TOO_LARGE',
      'frame length 16777217 exceeds the 16777216-byte limit',
    );
    expect(error.name).toBe('FramingError');
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('rejects the largest u32 length and honours a lower maxFrameLength', () => {
    expectFramingError(
      () => new FrameDecoder().push(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x10)),
      'FRAME_TOO_LARGE',
      'frame length 4294967295 exceeds the 16777216-byte limit',
    );
    const small = new FrameDecoder({ maxFrameLength: 10 });
    expect(small.push(concat([header(10, 0x10), new Uint8Array(9)]))[0]!.payload).toHaveLength(9);
    expectFramingError(
      () => small.push(header(11, 0x10)),
      'FRAME_TOO_LARGE',
      'frame length 11 exceeds the 10-byte limit',
    );
  });

  it('accepts every defined type byte', () => {
    const stream = concat(KNOWN_TYPES.map((type) => encodeFrame(type, Uint8Array.of(type))));
    const frames = decodeFrames(stream);
    expect(frames.map((frame) => frame.type)).toEqual(KNOWN_TYPES);
    expect(frames.map((frame) => frame.payload[0])).toEqual(KNOWN_TYPES);
  });

  it.each([0x03, 0x21, 0xf0, 0xff, 0x00, 0x7b].map(byteCase))(
    'rejects unknown type $hex at the type byte, before the payload',
    ({ type, hex }) => {
      const decoder = new FrameDecoder();
      expect(decoder.push(header(100))).toEqual([]);
      expect(decoder.bufferedBytes).toBe(4);
      expectFramingError(
        () => decoder.push(Uint8Array.of(type)),
        'UNKNOWN_TYPE',
        `unknown message type ${hex} (frame length 100)`,
      );
      expect(decoder.bufferedBytes).toBe(0);
      // Same when the header arrives in one chunk with the start of the payload.
      expectFramingError(
        () => new FrameDecoder().push(concat([header(100, type), new Uint8Array(10)])),
        'UNKNOWN_TYPE',
      );
    },
  );

  it('checks the length before the type byte', () => {
    expectFramingError(() => new FrameDecoder().push(header(MAX + 1, 0xff)), 'FRAME_TOO_LARGE');
    expectFramingError(() => new FrameDecoder().push(header(0, 0xff)), 'ZERO_LENGTH');
  });

  it('lets acceptType choose the accepted types', () => {
    const decoder = new FrameDecoder({ acceptType: (type) => type === 0xf0 });
    expect(decoder.push(Uint8Array.of(0, 0, 0, 2, 0xf0, 9))).toEqual([
      { type: 0xf0, payload: Uint8Array.of(9) },
    ]);
    expectFramingError(
      () => decoder.push(header(1, 0x10)),
      'UNKNOWN_TYPE',
      'message type RequestHeaders (0x10) is not accepted here (frame length 1)',
    );
  });

  it('returns several frames from one chunk, in order', () => {
    const stream = concat([
      encodeFrame(0x41, Uint8Array.of(1)),
      encodeFrame(0x42, new Uint8Array(0)),
      encodeFrame(0x20, Uint8Array.of(2, 3)),
    ]);
    expect(new FrameDecoder().push(stream)).toEqual([
      { type: 0x41, payload: Uint8Array.of(1) },
      { type: 0x42, payload: new Uint8Array(0) },
      { type: 0x20, payload: Uint8Array.of(2, 3) },
    ]);
  });

  it('reassembles a header split at every offset', () => {
    const frame = encodeFrame(0x20, Uint8Array.of(1, 2, 3, 4));
    const stream = concat([frame, frame]);
    for (let cut = 1; cut < stream.length; cut++) {
      const decoder = new FrameDecoder();
      const frames = [
        ...decoder.push(stream.subarray(0, cut)),
        ...decoder.push(stream.subarray(cut)),
      ];
      expect(frames).toHaveLength(2);
      for (const { type, payload } of frames) {
        expect(type).toBe(0x20);
        expect([...payload]).toEqual([1, 2, 3, 4]);
      }
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it('returns views into the chunk when a frame is whole, copies when it was split', () => {
    const chunk = encodeFrame(0x20, Uint8Array.of(1, 2, 3));
    const [whole] = new FrameDecoder().push(chunk);
    expect(whole!.payload.buffer).toBe(chunk.buffer);
    expect(whole!.payload.byteOffset).toBe(5);

    const decoder = new FrameDecoder();
    decoder.push(chunk.subarray(0, 6));
    const [split] = decoder.push(chunk.subarray(6));
    expect(split!.payload.buffer).not.toBe(chunk.buffer);
    expect([...split!.payload]).toEqual([1, 2, 3]);
  });

  it('reports buffered bytes of the incomplete frame', () => {
    const decoder = new FrameDecoder();
    expect(decoder.bufferedBytes).toBe(0);
    decoder.push(Uint8Array.of(0, 0));
    expect(decoder.bufferedBytes).toBe(2);
    decoder.push(Uint8Array.of(0, 11, 0x10, 1, 2, 3));
    expect(decoder.bufferedBytes).toBe(8);
    decoder.push(new Uint8Array(7));
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('stays failed after an error: push and finish throw DECODER_FAILED', () => {
    const decoder = new FrameDecoder();
    const first = expectFramingError(() => decoder.push(header(0, 0x10)), 'ZERO_LENGTH');
    const again = expectFramingError(
      () => decoder.push(encodeFrame(0x41, new Uint8Array(0))),
      'DECODER_FAILED',
    );
    expect(again.cause).toBe(first);
    expect(again.message).toContain('zero-length frame');
    expectFramingError(() => decoder.finish(), 'DECODER_FAILED');
    expectFramingError(() => decoder.push(new Uint8Array(0)), 'DECODER_FAILED');
  });

  it('finish() is quiet at a frame boundary and throws TRUNCATED mid-frame', () => {
    const fresh = new FrameDecoder();
    fresh.finish();
    fresh.push(encodeFrame(0x41, Uint8Array.of(1)));
    fresh.finish();

    const midHeader = new FrameDecoder();
    midHeader.push(Uint8Array.of(0, 0, 0));
    expectFramingError(
      () => midHeader.finish(),
      'TRUNCATED',
      'stream ended mid-frame: 3 of 5 header bytes received',
    );
    expectFramingError(() => midHeader.push(new Uint8Array(1)), 'DECODER_FAILED');

    const midPayload = new FrameDecoder();
    midPayload.push(concat([header(11, 0x10), new Uint8Array(4)]));
    expectFramingError(
      () => midPayload.finish(),
      'TRUNCATED',
      'stream ended mid-frame: 4 of 10 payload bytes received',
    );

    const headerOnly = new FrameDecoder();
    headerOnly.push(header(2, 0x10));
    expectFramingError(() => headerOnly.finish(), 'TRUNCATED');
  });

  it('accepts empty chunks and Buffers', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push(new Uint8Array(0))).toEqual([]);
    const frames = decoder.push(Buffer.from('000000024107', 'hex'));
    expect(frames).toHaveLength(1);
    expect([...frames[0]!.payload]).toEqual([7]);
  });

  it('rejects invalid options with RangeError', () => {
    for (const maxFrameLength of [0, -5, 0.5, 2 ** 32]) {
      expect(() => new FrameDecoder({ maxFrameLength })).toThrow(RangeError);
    }
  });

  it('decodeFrames throws TRUNCATED on a partial trailing frame', () => {
    const bytes = concat([encodeFrame(0x41, Uint8Array.of(1)), Uint8Array.of(0, 0)]);
    expectFramingError(() => decodeFrames(bytes), 'TRUNCATED');
    expect(decodeFrames(new Uint8Array(0))).toEqual([]);
  });

  it('isFramingError recognises framing errors only', () => {
    const error = catchError(() => new FrameDecoder().push(header(0)));
    expect(isFramingError(error)).toBe(true);
    expect(isFramingError(new Error('x'))).toBe(false);
    expect(
      isFramingError(Object.assign(new Error('y'), { name: 'FramingError', code: 'TRUNCATED' })),
    ).toBe(true);
    expect(isFramingError('FramingError')).toBe(false);
  });
});
