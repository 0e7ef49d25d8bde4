/** Shared readers for the validators in validate-*.ts: structs as maps or positional arrays, scalars, lists, maps, bytes, enum variants. */
import { invalidMessage } from './errors.js';
import { headerMap } from './header-map.js';
import type { Headers } from './types.js';

export type Obj = Record<string, unknown>;
export const MISSING = Symbol('missing');

/** Reads a struct given as a map or as a positional array with `fields` order. */
export class Struct {
  private readonly obj: Obj | undefined;
  private readonly arr: unknown[] | undefined;
  constructor(
    value: unknown,
    readonly path: string,
    private readonly fields: readonly string[],
  ) {
    if (Array.isArray(value)) {
      if (value.length > fields.length) {
        throw invalidMessage(
          path,
          `array has ${value.length} elements, at most ${fields.length} expected`,
        );
      }
      this.arr = value;
    } else if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
      this.obj = value as Obj;
    } else {
      throw invalidMessage(path, `expected an object, got ${describe(value)}`);
    }
  }

  raw(key: string): unknown {
    if (this.arr) {
      const i = this.fields.indexOf(key);
      return i < this.arr.length ? this.arr[i] : MISSING;
    }
    const obj = this.obj as Obj;
    return Object.hasOwn(obj, key) ? obj[key] : MISSING;
  }
  at(key: string): string {
    return `${this.path}.${key}`;
  }
  req(key: string): unknown {
    const v = this.raw(key);
    if (v === MISSING) throw invalidMessage(this.at(key), 'missing required field');
    return v;
  }
  str(key: string): string {
    return asString(this.req(key), this.at(key));
  }
  strDefault(key: string, fallback: string): string {
    const v = this.raw(key);
    return v === MISSING || v === null ? fallback : asString(v, this.at(key));
  }
  optStr(key: string): string | null {
    const v = this.raw(key);
    return v === MISSING || v === null ? null : asString(v, this.at(key));
  }
  bool(key: string): boolean {
    return asBool(this.req(key), this.at(key));
  }
  boolDefault(key: string, fallback: boolean): boolean {
    const v = this.raw(key);
    return v === MISSING || v === null ? fallback : asBool(v, this.at(key));
  }
  uint(key: string, max = Number.MAX_SAFE_INTEGER): number {
    return asUint(this.req(key), this.at(key), max);
  }
  uintDefault(key: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.raw(key);
    return v === MISSING || v === null ? fallback : asUint(v, this.at(key), max);
  }
  optUint(key: string, max = Number.MAX_SAFE_INTEGER): number | null {
    const v = this.raw(key);
    return v === MISSING || v === null ? null : asUint(v, this.at(key), max);
  }
  num(key: string): number {
    return asNumber(this.req(key), this.at(key));
  }
  numDefault(key: string, fallback: number): number {
    const v = this.raw(key);
    return v === MISSING || v === null ? fallback : asNumber(v, this.at(key));
  }
  strList(key: string, required = false): string[] {
    const v = required ? this.req(key) : this.raw(key);
    if (v === MISSING || (v === null && !required)) return [];
    return asList(v, this.at(key), asString);
  }
  strMap(key: string, required = false): Record<string, string> {
    const v = required ? this.req(key) : this.raw(key);
    if (v === MISSING || (v === null && !required)) return {};
    return asStringMap(v, this.at(key));
  }
  bytes(key: string): Uint8Array {
    return asBytes(this.req(key), this.at(key));
  }
  any(key: string): unknown {
    const v = this.raw(key);
    return v === MISSING ? null : v;
  }
}

export const U16 = 0xffff;
export const U32 = 0xffffffff;

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'binary data';
  if (typeof v === 'string') return 'a string';
  // Objects can override toString (even with a non-function): never call it.
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v).slice(0, 32)}`;
}
export function asString(v: unknown, path: string): string {
  if (typeof v === 'string') return v;
  // rmp-serde accepts `bin` for a String field when it is valid UTF-8.
  if (v instanceof Uint8Array) {
    try {
      return UTF8.decode(v);
    } catch {
      throw invalidMessage(path, 'binary data is not valid UTF-8');
    }
  }
  throw invalidMessage(path, `expected a string, got ${describe(v)}`);
}
const UTF8 = new TextDecoder('utf-8', { fatal: true });
function asBool(v: unknown, path: string): boolean {
  if (typeof v === 'boolean') return v;
  throw invalidMessage(path, `expected a boolean, got ${describe(v)}`);
}
export function asNumber(v: unknown, path: string): number {
  if (typeof v === 'number' && !Number.isNaN(v)) return v;
  throw invalidMessage(path, `expected a number, got ${describe(v)}`);
}
export function asUint(v: unknown, path: string, max: number): number {
  if (typeof v === 'bigint' && v >= 0n && v <= BigInt(max)) return Number(v);
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max) return v;
  throw invalidMessage(path, `expected an integer from 0 to ${max}, got ${describe(v)}`);
}
export function asInt(v: unknown, path: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw invalidMessage(path, `expected an integer, got ${describe(v)}`);
}
export function asList<T>(v: unknown, path: string, item: (x: unknown, p: string) => T): T[] {
  if (!Array.isArray(v)) throw invalidMessage(path, `expected an array, got ${describe(v)}`);
  const out = new Array<T>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = item(v[i], `${path}[${i}]`);
  return out;
}
export function asObject(v: unknown, path: string): Obj {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)) {
    return v as Obj;
  }
  throw invalidMessage(path, `expected an object, got ${describe(v)}`);
}
/**
 * Sets `key` as an own data property: a plain assignment of `"__proto__"` (legal
 * in a JSON header map) would replace the object's prototype and lose the entry.
 * For every decoder that builds a map from keys it does not control.
 */
export function putOwn<T>(out: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') {
    Object.defineProperty(out, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    out[key] = value;
  }
}
export function asStringMap(v: unknown, path: string): Record<string, string> {
  const obj = asObject(v, path);
  const out: Record<string, string> = {};
  for (const k of Object.keys(obj)) putOwn(out, k, asString(obj[k], `${path}.${k}`));
  return out;
}
export function asHeaders(v: unknown, path: string): Headers {
  const obj = asObject(v, path);
  const out: Headers = headerMap();
  for (const k of Object.keys(obj)) putOwn(out, k, asList(obj[k], `${path}.${k}`, asString));
  return out;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** Body bytes: `bin` as is, or standard padded base64 text (JSON, and msgpack from Rust). */
export function asBytes(v: unknown, path: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') {
    if (v.length % 4 !== 0 || !BASE64.test(v)) {
      throw invalidMessage(path, 'expected standard padded base64');
    }
    const buf = Buffer.from(v, 'base64');
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  throw invalidMessage(path, `expected base64 text or binary data, got ${describe(v)}`);
}

/** Reads an externally tagged enum value: `"unit"` or `{variant: payload}`. */
export function variant(v: unknown, path: string): [string, unknown] {
  if (typeof v === 'string') return [v, null];
  const obj = asObject(v, path);
  const keys = Object.keys(obj);
  if (keys.length !== 1) {
    throw invalidMessage(path, `expected a string or a single-key object, got ${keys.length} keys`);
  }
  const key = keys[0] as string;
  return [key, obj[key]];
}
