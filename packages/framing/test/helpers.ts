import { readFileSync } from 'node:fs';

export interface GoldenVector {
  id: string;
  title: string;
  kind: 'uds' | 'reverse' | 'v1';
  /** Type byte as found in the frame (null for v1). */
  type: number | null;
  payloadLength: number;
  frameHex: string;
  /** The exact UTF-8 payload, for the JSON vectors. */
  payloadText?: string;
}

export const vectors: GoldenVector[] = (
  JSON.parse(readFileSync(new URL('./fixtures/golden-frames.json', import.meta.url), 'utf8')) as {
    vectors: GoldenVector[];
  }
).vectors;

export function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Splits `bytes` at the given cut points (taken modulo length, deduplicated). */
export function chunkify(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  if (bytes.length === 0) return [bytes];
  const points = [...new Set(cuts.map((cut) => cut % bytes.length))]
    .filter((cut) => cut > 0)
    .sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.slice(start, point));
    start = point;
  }
  chunks.push(bytes.slice(start));
  return chunks;
}

/** One-byte chunks. */
export function bytewise(bytes: Uint8Array): Uint8Array[] {
  return Array.from(bytes, (byte) => Uint8Array.of(byte));
}

/** A header `[u32 BE length][type]` (or just the length when type is undefined). */
export function header(length: number, type?: number): Uint8Array {
  const out = new Uint8Array(type === undefined ? 4 : 5);
  new DataView(out.buffer).setUint32(0, length);
  if (type !== undefined) out[4] = type;
  return out;
}

/** Runs `fn` and returns the error it throws (fails the test when it does not throw). */
export function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}
