/**
 * The two header blocks HAProxy can pass as a spoe-message argument:
 * `req.hdrs_bin` (binary) and `req.hdrs` (text).
 */
import type { Headers } from '@picket/protocol';
import { putOwn } from '@picket/protocol';
import { SpopError, SpopReader, SpopStatus, SpopWriter } from './codec.js';

function add(out: Headers, name: string, value: string): void {
  const key = name.toLowerCase();
  const list = Object.hasOwn(out, key) ? out[key] : undefined;
  if (list !== undefined) list.push(value);
  else putOwn(out, key, [value]);
}

/**
 * Parses `req.hdrs_bin`: `*(<str:name><str:value>)<empty string><empty string>`,
 * each string `<varint length><bytes>` (HAProxy configuration manual, req.hdrs_bin).
 * Names are lowercased; a repeated header keeps every value in order.
 */
export function parseBinaryHeaderBlock(block: Uint8Array): Headers {
  const r = new SpopReader(block, 0, 'req.hdrs_bin header block');
  const out: Headers = {};
  for (;;) {
    if (r.remaining === 0) {
      throw new SpopError(
        SpopStatus.Invalid,
        'req.hdrs_bin header block: missing the end marker (two empty strings)',
      );
    }
    const name = r.string('header name');
    const value = r.string('header value');
    if (name === '' && value === '') break;
    if (name === '') {
      throw new SpopError(SpopStatus.Invalid, 'req.hdrs_bin header block: empty header name');
    }
    add(out, name, value);
  }
  if (r.remaining !== 0) {
    throw new SpopError(
      SpopStatus.Invalid,
      `req.hdrs_bin header block: ${r.remaining} bytes after the end marker`,
    );
  }
  return out;
}

/** Encodes headers as `req.hdrs_bin` does (for tests and tools). */
export function encodeBinaryHeaderBlock(
  headers: readonly (readonly [string, string])[],
): Uint8Array {
  const w = new SpopWriter();
  for (const [name, value] of headers) w.buffer(name).buffer(value);
  return w.buffer('').buffer('').bytes();
}

/**
 * Parses `req.hdrs`: `name: value` lines separated by CRLF, ending with an empty
 * line. Names are lowercased, values trimmed of surrounding spaces and tabs.
 */
export function parseTextHeaderBlock(block: string): Headers {
  const out: Headers = {};
  for (const line of block.split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      throw new SpopError(
        SpopStatus.Invalid,
        `req.hdrs header block: line without "name:" (${JSON.stringify(line.slice(0, 40))})`,
      );
    }
    add(out, line.slice(0, colon), line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ''));
  }
  return out;
}
