import { afterEach, describe, expect, it, vi } from 'vitest';
import { ReverseConnectionListener } from '../src/index.js';
import { exchange, json, registration, registrationFrame } from './helpers.js';

const FORGED_ID = 'evil\n[FAKE] registered ok\u001b[31m';
/** Raw bytes a peer must never get into a log line: C0, DEL, C1, separators, bidi controls. */
const RAW_UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for them is the point
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('log forging over a TCP reverse listener', () => {
  it('an agent id with a line break and ANSI escape reaches the default logger escaped', async () => {
    const lines: string[] = [];
    for (const m of ['log', 'debug', 'info', 'warn', 'error'] as const) {
      vi.spyOn(console, m).mockImplementation((...a: unknown[]) => {
        lines.push(a.map(String).join(' '));
      });
    }
    // the default logger: the console one every application gets without configuring any
    const listener = await ReverseConnectionListener.bindTcp('127.0.0.1:0', {
      tokens: ['right-token'],
      handshakeTimeout: 2000,
    });
    try {
      const { port } = listener.address();
      const target = { host: '127.0.0.1', port };
      const ids = [FORGED_ID, 'bidi\u202eroot\u2028line\u0085nel\u009b31m'];
      for (const agentId of ids) {
        const r = await exchange(
          target,
          registrationFrame(registration({ agent_id: agentId, auth_token: 'wrong-token' })),
          { untilFrames: 1 },
        );
        r.socket.destroy();
        expect(json(r.frames[0]).success).toBe(false);
      }
    } finally {
      await listener.close();
    }
    const refused = lines.filter((l) => l.includes('refused'));
    expect(refused.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) {
      expect(line.split('\n')).toHaveLength(1);
      expect(line).not.toMatch(RAW_UNSAFE);
      expect(line).not.toMatch(/^\[FAKE\]/m);
    }
    const text = lines.join('\n');
    expect(text).toContain('evil\\n[FAKE] registered ok\\x1b[31m');
    expect(text).toContain('bidi\\u202eroot\\u2028line\\x85nel\\x9b31m');
  });
});
