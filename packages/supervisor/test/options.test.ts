/** Bad options fail at construction with INVALID_ARGUMENT naming the field; env and cwd reach the child. */

import { realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { Supervisor, type SupervisorOptions } from '../src/index.js';
import { child, collectLogs, fastOptions, until } from './helpers.js';

describe('options', () => {
  it.each([
    [{ name: '' }, 'Supervisor: name: expected a non-empty string, got ""'],
    [{ command: [] }, 'Supervisor: command: expected a non-empty array of strings'],
    [{ command: [''] }, 'Supervisor: command:'],
    [{ command: ['a\0b'] }, 'Supervisor: command:'],
    [{ command: 'node x.js' }, 'Supervisor: command:'],
    [{ env: { A: 1 } }, 'Supervisor: env.A: expected a string'],
    [{ env: { 'A=B': 'x' } }, 'Supervisor: env.A=B:'],
    [{ readyTimeoutMs: 0 }, 'Supervisor: readyTimeoutMs: expected a finite number ≥ 1, got 0'],
    [{ stopGraceMs: -1 }, 'Supervisor: stopGraceMs: expected a finite number ≥ 0, got -1'],
    [{ stopGraceMs: Number.NaN }, 'Supervisor: stopGraceMs:'],
    [
      { stdoutLineLimit: 1.5 },
      'Supervisor: stdoutLineLimit: expected an integer ≥ 1 (bytes), got 1.5',
    ],
    [{ stdout: 'pipe' }, 'Supervisor: stdout: expected "lines" or "ignore", got "pipe"'],
    [{ ready: 'line' }, 'Supervisor: ready: expected a function'],
    [{ backoff: { initialMs: -5 } }, 'Supervisor.backoff.initialDelayMs'],
    [{ backoff: { initialMs: 500, maxMs: 100 } }, 'Supervisor.backoff.maxDelayMs'],
    [
      { backoff: { stableAfterMs: Number.POSITIVE_INFINITY } },
      'Supervisor: backoff.stableAfterMs:',
    ],
  ])('%j is refused', (bad, message) => {
    const o = { name: 'x', command: ['node'], ...bad } as unknown as SupervisorOptions;
    expect(() => new Supervisor(o)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new Supervisor(o)).toThrow(message);
  });

  it('env is merged over process.env (undefined removes), cwd is the child’s', async () => {
    process.env.SUPERVISOR_TEST_INHERITED = 'inherited';
    const cwd = realpathSync(tmpdir());
    const run = async (env: SupervisorOptions['env']): Promise<string[]> => {
      const lines: string[] = [];
      const s = new Supervisor(
        fastOptions({
          name: 'env',
          command: child('--print-env', 'SUPERVISOR_TEST_INHERITED'),
          env,
          cwd,
          logger: collectLogs(),
          ready: (c, signal) =>
            new Promise((resolve, reject) => {
              c.onStdoutLine((l) => {
                lines.push(l);
                if (lines.length === 2) resolve();
              });
              signal.addEventListener('abort', () => reject(signal.reason));
            }),
        }),
      );
      await s.start();
      await s.stop();
      return lines;
    };
    try {
      expect(await run(undefined)).toEqual(['env:inherited', `cwd:${cwd}`]);
      expect(await run({ SUPERVISOR_TEST_INHERITED: 'mine' })).toEqual(['env:mine', `cwd:${cwd}`]);
      expect(await run({ SUPERVISOR_TEST_INHERITED: undefined })).toEqual([
        'env:<unset>',
        `cwd:${cwd}`,
      ]);
    } finally {
      delete process.env.SUPERVISOR_TEST_INHERITED;
    }
  });

  it("stdout: 'ignore' drains a chatty child and delivers no lines", async () => {
    const logger = collectLogs();
    const s = new Supervisor(
      fastOptions({
        name: 'quiet',
        command: child('--ready', '--flood', String(8 * 1024 * 1024)),
        stdout: 'ignore',
        stdoutLineLimit: 1024,
        stopGraceMs: 10_000,
        logger,
      }),
    );
    const errors: Error[] = [];
    s.on('error', (e) => errors.push(e));
    await s.start();
    const c = s.child;
    if (!c) throw new Error('no child');
    const lines: string[] = [];
    c.onStdoutLine((l) => lines.push(l));
    // its 8 MiB write was drained, not left blocked on a full pipe
    await until(() => logger.text('info').includes('[quiet] flooded'));
    await s.stop();
    expect(await c.exited).toEqual({ code: 0, signal: null });
    expect(lines).toEqual([]);
    expect(errors).toEqual([]);
  });
});
