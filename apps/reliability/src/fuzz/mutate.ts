/**
 * Mutators: value level (wrong field types, missing and extra keys, hostile keys, deep
 * nesting, huge strings), byte level (bit flips, truncation, insertion, JSON tokens) and
 * frame level (length field, type byte, truncated and oversized frames) for the v2 and v1
 * framings. All randomness comes from the {@link Rng} passed in.
 */
import { encode as msgpackEncode } from '@msgpack/msgpack';
import { MAX_UDS_FRAME_LENGTH, MAX_V1_MESSAGE_SIZE, MessageType, putOwn } from '@picket/protocol';
import { encode as cborEncode } from 'cbor-x';
import type { Rng } from '../lib/prng.js';

/** A wire encoding of v2 payloads. */
export type Encoding = 'json' | 'msgpack' | 'cbor';

/** Every type byte v2 defines. */
export const LIVE_TYPES: readonly number[] = Object.values(MessageType);

/** A type byte v2 does not define (an unknown type closes the connection). */
export function unknownType(rng: Rng): number {
  for (;;) {
    const t = rng.int(0, 255);
    if (!LIVE_TYPES.includes(t)) return t;
  }
}

function nested(rng: Rng, depth: number): unknown {
  let v: unknown = rng.chance(0.5) ? 1 : 'x';
  const asArray = rng.chance(0.5);
  for (let i = 0; i < depth; i++) v = asArray ? [v] : { a: v };
  return v;
}

function unicode(rng: Rng): string {
  const pool = ['\u0000', '\ud800', '\udfff', '\u202e', '\ufeff', '\u00e9', '\u{1f4a9}', '\\', '"'];
  let s = '';
  const n = rng.int(1, 16);
  for (let i = 0; i < n; i++)
    s += rng.chance(0.5) ? rng.pick(pool) : String.fromCharCode(rng.int(32, 126));
  return s;
}

/** Keys that are also Object.prototype members: decoders must keep them as plain entries. */
const PROTOTYPE_NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'];

/** An object with an own `__proto__` (or other hostile) key, as JSON.parse would build it. */
function hostileObject(rng: Rng): unknown {
  const o: Record<string, unknown> = {};
  putOwn(o, rng.pick(PROTOTYPE_NAMES), rng.pick<unknown>([{ polluted: true }, 1, 'x', null, []]));
  return o;
}

/** A random value of a random type (the "wrong type" a field gets replaced with). */
export function junkValue(rng: Rng, depth = 0): unknown {
  const kinds: (readonly [number, () => unknown])[] = [
    [6, () => null],
    [3, () => rng.chance(0.5)],
    [
      6,
      () =>
        rng.pick([
          0,
          -1,
          1,
          1.5,
          -0.0001,
          255,
          256,
          65535,
          65536,
          2 ** 31,
          2 ** 32,
          2 ** 53 + 2,
          -(2 ** 63),
          Number.MAX_VALUE,
          Number.MIN_VALUE,
        ]),
    ],
    [2, () => rng.pick([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])],
    [6, () => rng.pick(['', 'allow', 'block', 'true', '1', '-1', 'null', '{}', 'req-1'])],
    [4, () => unicode(rng)],
    [2, () => 'A'.repeat(rng.size(70_000))],
    [3, () => []],
    [3, () => ({})],
    [2, () => rng.bytes(rng.size(300))],
    [2, () => hostileObject(rng)],
    [1, () => nested(rng, rng.pick([10, 100, 1000, 5000]))],
    [1, () => Array.from({ length: rng.size(20_000) }, (_, i) => i)],
    [
      depth < 3 ? 3 : 0,
      () => Array.from({ length: rng.int(1, 4) }, () => junkValue(rng, depth + 1)),
    ],
    [
      depth < 3 ? 3 : 0,
      () => {
        const o: Record<string, unknown> = {};
        const n = rng.int(1, 4);
        for (let i = 0; i < n; i++)
          o[rng.pick(['a', 'status', 'allow', 'block', '0', ''])] = junkValue(rng, depth + 1);
        return o;
      },
    ],
  ];
  return rng.weighted(kinds)();
}

type Container = Record<string, unknown> | unknown[];

function isContainer(v: unknown): v is Container {
  return v !== null && typeof v === 'object' && !(v instanceof Uint8Array);
}

/** Picks a random (container, key) inside `root`, walking down with some probability. */
function pickSlot(rng: Rng, root: Container): [Container, string | number] | undefined {
  let node: Container = root;
  for (let depth = 0; depth < 12; depth++) {
    const keys: (string | number)[] = Array.isArray(node)
      ? node.map((_, i) => i)
      : Object.keys(node);
    if (keys.length === 0) return undefined;
    const key = rng.pick(keys);
    const child = (node as Record<string | number, unknown>)[key];
    if (isContainer(child) && rng.chance(0.6)) {
      node = child;
      continue;
    }
    return [node, key];
  }
  return undefined;
}

