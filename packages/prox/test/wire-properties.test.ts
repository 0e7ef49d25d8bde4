/** Properties of the wire layer over arbitrary input: no crash but a named error, exact round trips. */
import { AgentProtocolError } from '@picket/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeAuthorizeResult,
  decodeConnInfo,
  decodeConnResult,
  decodeDisconnectInfo,
  decodeEnvelope,
  decodeRequestInfo,
  decodeResponseModResult,
  decodeResponsePair,
  encodeAuthorizeResult,
  encodeRequestInfo,
  ProxFrameReader,
} from '../src/index.js';

const decoders = [
  decodeEnvelope,
  decodeRequestInfo,
  decodeAuthorizeResult,
  decodeResponsePair,
  decodeResponseModResult,
  decodeConnInfo,
  decodeConnResult,
  decodeDisconnectInfo,
];

/** Bytes that look like msgpack maps more often than uniform noise does. */
const payload = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc
    .tuple(fc.integer({ min: 0x80, max: 0x8f }), fc.uint8Array({ maxLength: 64 }))
    .map(([head, rest]) => Uint8Array.of(head, ...rest)),
);

describe('wire properties', () => {
  it('every decoder returns or throws an INVALID_MESSAGE AgentProtocolError, whatever the bytes', () => {
    fc.assert(
      fc.property(payload, (bytes) => {
        for (const decode of decoders) {
          try {
            decode(bytes);
          } catch (err) {
            expect(err).toBeInstanceOf(AgentProtocolError);
            expect((err as AgentProtocolError).code).toBe('INVALID_MESSAGE');
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('the frame reader never throws anything but AgentProtocolError, and yields what fits', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 32 }), { maxLength: 8 }), (chunks) => {
        const reader = new ProxFrameReader();
        try {
          for (const c of chunks)
            for (const f of reader.push(c)) expect(f.length).toBeGreaterThan(0);
          reader.end();
        } catch (err) {
          expect(err).toBeInstanceOf(AgentProtocolError);
        }
      }),
    );
  });

  const text = fc.string({ maxLength: 20 });
  const map = fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), {
    maxKeys: 4,
  });

  it('RequestInfo round-trips exactly', () => {
    fc.assert(
      fc.property(
        fc.record({
          routeId: text,
          method: text,
          path: text,
          query: text,
          domain: text,
          host: text,
          proto: text,
          remoteAddr: text,
          contentLength: fc.oneof(fc.constantFrom(-1, 0), fc.maxSafeNat()),
          headers: map,
          body: fc.option(fc.uint8Array({ minLength: 1, maxLength: 16 }), { nil: undefined }),
          matchDomain: text,
          matchGlob: text,
          matchPath: text,
          vars: map,
          target: text,
        }),
        (info) => {
          expect(decodeRequestInfo(encodeRequestInfo(info))).toEqual(info);
        },
      ),
    );
  });

  it('AuthorizeResult round-trips exactly (speed limits as float64)', () => {
    fc.assert(
      fc.property(
        fc.record({
          allow: fc.boolean(),
          drop: fc.boolean(),
          fallback: fc.boolean(),
          status: fc.oneof(fc.constant(0), fc.integer({ min: 100, max: 599 })),
          body: text,
          headers: map,
          speedLimit: fc.option(
            fc.record({
              downloadMbps: fc.double({ min: 0, max: 1e6, noNaN: true }),
              uploadMbps: fc.double({ min: 0, max: 1e6, noNaN: true }),
              groupKey: text,
            }),
            { nil: undefined },
          ),
          cleanQuery: fc.boolean(),
          rewritePath: text,
        }),
        (r) => {
          const back = decodeAuthorizeResult(encodeAuthorizeResult(r));
          // -0 is written as 0 by omitempty, like Go
          const sp = r.speedLimit && {
            ...r.speedLimit,
            downloadMbps: r.speedLimit.downloadMbps || 0,
            uploadMbps: r.speedLimit.uploadMbps || 0,
          };
          expect(back).toEqual({ ...r, speedLimit: sp });
        },
      ),
    );
  });
});
