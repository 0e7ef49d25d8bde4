/**
 * Property tests: random and mutated bytes make every decoder either return a
 * value or throw AgentProtocolError('INVALID_MESSAGE') — never anything else.
 */
import { AgentProtocolError, EVENT_TYPE_NUMBERS, type EventType } from '@picket/protocol';
import fc from 'fast-check';
import { describe, test } from 'vitest';
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
  jsonCodec,
  type MessageCodec,
  msgpackCodec,
} from '../src/index.js';
import { payload, vectors } from './helpers.js';

const EVENT_TYPES = Object.keys(EVENT_TYPE_NUMBERS) as EventType[];

const codecs: [string, MessageCodec][] = [
  ['json', createMessageCodec('json')],
  ['msgpack', createMessageCodec('msgpack')],
  ['cbor', createMessageCodec('cbor')],
];

// ---------------------------------------------------------------- robustness

type Decode = [string, (bytes: Uint8Array) => unknown];

const decoders: Decode[] = [
  ...codecs.flatMap(([name, c]): Decode[] => [
    ...EVENT_TYPES.map((t): Decode => [`${name}.decodeEvent(${t})`, (b) => c.decodeEvent(t, b)]),
    [`${name}.decodeResponse`, (b) => c.decodeResponse(b)],
    [`${name}.decodeHealth`, (b) => c.decodeHealth(b)],
    [`${name}.decodeMetrics`, (b) => c.decodeMetrics(b)],
    [`${name}.decodeConfigUpdate`, (b) => c.decodeConfigUpdate(b)],
    [`${name}.decodeFlowControl`, (b) => c.decodeFlowControl(b)],
  ]),
  ['decodeHandshakeRequest', decodeHandshakeRequest],
  ['decodeHandshakeResponse', decodeHandshakeResponse],
  ['decodeRegistrationRequest', decodeRegistrationRequest],
  ['decodeRegistrationResponse', decodeRegistrationResponse],
  ['decodeCancel', decodeCancel],
  ['decodePing', decodePing],
  ['decodeV1Request', decodeV1Request],
  ['decodeV1Response', decodeV1Response],
  ['jsonCodec.decode', (b) => jsonCodec.decode(b)],
  ['msgpackCodec.decode', (b) => msgpackCodec.decode(b)],
  ['cborCodec.decode', (b) => cborCodec.decode(b)],
];

/** Runs every decoder; anything thrown must be AgentProtocolError INVALID_MESSAGE. */
function decodeAll(bytes: Uint8Array): void {
  for (const [name, decode] of decoders) {
    try {
      decode(bytes);
    } catch (err) {
      if (!(err instanceof AgentProtocolError) || err.code !== 'INVALID_MESSAGE') {
        throw new Error(
          `${name} threw ${String(err)} (${(err as { code?: string }).code ?? 'no code'})`,
        );
      }
    }
  }
}

const goldenPayloads = vectors.map((v) => payload(v.id));

const mutation = fc.record({
  kind: fc.constantFrom('flip', 'set', 'insert', 'delete', 'truncate'),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
});

function mutate(
  source: Uint8Array,
  edits: { kind: string; at: number; byte: number }[],
): Uint8Array {
  let b = Array.from(source);
  for (const e of edits) {
    const i = b.length === 0 ? 0 : e.at % b.length;
    if (e.kind === 'flip') b[i] = (b[i] ?? 0) ^ (1 << (e.byte % 8));
    else if (e.kind === 'set') b[i] = e.byte;
    else if (e.kind === 'insert') b.splice(i, 0, e.byte);
    else if (e.kind === 'delete') b.splice(i, 1);
    else b = b.slice(0, i);
  }
  return Uint8Array.from(b);
}

describe('decoders never throw anything but INVALID_MESSAGE', () => {
  test('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), (bytes) => decodeAll(bytes)),
      { numRuns: 400 },
    );
  });

  test('mutated golden vectors', () => {
    fc.assert(
      fc.property(
        fc.nat(goldenPayloads.length - 1),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (i, edits) => decodeAll(mutate(goldenPayloads[i] as Uint8Array, edits)),
      ),
      { numRuns: 500 },
    );
  });

  test('well-formed JSON / msgpack / CBOR of arbitrary values and near-miss shapes', () => {
    const nearMiss = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.dictionary(
        fc.constantFrom(
          'version',
          'decision',
          'audit',
          'metadata',
          'correlation_id',
          'data',
          'headers',
          'update_type',
          'capabilities',
          'counters',
          'toString',
          'valueOf',
          'constructor',
        ),
        fc.jsonValue({ maxDepth: 2 }),
      ),
      fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 12 }),
    );
    fc.assert(
      fc.property(nearMiss, (value) => {
        decodeAll(jsonCodec.encode(value));
        decodeAll(msgpackCodec.encode(value));
        decodeAll(cborCodec.encode(value));
      }),
      { numRuns: 250 },
    );
  });

  test('deeply nested input (stack exhaustion in a parser) is still INVALID_MESSAGE', () => {
    decodeAll(new Uint8Array(100_000).fill(0x91)); // msgpack [[[[…
    decodeAll(new Uint8Array(100_000).fill(0x81)); // CBOR [[[[…
    decodeAll(new TextEncoder().encode('['.repeat(100_000)));
  });
});
