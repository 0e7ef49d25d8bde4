import { ErrorCode } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { connectReverse } from '../src/index.js';
import { captureLogger, stampHandler, tempSocket, until } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('a reverse agent’s dial failure goes through the shared Node-error mapper', () => {
  it('no proxy socket: CONNECTION_FAILED naming the endpoint and the reason in words', async () => {
    const sock = tempSocket();
    cleanups.push(() => sock.cleanup());
    const a = connectReverse({
      endpoint: sock.path,
      agentId: 'w',
      handler: stampHandler('w'),
      logger: captureLogger(),
      reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    });
    cleanups.push(() => a.stop());
    const failures: { code: string; message: string; sent?: boolean }[] = [];
    a.on('registrationFailed', (e) => failures.push(e));
    await until(() => failures.length >= 1, 5000, 'a dial failure');
    expect(failures[0]?.code).toBe(ErrorCode.ConnectionFailed);
    expect(failures[0]?.message).toMatch(
      /cannot connect to unix:\S+: (no such file or directory \(ENOENT\)|connection refused \(is anything listening there\?\) \(ECONNREFUSED\))$/,
    );
    expect(failures[0]?.sent).toBe(false);
  });
});
