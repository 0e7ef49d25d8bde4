/** The `prox+exec:` endpoint grammar. */
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import { isProxExecEndpoint, parseProxExec } from '../src/index.js';

describe('parseProxExec', () => {
  it.each([
    ['prox+exec:/usr/bin/plugin', ['/usr/bin/plugin']],
    ['  PROX+EXEC:/p  --a   b\t c  ', ['/p', '--a', 'b', 'c']],
    [
      `prox+exec:'/opt/my plugins/auth' --name "a \\"b\\" \\\\ c"`,
      ['/opt/my plugins/auth', '--name', 'a "b" \\ c'],
    ],
    [`prox+exec:/p 'it''s' "x\\y"`, ['/p', 'its', 'x\\y']],
    ['prox+exec:/p a\\ b \'\' ""', ['/p', 'a b', '', '']],
  ])('%s', (endpoint, command) => {
    expect(parseProxExec(endpoint)).toEqual({ kind: 'prox', endpoint, command });
    expect(isProxExecEndpoint(endpoint)).toBe(true);
  });

  it.each([
    ['prox+exec:', 'no plugin program'],
    ['prox+exec:   ', 'no plugin program'],
    ["prox+exec:'' --x", 'no plugin program'],
    ["prox+exec:/p 'open", "unterminated ' quote"],
    ['prox+exec:/p "open', 'unterminated " quote'],
    ['prox+exec:/p \\', 'trailing backslash'],
    ['prox+exec:/p\n--x', 'line break or NUL'],
    ['unix:/p.sock', 'does not start with prox+exec:'],
  ])('refuses %j: %s', (endpoint, problem) => {
    let err: unknown;
    try {
      parseProxExec(endpoint);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect((err as AgentProtocolError).code).toBe(ErrorCode.InvalidArgument);
    expect((err as Error).message).toContain(problem);
    expect((err as Error).message).toContain('expected prox+exec:/path/to/plugin');
  });
});
