import { createMessageCodec, type MessageCodec } from '@picket/codec';
import type { Encoding } from '@picket/protocol';
import {
  bodyChunkEvent,
  ENCODINGS,
  echoLikeResponse,
  requestHeadersEvent,
  responseHeadersEvent,
} from '../fixtures.js';
import { median, percentile } from '../stats.js';
import type { BenchConfig, Chart, Row, Scenario } from '../types.js';

const ID = 'codec';
/** Operations timed together (one hrtime pair per batch keeps the clock out of the numbers). */
const BATCH = 32;

interface MessageCase {
  label: string;
  /** which side encodes → decodes it */
  direction: string;
  encode(codec: MessageCodec): Uint8Array;
  decode(codec: MessageCodec, bytes: Uint8Array): unknown;
}

const HEADERS = requestHeadersEvent('req-1');
const BODY = bodyChunkEvent(4096, 'req-1');
const RESPONSE_HEADERS = responseHeadersEvent('req-1');
const RESPONSE = echoLikeResponse('req-1');

const CASES: readonly MessageCase[] = [
  {
    label: 'RequestHeaders (20 headers)',
    direction: 'proxy → agent',
    encode: (c) => c.encodeEvent('request_headers', HEADERS, 'req-1'),
    decode: (c, b) => c.decodeEvent('request_headers', b),
  },
  {
    label: 'RequestBodyChunk (4 KiB)',
    direction: 'proxy → agent',
    encode: (c) => c.encodeEvent('request_body_chunk', BODY, 'req-1'),
    decode: (c, b) => c.decodeEvent('request_body_chunk', b),
  },
  {
    label: 'ResponseHeaders (8 headers)',
    direction: 'proxy → agent',
    encode: (c) => c.encodeEvent('response_headers', RESPONSE_HEADERS, 'req-1'),
    decode: (c, b) => c.decodeEvent('response_headers', b),
  },
  {
    label: 'AgentResponse (5 header ops)',
    direction: 'agent → proxy',
    encode: (c) => c.encodeResponse(RESPONSE),
    decode: (c, b) => c.decodeResponse(b),
  },
];

interface Variant {
  name: string;
  encoding: Encoding;
  codec: MessageCodec;
}

const VARIANTS: readonly Variant[] = [
  ...ENCODINGS.map((e) => ({
    name: e,
    encoding: e,
    codec: createMessageCodec(e, { binaryBodies: true }),
  })),
  {
    name: 'msgpack (Rust peer)',
    encoding: 'msgpack' as const,
    codec: createMessageCodec('msgpack', { binaryBodies: false }),
  },
];

let sink: unknown;

/** Per-operation times (ns) of `op`, measured in batches for `ms`. */
function time(op: () => unknown, ms: number): number[] {
  const out: number[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) sink = op();
    out.push(Number(process.hrtime.bigint() - t0) / BATCH);
  }
  return out;
}

interface Cell {
  encodeNs: number[];
  decodeNs: number[];
  roundTripNs: number[];
  bytes: number;
}

/**
 * Scenario 7: encode and decode cost per message type and encoding, in-process,
 * to explain which encoding a picket proxy should offer first.
 */
export const codecScenario: Scenario = {
  id: ID,
  title: 'Codec micro-benchmarks per message type',
  async run(config: BenchConfig) {
    const phaseMs = Math.max(30, Math.round(config.durationMs / 4));
    const rows: Row[] = [];
    const charts: Chart[] = [];
    for (const [ci, mc] of CASES.entries()) {
      const variants = VARIANTS.filter(
        (v) => v.name !== 'msgpack (Rust peer)' || mc.label.startsWith('RequestBodyChunk'),
      );
      const cells = new Map<string, Cell>();
      for (const v of variants) {
        const bytes = mc.encode(v.codec);
        mc.decode(v.codec, bytes); // validates the case once
        // warm up both directions
        time(() => mc.encode(v.codec), Math.min(100, phaseMs));
        time(() => mc.decode(v.codec, bytes), Math.min(100, phaseMs));
        cells.set(v.name, { encodeNs: [], decodeNs: [], roundTripNs: [], bytes: bytes.length });
      }
      for (let r = 0; r < config.reps; r++) {
        for (const v of variants) {
          const cell = cells.get(v.name) as Cell;
          const bytes = mc.encode(v.codec);
          const enc = time(() => mc.encode(v.codec), phaseMs);
          const dec = time(() => mc.decode(v.codec, bytes), phaseMs);
          cell.encodeNs.push(median(enc));
          cell.decodeNs.push(median(dec));
          const n = Math.min(enc.length, dec.length);
          for (let i = 0; i < n; i++)
            cell.roundTripNs.push((enc[i] as number) + (dec[i] as number));
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      const summary = (cell: Cell) => {
        const rt = Float64Array.from(cell.roundTripNs).sort();
        const encNs = median(cell.encodeNs);
        const decNs = median(cell.decodeNs);
        return {
          encNs,
          decNs,
          opsPerSec: 1e9 / (encNs + decNs),
          p50Us: percentile(rt, 50) / 1000,
          p99Us: percentile(rt, 99) / 1000,
        };
      };
      const base = summary(cells.get('json') as Cell);
      const baseName = `${mc.label} json`;
      for (const v of variants) {
        const cell = cells.get(v.name) as Cell;
        const s = v.name === 'json' ? base : summary(cell);
        rows.push({
          scenario: ID,
          name: `${mc.label} ${v.name}`,
          baseline: baseName,
          value: s.opsPerSec,
          unit: 'enc+dec/s',
          p50Us: s.p50Us,
          p99Us: s.p99Us,
          ratio: s.opsPerSec / base.opsPerSec,
          note: `encode ${(s.encNs / 1000).toFixed(2)} µs, decode ${(s.decNs / 1000).toFixed(2)} µs, ${cell.bytes} B`,
        });
      }
      charts.push({
        id: `codec-${ci}`,
        title: `${mc.label}, ${mc.direction}: encode + decode per second`,
        unit: '/s',
        bars: variants.map((v) => ({
          label: v.name,
          value: v.name === 'json' ? base.opsPerSec : summary(cells.get(v.name) as Cell).opsPerSec,
          baseline: v.name === 'json',
        })),
      });
    }
    void sink;
    return {
      id: ID,
      title: codecScenario.title,
      description:
        'In-process, single thread: `createMessageCodec(encoding)` encoding and decoding (with ' +
        'validation) each message type, timed in batches of 32. "enc+dec/s" is one encode plus ' +
        'one decode; p50/p99 are per-operation round-trip times of the batches. ' +
        '"msgpack (Rust peer)" is msgpack with base64 body text, what picket sends to an agent ' +
        'that did not advertise `picket.binary_bodies`.',
      rows,
      targets: [],
      charts,
      notes: [],
    };
  },
};
