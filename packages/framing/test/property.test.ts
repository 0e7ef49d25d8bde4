import { MAX_UDS_FRAME_LENGTH, MAX_V1_MESSAGE_SIZE, MessageType } from '@picket/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  encodeFrame,
  encodeV1Frame,
  type Frame,
  FrameDecoder,
  FramingError,
  type FramingErrorCode,
  V1FrameDecoder,
} from '../src/index.js';
import { chunkify, concat, fromHex, header, toHex, vectors } from './helpers.js';

const KNOWN_TYPES: number[] = Object.values(MessageType);
const isKnown = (type: number) => KNOWN_TYPES.includes(type);

interface Outcome {
  frames: string[];
  error?: FramingErrorCode;
}

/** Obviously-correct, non-streaming parser used as the model. */
function reference(bytes: Uint8Array, typed: boolean, limit: number): Outcome {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frames: string[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    if (bytes.length - pos < 4) return { frames, error: 'TRUNCATED' };
    const length = view.getUint32(pos);
    if (length === 0) return { frames, error: 'ZERO_LENGTH' };
    if (length > limit) return { frames, error: 'FRAME_TOO_LARGE' };
    pos += 4;
    let type = -1;
    if (typed) {
      if (pos >= bytes.length) return { frames, error: 'TRUNCATED' };
      type = bytes[pos]!;
      if (!isKnown(type)) return { frames, error: 'UNKNOWN_TYPE' };
      pos += 1;
    }
    const payloadLength = typed ? length - 1 : length;
    if (bytes.length - pos < payloadLength) return { frames, error: 'TRUNCATED' };
    frames.push(`${type}:${toHex(bytes.subarray(pos, pos + payloadLength))}`);
    pos += payloadLength;
  }
  return { frames };
}

type AnyDecoder = {
  push(chunk: Uint8Array): (Frame | Uint8Array)[];
  finish(): void;
  readonly bufferedBytes: number;
};

const describeItem = (item: Frame | Uint8Array) =>
  item instanceof Uint8Array ? `-1:${toHex(item)}` : `${item.type}:${toHex(item.payload)}`;

/** Streams `chunks` through `decoder`, checking the buffering bound after every push. */
function stream(decoder: AnyDecoder, chunks: Uint8Array[], maxBuffered: number): Outcome {
  const frames: string[] = [];
  const fail = (error: unknown): Outcome => {
    // Only FramingError may escape, and the decoder must then stay failed and empty.
    expect(error).toBeInstanceOf(FramingError);
    expect(decoder.bufferedBytes).toBe(0);
    expect(() => decoder.push(Uint8Array.of(0))).toThrow(
      expect.objectContaining({ code: 'DECODER_FAILED' }),
    );
    return { frames, error: (error as FramingError).code };
  };
  for (const chunk of chunks) {
    try {
      frames.push(...decoder.push(chunk).map(describeItem));
    } catch (error) {
      return fail(error);
    }
    expect(decoder.bufferedBytes).toBeGreaterThanOrEqual(0);
    expect(decoder.bufferedBytes).toBeLessThanOrEqual(maxBuffered);
  }
  try {
    decoder.finish();
  } catch (error) {
    return fail(error);
  }
  return { frames };
}

/** Same error as the model, and the frames seen are the model's (or a prefix, on error). */
function expectMatchesModel(actual: Outcome, expected: Outcome): void {
  expect(actual.error).toBe(expected.error);
  if (expected.error === undefined) {
    expect(actual.frames).toEqual(expected.frames);
  } else {
    // Frames completed in the same push as the error are dropped with it.
    expect(expected.frames.slice(0, actual.frames.length)).toEqual(actual.frames);
  }
}

