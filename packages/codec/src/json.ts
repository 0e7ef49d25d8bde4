/** Low-level JSON text helpers shared by the message serializers. */

const UTF8_STRICT = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A plain Uint8Array view of a Buffer (no copy), so callers see one type whatever made the bytes. */
export function plain(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** UTF-8 bytes of `text`. */
export function utf8Encode(text: string): Uint8Array {
  return plain(Buffer.from(text, 'utf8'));
}

/**
 * Strict UTF-8 decoding, like serde_json's `from_slice`: invalid sequences
 * throw, and a byte-order mark is kept (so JSON.parse rejects it, as Rust does).
 */
export function utf8Decode(bytes: Uint8Array): string {
  return UTF8_STRICT.decode(bytes);
}

/** Standard, padded base64 (RFC 4648 §4), as Rust's `general_purpose::STANDARD`. */
export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** Adjusts a UTF-16 code unit ≥ 0xD800 so that surrogates sort after U+E000–U+FFFF. */
function fixup(c: number): number {
  return c >= 0xe000 ? c - 0x800 : c + 0x2000;
}

/**
 * Orders keys by their UTF-8 bytes (= code points), the order of a Rust
 * `BTreeMap<String, _>`. JS's default sort compares UTF-16 code units, which
 * differs only for astral characters against U+E000–U+FFFF.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        x = fixup(x);
        y = fixup(y);
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

/** Sorts `keys` in place by {@link compareKeys}; skips the sort when already ordered (the usual case). */
export function sortKeys(keys: string[]): string[] {
  for (let i = 1; i < keys.length; i++) {
    if (compareKeys(keys[i - 1] as string, keys[i] as string) > 0) return keys.sort(compareKeys);
  }
  return keys;
}

const MAX_DEPTH = 512;

/**
 * `JSON.stringify` with object keys sorted at every level: what serde_json
 * writes for a `serde_json::Value`. Same value rules as JSON.stringify
 * (`toJSON`, dropped `undefined`/functions, non-finite numbers ⇒ `null`);
 * returns `undefined` where JSON.stringify would.
 */
export function sortedJson(value: unknown, depth = 0): string | undefined {
  let v = value;
  if (
    v !== null &&
    typeof v === 'object' &&
    typeof (v as { toJSON?: unknown }).toJSON === 'function'
  ) {
    v = (v as { toJSON(): unknown }).toJSON();
  }
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
    case 'boolean':
      return JSON.stringify(v);
    case 'bigint':
      throw new TypeError('a BigInt cannot be written as JSON');
    case 'object': {
      if (v === null) return 'null';
      if (depth >= MAX_DEPTH)
        throw new RangeError(`nesting deeper than ${MAX_DEPTH} (cyclic value?)`);
      if (Array.isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i++) {
          if (i > 0) out += ',';
          out += sortedJson(v[i], depth + 1) ?? 'null';
        }
        return `${out}]`;
      }
      const o = v as Record<string, unknown>;
      const keys = sortKeys(Object.keys(o));
      let out = '{';
      let first = true;
      for (const k of keys) {
        const item = sortedJson(o[k], depth + 1);
        if (item === undefined) continue;
        out += `${first ? '' : ','}${JSON.stringify(k)}:${item}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      return undefined;
  }
}
