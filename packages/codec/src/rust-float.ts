/**
 * Floats printed the way serde_json prints them (the `ryu` crate): shortest
 * round-trip digits, integral values keep `.0` (`0.0`, `1.0`), scientific
 * notation only outside a fixed window (`1e-7`, `1.5e16`), `null` for NaN and
 * infinities. JS's `String(x)` agrees on the digits but not on the layout
 * (`1` vs `1.0`), and Rust's `f32` fields (audit `confidence`) print the
 * shortest digits of the *float32* value (`0.95`, not `0.949999988079071`).
 */

/** Shortest decimal digits (no leading/trailing zeros); value = 0.digits × 10^point. */
interface Decimal {
  negative: boolean;
  digits: string;
  /** Position of the decimal point relative to the start of `digits` (ryu's `kk`). */
  point: number;
}

/** Splits a JS number string (`"123.45"`, `"1.5e-7"`, `"0.00012"`) into digits and point position. */
function decimal(text: string): Decimal {
  let s = text;
  const negative = s.startsWith('-');
  if (negative) s = s.slice(1);
  let exp = 0;
  const e = s.indexOf('e');
  if (e >= 0) {
    exp = Number(s.slice(e + 1));
    s = s.slice(0, e);
  }
  const dot = s.indexOf('.');
  const intPart = dot >= 0 ? s.slice(0, dot) : s;
  const frac = dot >= 0 ? s.slice(dot + 1) : '';
  let digits = intPart + frac;
  let point = intPart.length + exp;
  // strip leading zeros (each moves the point left) and trailing zeros
  let lead = 0;
  while (lead < digits.length - 1 && digits.charCodeAt(lead) === 48) lead++;
  digits = digits.slice(lead);
  point -= lead;
  let end = digits.length;
  while (end > 1 && digits.charCodeAt(end - 1) === 48) end--;
  digits = digits.slice(0, end);
  return { negative, digits, point };
}

/** ryu's "pretty" layout; `maxPoint` / `minPoint` are 16 / -5 for f64 and 13 / -6 for f32. */
function layout(d: Decimal, maxPoint: number, minPoint: number): string {
  const { digits, point } = d;
  const sign = d.negative ? '-' : '';
  const length = digits.length;
  if (length <= point && point <= maxPoint) {
    return `${sign}${digits}${'0'.repeat(point - length)}.0`;
  }
  if (0 < point && point <= maxPoint) {
    return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  if (minPoint < point && point <= 0) {
    return `${sign}0.${'0'.repeat(-point)}${digits}`;
  }
  const exp = point - 1;
  if (length === 1) return `${sign}${digits}e${exp}`;
  return `${sign}${digits[0]}.${digits.slice(1)}e${exp}`;
}

/** serde_json's text for an `f64` value. */
export function formatF64(x: number): string {
  if (!Number.isFinite(x)) return 'null';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  return layout(decimal(String(x)), 16, -5);
}

/** Shortest decimal text (JS syntax) that reads back as the same float32 as `x`. */
export function shortestF32Text(x: number): string {
  const f = Math.fround(x);
  if (!Number.isFinite(f) || f === 0) return String(f);
  for (let p = 1; p < 9; p++) {
    const text = f.toPrecision(p);
    if (Math.fround(Number(text)) === f) return text;
  }
  return f.toPrecision(9);
}

/** serde_json's text for an `f32` value (the number is first rounded to float32, as Rust stores it). */
export function formatF32(x: number): string {
  const f = Math.fround(x);
  if (!Number.isFinite(f)) return 'null';
  if (f === 0) return Object.is(f, -0) ? '-0.0' : '0.0';
  return layout(decimal(shortestF32Text(f)), 13, -6);
}

/**
 * What an `f32` field holds after a round trip, as a friendly JS number: the
 * float32 rounding of `x`, written back with its shortest digits (0.95 stays
 * 0.95 whether it arrived as JSON `0.95` or msgpack float32 `ca 3f 73 33 33`).
 */
export function normalizeF32(x: number): number {
  const f = Math.fround(x);
  if (!Number.isFinite(f)) return f;
  return Number(shortestF32Text(f));
}