const cutsArb = fc.array(fc.nat(), { maxLength: 40 });
const frameArb = fc.record({
  type: fc.constantFrom(...KNOWN_TYPES),
  payload: fc.uint8Array({ maxLength: 300 }),
});
const limitArb = fc.oneof(
  fc.constant(MAX_UDS_FRAME_LENGTH),
  fc.integer({ min: 1, max: 64 }),
  // Not up to 2^32 - 1: a random length under such a limit would pre-size a huge buffer.
  fc.integer({ min: 1, max: 1 << 20 }),
);
// Byte soup that is mostly near-valid: real frames, bare headers with any length/type, garbage.
const segmentArb = fc.oneof(
  frameArb.map(({ type, payload }) => encodeFrame(type, payload)),
  fc
    .tuple(fc.integer({ min: 0, max: 600 }), fc.integer({ min: 0, max: 255 }))
    .map(([length, type]) => header(length, type)),
  fc.uint8Array({ maxLength: 12 }),
);
const typedVectors = vectors.filter((vector) => vector.kind !== 'v1').map((v) => v.frameHex);
const v1Vectors = vectors.filter((vector) => vector.kind === 'v1').map((v) => v.frameHex);
const mutationsArb = fc.array(
  fc.record({ index: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  { minLength: 1, maxLength: 6 },
);

function mutate(bytes: Uint8Array, mutations: { index: number; byte: number }[]): Uint8Array {
  const out = bytes.slice();
  for (const { index, byte } of mutations) out[index % out.length] = byte;
  return out;
}

describe('FrameDecoder properties', () => {
  it('any chunking of any sequence of valid frames yields the same frames', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 25 }), cutsArb, (frames, cuts) => {
        const bytes = concat(frames.map(({ type, payload }) => encodeFrame(type, payload)));
        const expected = frames.map(({ type, payload }) => `${type}:${toHex(payload)}`);
        const outcome = stream(new FrameDecoder(), chunkify(bytes, cuts), MAX_UDS_FRAME_LENGTH + 5);
        expect(outcome).toEqual({ frames: expected });
      }),
      { numRuns: 300 },
    );
  });

  it('one byte at a time and all at once agree with the model', () => {
    fc.assert(
      fc.property(fc.array(segmentArb, { maxLength: 12 }), (segments) => {
        const bytes = concat(segments);
        const expected = reference(bytes, true, MAX_UDS_FRAME_LENGTH);
        const bound = MAX_UDS_FRAME_LENGTH + 5;
        expectMatchesModel(stream(new FrameDecoder(), [bytes], bound), expected);
        const single = chunkify(
          bytes,
          Array.from(bytes, (_, index) => index),
        );
        expectMatchesModel(stream(new FrameDecoder(), single, bound), expected);
      }),
      { numRuns: 300 },
    );
  });

  it('near-valid byte soup, any chunking, any limit: only FramingError, bounded buffering', () => {
    fc.assert(
      fc.property(
        fc.array(segmentArb, { maxLength: 12 }),
        cutsArb,
        limitArb,
        (segments, cuts, limit) => {
          const bytes = concat(segments);
          const decoder = new FrameDecoder({ maxFrameLength: limit });
          const outcome = stream(decoder, chunkify(bytes, cuts), limit + 5);
          expectMatchesModel(outcome, reference(bytes, true, limit));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('random bytes: only FramingError, bounded buffering', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), cutsArb, limitArb, (bytes, cuts, limit) => {
        const decoder = new FrameDecoder({ maxFrameLength: limit });
        const outcome = stream(decoder, chunkify(bytes, cuts), limit + 5);
        expectMatchesModel(outcome, reference(bytes, true, limit));
      }),
      { numRuns: 500 },
    );
  });

  it('mutated and truncated golden vectors: only FramingError, bounded buffering', () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray(typedVectors, { minLength: 1 }),
        mutationsArb,
        fc.option(fc.nat()),
        cutsArb,
        (hexes, mutations, truncateAt, cuts) => {
          const whole = mutate(concat(hexes.map(fromHex)), mutations);
          const bytes =
            truncateAt === null ? whole : whole.subarray(0, truncateAt % (whole.length + 1));
          const outcome = stream(
            new FrameDecoder(),
            chunkify(bytes, cuts),
            MAX_UDS_FRAME_LENGTH + 5,
          );
          expectMatchesModel(outcome, reference(bytes, true, MAX_UDS_FRAME_LENGTH));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('V1FrameDecoder properties', () => {
  const payloadArb = fc.uint8Array({ minLength: 1, maxLength: 300 });
  const v1SegmentArb = fc.oneof(
    payloadArb.map((payload) => encodeV1Frame(payload)),
    fc.integer({ min: 0, max: 600 }).map((length) => header(length)),
    fc.uint8Array({ maxLength: 12 }),
  );

  it('any chunking of any sequence of valid messages yields the same payloads', () => {
    fc.assert(
      fc.property(fc.array(payloadArb, { maxLength: 25 }), cutsArb, (payloads, cuts) => {
        const bytes = concat(payloads.map((payload) => encodeV1Frame(payload)));
        const outcome = stream(
          new V1FrameDecoder(),
          chunkify(bytes, cuts),
          MAX_V1_MESSAGE_SIZE + 4,
        );
        expect(outcome).toEqual({ frames: payloads.map((payload) => `-1:${toHex(payload)}`) });
      }),
      { numRuns: 300 },
    );
  });

  it('byte soup and random bytes, any chunking, any limit: matches the model', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(v1SegmentArb, { maxLength: 12 }).map(concat),
          fc.uint8Array({ maxLength: 400 }),
        ),
        cutsArb,
        limitArb,
        (bytes, cuts, limit) => {
          const decoder = new V1FrameDecoder({ maxMessageSize: limit });
          const outcome = stream(decoder, chunkify(bytes, cuts), limit + 4);
          expectMatchesModel(outcome, reference(bytes, false, limit));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('mutated golden vectors: only FramingError, bounded buffering', () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray(v1Vectors, { minLength: 1 }),
        mutationsArb,
        cutsArb,
        (hexes, mutations, cuts) => {
          const bytes = mutate(concat(hexes.map(fromHex)), mutations);
          const outcome = stream(
            new V1FrameDecoder(),
            chunkify(bytes, cuts),
            MAX_V1_MESSAGE_SIZE + 4,
          );
          expectMatchesModel(outcome, reference(bytes, false, MAX_V1_MESSAGE_SIZE));
        },
      ),
      { numRuns: 300 },
    );
  });
});