/** Deep copy that keeps Uint8Array and hostile own keys. */
function clone(v: unknown): unknown {
  if (v instanceof Uint8Array) return Uint8Array.from(v);
  if (Array.isArray(v)) return v.map(clone);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) {
      Object.defineProperty(out, k, {
        value: clone((v as Record<string, unknown>)[k]),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return v;
}

/**
 * Applies 1–3 structural mutations to a copy of `value`: a field gets a value of another
 * type, is deleted, is nulled, an unknown key is added, or the whole value is replaced.
 */
export function mutateValue(rng: Rng, value: unknown): unknown {
  let root = clone(value);
  const n = rng.int(1, 3);
  for (let i = 0; i < n; i++) {
    if (!isContainer(root) || rng.chance(0.05)) {
      root = junkValue(rng);
      continue;
    }
    const slot = pickSlot(rng, root);
    if (slot === undefined) {
      root = junkValue(rng);
      continue;
    }
    const [node, key] = slot;
    const op = rng.weighted<string>([
      [6, 'replace'],
      [2, 'delete'],
      [1, 'null'],
      [1, 'add'],
      [1, 'stringify'],
    ]);
    const rec = node as Record<string | number, unknown>;
    switch (op) {
      case 'replace':
        rec[key] = junkValue(rng);
        break;
      case 'delete':
        if (Array.isArray(node)) node.splice(Number(key), 1);
        else delete rec[key];
        break;
      case 'null':
        rec[key] = null;
        break;
      case 'add':
        if (Array.isArray(node)) node.push(junkValue(rng));
        else {
          // now and then a name that is also an Object.prototype member (as a header map may carry)
          const name = rng.chance(0.3) ? rng.pick(PROTOTYPE_NAMES) : `x_${rng.int(0, 99)}`;
          putOwn(rec, name, junkValue(rng));
        }
        break;
      default:
        // a number written as text, an object as its JSON: a classic wrong type
        try {
          rec[key] = JSON.stringify(rec[key]) ?? 'undefined';
        } catch {
          rec[key] = '[too deep]';
        }
    }
  }
  return root;
}

/** Encodes any value with a raw codec (no validation); undefined when it cannot be encoded. */
export function encodeRaw(encoding: Encoding, value: unknown): Buffer | undefined {
  try {
    switch (encoding) {
      case 'json': {
        const text = JSON.stringify(value, (_k, v: unknown) =>
          v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v,
        );
        return text === undefined ? undefined : Buffer.from(text, 'utf8');
      }
      case 'msgpack':
        return Buffer.from(msgpackEncode(value, { maxDepth: 10_000 }));
      case 'cbor':
        return Buffer.from(cborEncode(value));
    }
  } catch {
    return undefined;
  }
}

/** JSON message `valid` with junk values put in by {@link mutateValue}, as JSON again (else `valid`). */
export function mutateJson(rng: Rng, valid: Buffer): Buffer {
  return encodeRaw('json', mutateValue(rng, JSON.parse(valid.toString()))) ?? valid;
}

/** JSON message `valid`'s value in msgpack or CBOR: the right content in the wrong encoding. */
export function wrongEncoding(rng: Rng, valid: Buffer): Buffer {
  return encodeRaw(rng.pick(['msgpack', 'cbor'] as const), JSON.parse(valid.toString())) ?? valid;
}

const JSON_TOKENS = [
  '{',
  '}',
  '[',
  ']',
  '"',
  ',',
  ':',
  '\\',
  '\\u0000',
  'null',
  '1e999',
  '-',
  '\ud800',
];

/** Byte-level mutations: flips, boundary bytes, insertions, deletions, truncation, JSON tokens. */
export function mutateBytes(rng: Rng, input: Uint8Array): Buffer {
  let b: Buffer = Buffer.from(input);
  const n = rng.int(1, 4);
  for (let i = 0; i < n; i++) {
    const at = b.length === 0 ? 0 : rng.int(0, b.length - 1);
    switch (rng.int(0, 9)) {
      case 0:
        if (b.length > 0) b[at] = (b[at] as number) ^ (1 << rng.int(0, 7));
        break;
      case 1:
        if (b.length > 0) b[at] = rng.pick([0x00, 0x7f, 0x80, 0xff, 0xc0, 0xc1, 0xf5, 0x22, 0x5c]);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), rng.bytes(rng.size(64)), b.subarray(at)]);
        break;
      case 3:
        b = Buffer.concat([
          b.subarray(0, at),
          b.subarray(Math.min(b.length, at + rng.size(64) + 1)),
        ]);
        break;
      case 4:
        b = b.subarray(0, at);
        break;
      case 5:
        b = Buffer.concat([b, rng.bytes(rng.size(64))]);
        break;
      case 6: {
        const len = rng.size(64);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
        break;
      }
      case 7:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(rng.pick(JSON_TOKENS)), b.subarray(at)]);
        break;
      case 8:
        b = rng.bytes(rng.size(512));
        break;
      default:
        b = Buffer.from(b.toString('latin1').toUpperCase(), 'latin1');
    }
  }
  return b;
}

