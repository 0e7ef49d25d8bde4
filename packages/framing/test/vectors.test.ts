import { describe, expect, it } from 'vitest';
import {
  decodeFrames,
  decodeV1Frames,
  encodeFrame,
  encodeFrameHeader,
  encodeV1Frame,
  encodeV1FrameHeader,
  FrameDecoder,
  FramingError,
  V1FrameDecoder,
} from '../src/index.js';
import { bytewise, catchError, concat, fromHex, toHex, vectors } from './helpers.js';

// Expected type bytes, written down from the spec's vector titles (not read from the bytes).
const EXPECTED_TYPE: Record<string, number> = {
  V1: 0x01,
  V1b: 0x01,
  V2: 0x02,
  V3: 0x10,
  V4: 0x10,
  V4b: 0x10,
  V5: 0x20,
  V6a: 0x20,
  V6b: 0x20,
  V6c: 0x20,
  V7: 0x41,
  V7b: 0x42,
  V8: 0x40,
  V9a: 0x01,
  V9b: 0x02,
  V9c: 0x02,
  V11a: 0x11,
  V11b: 0x11,
  V11c: 0x11,
  V11d: 0x11,
};

const typed = vectors.filter((vector) => vector.kind !== 'v1');
const v1 = vectors.filter((vector) => vector.kind === 'v1');

describe('golden vectors (spec Part B)', () => {
  it('covers every UDS, reverse and v1 vector', () => {
    expect(vectors.map((vector) => vector.id)).toEqual([
      ...['V1', 'V1b', 'V2', 'V3', 'V4', 'V4b', 'V5', 'V6a', 'V6b', 'V6c', 'V7', 'V7b', 'V8'],
      ...['V9a', 'V9b', 'V9c', 'V10a', 'V10b', 'V11a', 'V11b', 'V11c', 'V11d'],
    ]);
    expect(typed).toHaveLength(20);
    expect(v1).toHaveLength(2);
  });

  describe.each(typed)('$id ($kind): $title', (vector) => {
    const bytes = fromHex(vector.frameHex);

    it('decodes in one chunk to the right type and payload', () => {
      const decoder = new FrameDecoder();
      const frames = decoder.push(bytes);
      expect(frames).toHaveLength(1);
      const [frame] = frames;
      expect(frame!.type).toBe(EXPECTED_TYPE[vector.id]);
      expect(frame!.payload.length).toBe(vector.payloadLength);
      expect(frame!.payload.length).toBe(bytes.length - 5);
      if (vector.payloadText !== undefined) {
        expect(new TextDecoder().decode(frame!.payload)).toBe(vector.payloadText);
      }
      expect(decoder.bufferedBytes).toBe(0);
      decoder.finish();
    });

    it('decodes one byte at a time to the same frame', () => {
      const decoder = new FrameDecoder();
      const frames = bytewise(bytes).flatMap((chunk) => decoder.push(chunk));
      expect(frames).toHaveLength(1);
      expect(frames[0]!.type).toBe(EXPECTED_TYPE[vector.id]);
      expect(toHex(frames[0]!.payload)).toBe(vector.frameHex.slice(10));
      decoder.finish();
    });

    it('re-encodes to identical bytes', () => {
      const [frame] = decodeFrames(bytes);
      expect(toHex(encodeFrame(frame!.type, frame!.payload))).toBe(vector.frameHex);
      const header = encodeFrameHeader(frame!.type, frame!.payload.length);
      expect(toHex(concat([header, frame!.payload]))).toBe(vector.frameHex);
    });
  });

  describe.each(v1)('$id (v1): $title', (vector) => {
    const bytes = fromHex(vector.frameHex);

    it('decodes (whole and byte by byte) and re-encodes to identical bytes', () => {
      const [payload, ...rest] = decodeV1Frames(bytes);
      expect(rest).toEqual([]);
      expect(payload!.length).toBe(vector.payloadLength);
      expect(new TextDecoder().decode(payload)).toBe(vector.payloadText);
      expect(toHex(encodeV1Frame(payload!))).toBe(vector.frameHex);
      expect(toHex(concat([encodeV1FrameHeader(payload!.length), payload!]))).toBe(vector.frameHex);

      const decoder = new V1FrameDecoder();
      const payloads = bytewise(bytes).flatMap((chunk) => decoder.push(chunk));
      expect(payloads.map(toHex)).toEqual([toHex(payload!)]);
      decoder.finish();
    });

    it('is rejected by the v2 decoder: its first JSON byte is not a type', () => {
      // What a v2-only Rust proxy does with a v1 frame: 0x7b ("{") is an unknown type.
      const error = catchError(() => new FrameDecoder().push(bytes));
      expect(error).toBeInstanceOf(FramingError);
      expect((error as FramingError).code).toBe('UNKNOWN_TYPE');
      expect((error as FramingError).message).toContain('0x7b');
    });
  });

  it('decodes all UDS and reverse vectors sent back to back as one stream', () => {
    const stream = concat(typed.map((vector) => fromHex(vector.frameHex)));
    const frames = decodeFrames(stream);
    expect(frames.map((frame) => frame.type)).toEqual(typed.map((v) => EXPECTED_TYPE[v.id]));
    expect(frames.map((frame) => frame.payload.length)).toEqual(typed.map((v) => v.payloadLength));
    const reencoded = concat(frames.map((frame) => encodeFrame(frame.type, frame.payload)));
    expect(toHex(reencoded)).toBe(toHex(stream));
  });

  it('decodes both v1 vectors back to back', () => {
    const stream = concat(v1.map((vector) => fromHex(vector.frameHex)));
    const payloads = decodeV1Frames(stream);
    expect(payloads.map((payload) => new TextDecoder().decode(payload))).toEqual(
      v1.map((vector) => vector.payloadText),
    );
  });
});
