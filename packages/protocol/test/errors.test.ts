import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProtocolError, ErrorCode } from '../src/index.js';

type ErrorsModule = typeof import('../src/errors.js');

/**
 * Two more copies of errors.ts, each in its own directory: what a user gets when two
 * versions of @picket/protocol are installed side by side (a transport built against
 * one, the pool against the other).
 */
const dirs: string[] = [];
let copyA: ErrorsModule;
let copyB: ErrorsModule;

async function loadCopy(name: string): Promise<ErrorsModule> {
  const dir = mkdtempSync(join(tmpdir(), `picket-errors-${name}-`));
  dirs.push(dir);
  const file = join(dir, 'errors.ts');
  copyFileSync(new URL('../src/errors.ts', import.meta.url), file);
  return (await import(/* @vite-ignore */ pathToFileURL(file).href)) as ErrorsModule;
}

beforeAll(async () => {
  copyA = await loadCopy('a');
  copyB = await loadCopy('b');
});

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('AgentProtocolError across package copies', () => {
  it('the copies really are distinct classes', () => {
    expect(copyA.AgentProtocolError).not.toBe(copyB.AgentProtocolError);
    expect(copyA.AgentProtocolError).not.toBe(AgentProtocolError);
    const a = new copyA.AgentProtocolError(ErrorCode.Timeout, 'a');
    expect(Object.getPrototypeOf(a)).not.toBe(AgentProtocolError.prototype);
  });

  it('instanceof recognises an error of any copy', () => {
    const a = new copyA.AgentProtocolError(ErrorCode.FlowControlPaused, 'paused');
    const b = new copyB.AgentProtocolError(ErrorCode.ConnectionClosed, 'closed');
    expect(a instanceof AgentProtocolError).toBe(true);
    expect(a instanceof copyB.AgentProtocolError).toBe(true);
    expect(b instanceof copyA.AgentProtocolError).toBe(true);
    expect(
      new AgentProtocolError(ErrorCode.Internal, 'x') instanceof copyA.AgentProtocolError,
    ).toBe(true);
  });

  it('from() keeps a foreign error (and its code) instead of wrapping it as INTERNAL', () => {
    const foreign = new copyA.AgentProtocolError(ErrorCode.FlowControlPaused, 'paused', {
      sent: false,
    });
    const got = AgentProtocolError.from(foreign, ErrorCode.Internal, 'ctx');
    expect(got).toBe(foreign);
    expect(got.code).toBe(ErrorCode.FlowControlPaused);
    expect(got.sent).toBe(false);
  });

  it('is not fooled by look-alikes', () => {
    const brand = Symbol.for('picket.AgentProtocolError');
    expect({ code: ErrorCode.Timeout } instanceof AgentProtocolError).toBe(false);
    expect({ [brand]: true, code: 'NOT_A_CODE' } instanceof AgentProtocolError).toBe(false);
    expect({ [brand]: 'yes', code: ErrorCode.Timeout } instanceof AgentProtocolError).toBe(false);
    expect(new Error('x') instanceof AgentProtocolError).toBe(false);
    for (const v of [null, undefined, 'TIMEOUT', 42]) {
      expect((v as unknown) instanceof AgentProtocolError).toBe(false);
    }
    // an object carrying the brand and a valid code is one, by contract
    expect({ [brand]: true, code: ErrorCode.Timeout } instanceof AgentProtocolError).toBe(true);
  });

  it('a subclass keeps the ordinary prototype check', () => {
    class Special extends AgentProtocolError {}
    const special = new Special(ErrorCode.Internal, 's');
    expect(special instanceof Special).toBe(true);
    expect(special instanceof AgentProtocolError).toBe(true);
    expect(special instanceof copyA.AgentProtocolError).toBe(true);
    expect(new AgentProtocolError(ErrorCode.Internal, 'x') instanceof Special).toBe(false);
    expect(new copyA.AgentProtocolError(ErrorCode.Internal, 'x') instanceof Special).toBe(false);
  });
});

describe('AgentProtocolError.sent', () => {
  it('is absent unless a transport states it', () => {
    const err = new AgentProtocolError(ErrorCode.Timeout, 'x');
    expect('sent' in err).toBe(false);
    expect(err.sent).toBeUndefined();
  });

  it('carries the transport’s fact and the cause', () => {
    const cause = new Error('EPIPE');
    const unsent = new AgentProtocolError(ErrorCode.ConnectionClosed, 'x', { sent: false, cause });
    expect(unsent.sent).toBe(false);
    expect(unsent.cause).toBe(cause);
    expect(new AgentProtocolError(ErrorCode.ConnectionClosed, 'y', { sent: true }).sent).toBe(true);
    expect('cause' in new AgentProtocolError(ErrorCode.Timeout, 'z', { sent: true })).toBe(false);
  });
});