/**
 * What a frame does to a connection: `complete` frames are whole and well-formed at the
 * framing layer (their payload may be junk), `fatal` ones break the framing (zero or
 * oversize length, unknown type byte) and must close the connection, `partial` ones leave
 * the decoder waiting or out of step (a length that does not match the bytes).
 */
export type FrameKind = 'complete' | 'fatal' | 'partial';

/** One generated v2 frame. */
export interface JunkFrame {
  bytes: Buffer;
  kind: FrameKind;
  /** the type byte (for complete frames) */
  type: number;
}

/** A well-formed v2 frame. */
export function v2Frame(type: number, payload: Uint8Array): Buffer {
  const header = Buffer.allocUnsafe(5);
  header.writeUInt32BE(payload.length + 1, 0);
  header[4] = type;
  return Buffer.concat([header, payload]);
}

/**
 * Frame-level mutation of a v2 frame of `type` with `payload`: most of the time a
 * complete frame; otherwise a broken length field, an unknown type byte, a truncated
 * frame, or a header announcing an oversized frame.
 */
export function mutateV2Frame(
  rng: Rng,
  type: number,
  payload: Uint8Array,
  pBroken = 0.1,
): JunkFrame {
  if (!rng.chance(pBroken)) return { bytes: v2Frame(type, payload), kind: 'complete', type };
  const header = Buffer.allocUnsafe(5);
  switch (rng.int(0, 6)) {
    case 0: // zero length
      return { bytes: Buffer.from([0, 0, 0, 0]), kind: 'fatal', type };
    case 1: {
      // oversize length, sometimes with real bytes behind it
      header.writeUInt32BE(
        rng.pick([MAX_UDS_FRAME_LENGTH + 1, 0x7fffffff, 0xffffffff, 2 ** 31]),
        0,
      );
      header[4] = type;
      return {
        bytes: Buffer.concat([header, rng.chance(0.3) ? rng.bytes(4096) : Buffer.alloc(0)]),
        kind: 'fatal',
        type,
      };
    }
    case 2: // unknown type byte
      return { bytes: v2Frame(unknownType(rng), payload), kind: 'fatal', type };
    case 3: {
      // truncated: the header promises more than follows
      const cut = payload.length === 0 ? 0 : rng.int(0, payload.length - 1);
      header.writeUInt32BE(payload.length + 1, 0);
      header[4] = type;
      return { bytes: Buffer.concat([header, payload.subarray(0, cut)]), kind: 'partial', type };
    }
    case 4: {
      // length off by a few: the decoder falls out of step with the stream
      const delta = rng.pick([-3, -2, -1, 1, 2, 3, 100]);
      header.writeUInt32BE(Math.max(1, payload.length + 1 + delta), 0);
      header[4] = type;
      return { bytes: Buffer.concat([header, payload]), kind: 'partial', type };
    }
    case 5: // a bare, short header
      return { bytes: rng.bytes(rng.int(1, 4)), kind: 'partial', type };
    default:
      // length 1: a frame with a type byte and no payload at all (complete at the framing layer)
      return { bytes: Buffer.from([0, 0, 0, 1, type]), kind: 'complete', type };
  }
}

/** A well-formed v1 frame: `[u32 BE length][bytes]`. */
export function v1Frame(payload: Uint8Array): Buffer {
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(payload.length, 0);
  return Buffer.concat([header, payload]);
}

/** Frame-level mutation of a v1 frame. */
export function mutateV1Frame(rng: Rng, payload: Uint8Array, pBroken = 0.15): JunkFrame {
  if (!rng.chance(pBroken)) return { bytes: v1Frame(payload), kind: 'complete', type: 0 };
  const header = Buffer.allocUnsafe(4);
  switch (rng.int(0, 4)) {
    case 0:
      return { bytes: Buffer.from([0, 0, 0, 0]), kind: 'fatal', type: 0 };
    case 1:
      header.writeUInt32BE(rng.pick([MAX_V1_MESSAGE_SIZE + 1, 0xffffffff, 0x7fffffff]), 0);
      return { bytes: header, kind: 'fatal', type: 0 };
    case 2: {
      const cut = payload.length === 0 ? 0 : rng.int(0, payload.length - 1);
      header.writeUInt32BE(payload.length, 0);
      return { bytes: Buffer.concat([header, payload.subarray(0, cut)]), kind: 'partial', type: 0 };
    }
    case 3: {
      header.writeUInt32BE(Math.max(1, payload.length + rng.pick([-2, -1, 1, 2, 50])), 0);
      return { bytes: Buffer.concat([header, payload]), kind: 'partial', type: 0 };
    }
    default:
      return { bytes: rng.bytes(rng.int(1, 3)), kind: 'partial', type: 0 };
  }
}
