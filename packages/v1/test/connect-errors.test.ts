import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'picket-v1-connect-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a v1 connect failure goes through the shared Node-error mapper', () => {
  it('no socket file: CONNECTION_FAILED naming the agent and endpoint, not sent', async () => {
    const path = join(dir, 'none.sock');
    const err = (await AgentClient.unixSocket('waf', path).then(
      () => new Error('connected'),
      (e: unknown) => e,
    )) as AgentProtocolError;
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect(err.code).toBe(ErrorCode.ConnectionFailed);
    expect(err.message).toBe(
      `v1 agent "waf": cannot connect to unix:${path}: no such file or directory (ENOENT)`,
    );
    expect(err.sent).toBe(false);
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });
});
