/**
 * Cheap type checks for values about to be encoded. Encoders are strict: a
 * field a Rust peer would reject (a port of 70000, a missing string) fails here
 * with `INVALID_ARGUMENT` naming the field, instead of producing bytes the peer drops.
 */
import { cannotEncode } from './errors.js';

export const U16 = 0xffff;
export const U32 = 0xffffffff;
export const U64 = Number.MAX_SAFE_INTEGER;

function show(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return 'a string';
  return `${typeof v} ${String(v).slice(0, 32)}`;
}

export function str(v: unknown, path: string): string {
  if (typeof v === 'string') return v;
  throw cannotEncode(path, `expected a string, got ${show(v)}`);
}

/** `undefined` and `null` both mean None. */
export function optStr(v: unknown, path: string): string | null {
  return v === undefined || v === null ? null : str(v, path);
}

export function bool(v: unknown, path: string): boolean {
  if (typeof v === 'boolean') return v;
  throw cannotEncode(path, `expected a boolean, got ${show(v)}`);
}

export function uint(v: unknown, path: string, max = U64): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max) return v;
  throw cannotEncode(path, `expected an integer from 0 to ${max}, got ${show(v)}`);
}

export function optUint(v: unknown, path: string, max = U64): number | null {
  return v === undefined || v === null ? null : uint(v, path, max);
}

/** A signed integer (i32 / i64 fields such as `supported_events`, `priority`). */
export function int(v: unknown, path: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  throw cannotEncode(path, `expected an integer, got ${show(v)}`);
}

/** f32 / f64 fields: any number (non-finite values are written as JSON null, as serde_json does). */
export function num(v: unknown, path: string): number {
  if (typeof v === 'number') return v;
  throw cannotEncode(path, `expected a number, got ${show(v)}`);
}

export function bytes(v: unknown, path: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  throw cannotEncode(path, `expected a Uint8Array, got ${show(v)}`);
}

export function list(v: unknown, path: string): unknown[] {
  if (Array.isArray(v)) return v;
  throw cannotEncode(path, `expected an array, got ${show(v)}`);
}

/** Optional list: `undefined` / `null` ⇒ empty (serde `#[serde(default)]`). */
export function optList(v: unknown, path: string): unknown[] {
  return v === undefined || v === null ? EMPTY : list(v, path);
}
const EMPTY = Object.freeze([]) as unknown as unknown[];

export function strList(v: unknown, path: string): string[] {
  const arr = optList(v, path);
  for (let i = 0; i < arr.length; i++) {
    if (typeof arr[i] !== 'string') str(arr[i], `${path}[${i}]`);
  }
  return arr as string[];
}

export function obj(v: unknown, path: string): Record<string, unknown> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)) {
    return v as Record<string, unknown>;
  }
  throw cannotEncode(path, `expected an object, got ${show(v)}`);
}

/** Optional map: `undefined` / `null` ⇒ empty. */
export function optObj(v: unknown, path: string): Record<string, unknown> {
  return v === undefined || v === null ? EMPTY_OBJ : obj(v, path);
}
const EMPTY_OBJ: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

/** `Record<string, string>` (routing metadata, labels, params, guardrail metadata). */
export function strMap(v: unknown, path: string): Record<string, string> {
  const o = optObj(v, path);
  for (const k in o) {
    if (Object.hasOwn(o, k) && typeof o[k] !== 'string') str(o[k], `${path}.${k}`);
  }
  return o as Record<string, string>;
}
