import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentProtocolError, ErrorCode, silentLogger } from '@picket/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentClientV2Uds } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'picket-uds-connect-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function failure(path: string): Promise<AgentProtocolError> {
  return AgentClientV2Uds.connect('waf', path, { logger: silentLogger }).then(
    () => {
      throw new Error('connected');
    },
    (e: unknown) => e as AgentProtocolError,
  );
}

describe('a UDS connect failure goes through the shared Node-error mapper', () => {
  it('no socket file: CONNECTION_FAILED, the endpoint and the reason in words, not sent', async () => {
    const path = join(dir, 'none.sock');
    const err = await failure(path);
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect(err.code).toBe(ErrorCode.ConnectionFailed);
    expect(err.message).toMatch(
      /^.*waf.*: cannot connect to unix:\S+: no such file or directory \(ENOENT\)$/,
    );
    expect(err.message).toContain(`unix:${path}:`);
    expect(err.sent).toBe(false);
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('a path past sun_path is named as too long, not as missing', async () => {
    const path = join(dir, 'y'.repeat(120));
    const err = await failure(path);
    expect(err.code).toBe(ErrorCode.ConnectionFailed);
    expect(err.message).toContain(
      `the socket path is ${Buffer.byteLength(path)} bytes, longer than`,
    );
  });
});
