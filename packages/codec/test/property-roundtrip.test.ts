/** Property tests: random valid messages round-trip through every encoding, with Rust's wire shape. */
import {
  type AgentResponse,
  EVENT_TYPE_NUMBERS,
  type EventType,
  ZENTINEL_PROXY_ID,
} from '@picket/protocol';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  cborCodec,
  createMessageCodec,
  decodeCancel,
  decodeHandshakeRequest,
  decodeHandshakeResponse,
  decodePing,
  decodeRegistrationRequest,
  decodeRegistrationResponse,
  decodeV1Request,
  decodeV1Response,
  encodeCancel,
  encodeHandshakeRequest,
  encodeHandshakeResponse,
  encodePing,
  encodeRegistrationRequest,
  encodeRegistrationResponse,
  encodeV1Request,
  encodeV1Response,
  type MessageCodec,
  msgpackCodec,
  normalizeF32,
} from '../src/index.js';
import * as arb from './arbitraries.js';
import { referenceEventJson, text } from './helpers.js';

const RUNS = 120;
const EVENT_TYPES = Object.keys(EVENT_TYPE_NUMBERS) as EventType[];

const codecs: [string, MessageCodec][] = [
  ['json', createMessageCodec('json')],
  ['msgpack', createMessageCodec('msgpack')],
  ['msgpack+binaryBodies', createMessageCodec('msgpack', { binaryBodies: true })],
  ['cbor', createMessageCodec('cbor')],
];

/** What a valid response reads back as: confidence is an f32 on the wire. */
function expectedResponse(r: AgentResponse): AgentResponse {
  const c = r.audit.confidence;
  return { ...r, audit: { ...r.audit, confidence: c === null ? null : normalizeF32(c) } };
}

/** The id a reader finds: Rust's proxy (and ours) injects/overwrites the call's id. */
function cidOf(type: EventType, e: unknown): string {
  return type === 'request_headers'
    ? (e as { metadata: { correlation_id: string } }).metadata.correlation_id
    : (e as { correlation_id: string }).correlation_id;
}

describe.each(codecs)('%s round trips', (_name, codec) => {
  test.each(EVENT_TYPES)('event %s', (type) => {
    fc.assert(
      fc.property(arb.events[type], (event) => {
        const bytes = codec.encodeEvent(type, event, cidOf(type, event));
        expect(codec.decodeEvent(type, bytes)).toEqual(event);
      }),
      { numRuns: RUNS },
    );
  });

  test('AgentResponse', () => {
    fc.assert(
      fc.property(arb.agentResponse, (r) => {
        expect(codec.decodeResponse(codec.encodeResponse(r))).toEqual(expectedResponse(r));
      }),
      { numRuns: RUNS * 2 },
    );
  });

  test('control messages', () => {
    fc.assert(
      fc.property(arb.health, arb.metrics, arb.configUpdate, fc.integer(), (h, m, u, action) => {
        expect(codec.decodeHealth(codec.encodeHealth(h))).toEqual(h);
        expect(codec.decodeMetrics(codec.encodeMetrics(m))).toEqual(m);
        expect(codec.decodeConfigUpdate(codec.encodeConfigUpdate(u))).toEqual(u);
        expect(codec.decodeFlowControl(codec.encodeFlowControl({ action }))).toEqual({ action });
      }),
      { numRuns: RUNS },
    );
  });
});

describe('wire shape properties', () => {
  test('JSON events equal the reference model of Rust (Value → insert correlation_id → sorted text)', () => {
    for (const type of EVENT_TYPES) {
      fc.assert(
        fc.property(arb.events[type], arb.text, (event, cid) => {
          expect(text(codecs[0]![1].encodeEvent(type, event, cid))).toBe(
            referenceEventJson(type, event, cid),
          );
        }),
        { numRuns: 60 },
      );
    }
  });

  test('msgpack events are maps whose every key appears once, correlation_id first and equal to the call id', () => {
    for (const [name, codec] of codecs.slice(1)) {
      for (const type of EVENT_TYPES) {
        fc.assert(
          fc.property(arb.events[type], arb.text, (event, cid) => {
            const bytes = codec.encodeEvent(type, event, cid);
            const raw = (name === 'cbor' ? cborCodec : msgpackCodec).decode(bytes) as Record<
              string,
              unknown
            >;
            const declared =
              name === 'cbor' ? (bytes[0] as number) - 0xa0 : (bytes[0] as number) - 0x80;
            expect(Object.keys(raw)).toHaveLength(declared);
            expect(Object.keys(raw)[0]).toBe('correlation_id');
            expect(raw.correlation_id).toBe(cid);
            if (type === 'request_headers') expect(Array.isArray(raw.metadata)).toBe(false);
          }),
          { numRuns: 30 },
        );
      }
    }
  });

  test('always-JSON messages round-trip', () => {
    fc.assert(
      fc.property(
        arb.capabilities,
        fc.array(arb.encodingName, { maxLength: 3 }),
        arb.text,
        fc.option(arb.text, { nil: null }),
        arb.u32,
        arb.u64,
        (caps, encodings, id, err, n, big) => {
          const hreq = {
            supported_versions: [2, n],
            proxy_id: id,
            proxy_version: '1',
            config: null,
            supported_encodings: encodings,
          };
          expect(decodeHandshakeRequest(encodeHandshakeRequest(hreq))).toEqual(hreq);
          const hres = {
            protocol_version: n,
            capabilities: caps,
            success: err === null,
            error: err,
            encoding: encodings[0] ?? 'json',
          };
          expect(decodeHandshakeResponse(encodeHandshakeResponse(hres))).toEqual(hres);
          const withExt = { ...hres, picket: { version: 1, binary_bodies: big % 2 === 0 } };
          expect(decodeHandshakeResponse(encodeHandshakeResponse(withExt))).toEqual(withExt);
          const rreq = {
            protocol_version: 2,
            agent_id: id,
            capabilities: caps,
            auth_token: err,
            metadata: { k: [n] },
          };
          expect(decodeRegistrationRequest(encodeRegistrationRequest(rreq))).toEqual(rreq);
          const rres = {
            success: true,
            error: err,
            proxy_id: ZENTINEL_PROXY_ID,
            proxy_version: id,
            connection_id: `${id}-${big.toString(16)}`,
          };
          expect(decodeRegistrationResponse(encodeRegistrationResponse(rres))).toEqual(rres);
          expect(
            decodeCancel(encodeCancel({ correlation_id: id, reason: n % 6, timestamp_ms: big })),
          ).toEqual({
            correlation_id: id,
            reason: n % 6,
            timestamp_ms: big,
          });
          expect(decodePing(encodePing({ sequence: big, timestamp_ms: n }))).toEqual({
            sequence: big,
            timestamp_ms: n,
          });
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('v1 requests and responses round-trip', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...EVENT_TYPES.filter((t) => t !== 'configure')),
        fc.nat(),
        (type, seed) => {
          const [event] = fc.sample(arb.events[type] as fc.Arbitrary<unknown>, {
            seed,
            numRuns: 1,
          });
          const req = { version: 1, event_type: type, payload: event } as Parameters<
            typeof encodeV1Request
          >[0];
          expect(decodeV1Request(encodeV1Request(req))).toEqual(req);
        },
      ),
      { numRuns: 80 },
    );
    fc.assert(
      fc.property(arb.agentResponse, (r) => {
        expect(decodeV1Response(encodeV1Response(r))).toEqual(expectedResponse(r));
      }),
      { numRuns: 80 },
    );
  });
});
