import { afterEach, describe, expect, it, vi } from 'vitest';
import { createConsoleLogger, escapeForLog, jsonForLog } from '../src/index.js';

/** Every character a peer must never get raw into a log line. */
const UNSAFE_CODES = [
  ...Array.from({ length: 0x20 }, (_, i) => i),
  ...Array.from({ length: 0x21 }, (_, i) => 0x7f + i),
  0x61c,
  0x200e,
  0x200f,
  0x2028,
  0x2029,
  0x202a,
  0x202b,
  0x202c,
  0x202d,
  0x202e,
  0x2066,
  0x2067,
  0x2068,
  0x2069,
];
const ALL_UNSAFE = String.fromCharCode(...UNSAFE_CODES);
const FORGED = 'evil\n[FAKE] registered ok\u001b[31m';

function rawUnsafe(text: string): number[] {
  return [...text].map((c) => c.codePointAt(0) ?? 0).filter((c) => UNSAFE_CODES.includes(c));
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('escapeForLog', () => {
  it('writes line breaks, ESC and the other C0 controls as visible escapes', () => {
    expect(escapeForLog(FORGED)).toBe('evil\\n[FAKE] registered ok\\x1b[31m');
    expect(escapeForLog('a\r\n\tb\u0000c\u0007')).toBe('a\\r\\n\\tb\\x00c\\x07');
  });

  it('escapes DEL, C1 controls, line/paragraph separators and bidi controls', () => {
    expect(escapeForLog('\u007f\u0085\u009b')).toBe('\\x7f\\x85\\x9b');
    expect(escapeForLog('a\u2028b\u2029c')).toBe('a\\u2028b\\u2029c');
    expect(escapeForLog('\u202eevil\u202c \u2066x\u2069 \u200f\u061c')).toBe(
      '\\u202eevil\\u202c \\u2066x\\u2069 \\u200f\\u061c',
    );
    expect(rawUnsafe(escapeForLog(ALL_UNSAFE))).toEqual([]);
  });

  it('keeps printable text, non-ASCII letters, emoji and backslashes as they are', () => {
    const fine = 'GET /api/caf\u00e9?q=\u65e5\u672c "x" \\n \u{1f600} \u00a0 ~';
    expect(escapeForLog(fine)).toBe(fine);
  });

  it('is idempotent, so a sink may escape what a call site already escaped', () => {
    const once = escapeForLog(ALL_UNSAFE + FORGED);
    expect(escapeForLog(once)).toBe(once);
  });
});

describe('jsonForLog', () => {
  it('is valid JSON of the same value with nothing unsafe left raw', () => {
    const value = { agentId: FORGED, all: ALL_UNSAFE, n: 3 };
    const json = jsonForLog(value);
    expect(rawUnsafe(json)).toEqual([]);
    expect(JSON.parse(json)).toEqual(value);
  });

  it('indents when asked, still escaping', () => {
    expect(jsonForLog({ a: '\u009b' }, 2)).toBe('{\n  "a": "\\u009b"\n}');
  });

  it('writes errors as name and message, and survives cycles', () => {
    expect(jsonForLog({ error: new TypeError(`bad ${FORGED}`) })).toBe(
      '{"error":"TypeError: bad evil\\n[FAKE] registered ok\\u001b[31m"}',
    );
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(jsonForLog(cyclic)).toBe('{…}');
  });
});

describe('createConsoleLogger', () => {
  it('escapes the message and the fields at the sink', () => {
    const lines: string[] = [];
    for (const m of ['debug', 'info', 'warn', 'error'] as const) {
      vi.spyOn(console, m).mockImplementation((...a: unknown[]) => {
        lines.push(a.map(String).join(' '));
      });
    }
    const log = createConsoleLogger('t', { verbose: true });
    log.debug(`d ${FORGED}`);
    log.info(`i ${ALL_UNSAFE}`, { id: ALL_UNSAFE });
    log.warn(`refused: ${FORGED}`, { agentId: FORGED, error: new Error(FORGED) });
    log.error('\u202espoof', { path: '/a\u2028b' });
    expect(lines).toHaveLength(4);
    for (const line of lines) expect(rawUnsafe(line)).toEqual([]);
    expect(lines[2]).toBe(
      '[t] refused: evil\\n[FAKE] registered ok\\x1b[31m {"agentId":"evil\\n[FAKE] registered ok\\u001b[31m","error":"Error: evil\\n[FAKE] registered ok\\u001b[31m"}',
    );
    expect(lines[3]).toBe('[t] \\u202espoof {"path":"/a\\u2028b"}');
  });
});
