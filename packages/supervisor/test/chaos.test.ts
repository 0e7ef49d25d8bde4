/** Children that misbehave in every way the issue lists, over real processes. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AgentProtocolError } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { type SupervisedChild, Supervisor } from '../src/index.js';
import { alive, child, collectLogs, fastOptions, next, readyOnLine, until } from './helpers.js';

const running: Supervisor[] = [];
function supervise(o: ConstructorParameters<typeof Supervisor>[0]): Supervisor {
  const s = new Supervisor(fastOptions(o));
  running.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

describe('crash loop', () => {
  it('a child that exits at once is restarted forever with a growing, capped backoff', async () => {
    const logger = collectLogs();
    const s = supervise({
      name: 'crasher',
      command: child('--stderr', 'boom\n', '--exit', '7'),
      logger,
      backoff: { initialMs: 20, maxMs: 160, stableAfterMs: 60_000 },
    });
    const delays: number[] = [];
    const exits: number[] = [];
    s.on('backoff', (ms) => delays.push(ms));
    s.on('exit', (_c, e) => exits.push(e.code ?? -1));
    void s.start();
    await until(() => delays.length >= 8);
    // 20, 40, 80, 160 (each jittered down by at most 20 %), then capped at 160
    for (let i = 1; i < 4; i++) expect(delays[i]).toBeGreaterThan(delays[i - 1] ?? 0);
    for (const d of delays) expect(d).toBeLessThanOrEqual(160);
    for (const d of delays.slice(3)) expect(d).toBeGreaterThanOrEqual(128);
    expect(s.restarts).toBeGreaterThanOrEqual(7);
    expect(s.restarts).toBe(s.stats().generation - 1);
    expect(new Set(exits)).toEqual(new Set([7]));
    expect(s.stats().lastExit).toMatchObject({ code: 7, signal: null });
    // its stderr, tagged with its name
    expect(logger.lines).toContainEqual({ level: 'info', message: '[crasher] boom' });
    expect(logger.text('warn')).toContain('[crasher] restarting in');
  });

  it('the backoff starts over after a stable uptime, and keeps growing without one', async () => {
    const run = async (stableAfterMs: number): Promise<number[]> => {
      const s = supervise({
        name: 'short-lived',
        command: child('--live', '400'),
        logger: collectLogs(),
        backoff: { initialMs: 20, maxMs: 10_000, stableAfterMs },
      });
      const attempts: number[] = [];
      s.on('backoff', (_ms, attempt) => attempts.push(attempt));
      void s.start();
      await until(() => attempts.length >= 3);
      await s.stop();
      return attempts;
    };
    // the child lives ≥ 400 ms: stable after 100 ms, not stable after a minute
    expect(await run(100)).toEqual([0, 0, 0]);
    expect((await run(60_000)).slice(0, 3)).toEqual([0, 1, 2]);
  });

  it('a program that cannot be spawned (ENOENT) is a failed generation, retried forever', async () => {
    const logger = collectLogs();
    const errors: Error[] = [];
    const s = supervise({ name: 'missing', command: ['/nonexistent/agent', '--x'], logger });
    s.on('error', (e) => errors.push(e));
    const states = new Set<string>();
    s.on('state', (st) => states.add(st));
    void s.start().catch(() => {});
    await until(() => s.restarts >= 4);
    expect(logger.text('error')).toContain(
      '[missing] supervisor "missing": cannot start "/nonexistent/agent" (generation 1):',
    );
    expect(logger.text('error')).toContain('(ENOENT)');
    expect(errors[0]).toBeInstanceOf(AgentProtocolError);
    expect(states.has('ready')).toBe(false);
    expect(s.stats().pid).toBeUndefined();
    expect(s.stats().generation).toBeGreaterThanOrEqual(4);
  });

  it('a missing cwd and a file that is not executable are named as such', async () => {
    const logger = collectLogs();
    const badCwd = supervise({
      name: 'nowhere',
      command: [process.execPath],
      cwd: '/nonexistent-dir',
      logger,
    });
    const text = join(mkdtempSync(join(tmpdir(), 'sup-')), 'notes.txt');
    writeFileSync(text, 'not a program\n', { mode: 0o644 });
    const notExec = supervise({ name: 'text', command: [text], logger });
    void badCwd.start().catch(() => {});
    void notExec.start().catch(() => {});
    await until(() => badCwd.restarts >= 1 && notExec.restarts >= 1);
    expect(logger.text('error')).toContain(
      `cannot start ${JSON.stringify(process.execPath)} (generation 1): no such file or directory (ENOENT) (the cwd "/nonexistent-dir" does not exist)`,
    );
    expect(logger.text('error')).toContain(
      `cannot start ${JSON.stringify(text)} (generation 1): permission denied (EACCES)`,
    );
    rmSync(dirname(text), { recursive: true });
  });
});

describe('ready check', () => {
  it('a child that never says ready is killed at the ready timeout and restarted', async () => {
    const logger = collectLogs();
    const s = supervise({
      name: 'mute',
      command: child('--ignore-eof', '--ignore-term'),
      ready: readyOnLine('ready'),
      readyTimeoutMs: 300,
      stopGraceMs: 200,
      logger,
    });
    const pids: number[] = [];
    s.on('spawn', (c) => pids.push(c.pid));
    let readies = 0;
    s.on('ready', () => readies++);
    void s.start().catch(() => {});
    await until(() => pids.length >= 3);
    expect(readies).toBe(0);
    expect(logger.text('error')).toContain(
      '[mute] pid ' +
        pids[0] +
        ' (generation 1) did not become ready: not ready within readyTimeoutMs (300 ms)',
    );
    // the first two are gone, SIGTERM ignored or not
    await until(() => !alive(pids[0] ?? 0) && !alive(pids[1] ?? 0));
  });

  it('a ready check that rejects fails the generation', async () => {
    const logger = collectLogs();
    let calls = 0;
    const s = supervise({
      name: 'picky',
      command: child(),
      ready: async () => {
        calls++;
        if (calls < 3) throw new Error('bad \u001b[31mhandshake');
      },
      logger,
    });
    await s.start();
    expect(s.stats().generation).toBe(3);
    expect(s.restarts).toBe(2);
    expect(logger.text('error')).toContain('did not become ready: bad \\x1b[31mhandshake');
  });

  it('the child exiting during its ready check fails it at once (not at the timeout)', async () => {
    const logger = collectLogs();
    const s = supervise({
      name: 'quitter',
      command: child('--exit', '3'),
      ready: readyOnLine('ready'),
      readyTimeoutMs: 600_000,
      logger,
    });
    void s.start().catch(() => {});
    await until(() => s.restarts >= 2);
    expect(logger.text('error')).toContain('did not become ready: exited with code 3');
  });
});

describe('stdout line limit', () => {
  it('one huge line: a loud error naming the limit, the child killed and restarted', async () => {
    const logger = collectLogs();
    const errors: Error[] = [];
    const s = supervise({
      name: 'flooder',
      command: child('--ready', '--flood', String(4 * 1024 * 1024)),
      ready: readyOnLine('ready'),
      stdoutLineLimit: 64 * 1024,
      logger,
    });
    s.on('error', (e) => errors.push(e));
    const exits: { pid: number; signal: string | null }[] = [];
    s.on('exit', (c, e) => exits.push({ pid: c.pid, signal: e.signal }));
    await s.start();
    const [second] = await next(s, 'ready');
    expect(second.generation).toBe(2);
    expect(logger.text('error')).toMatch(
      /\[flooder\] supervisor "flooder": pid \d+ wrote a stdout line longer than stdoutLineLimit \(65536 bytes; \d+ bytes without a newline\): killing and restarting it/,
    );
    expect(errors[0]).toMatchObject({ code: 'MESSAGE_TOO_LARGE' });
    // the first one did not exit by itself: it was killed
    expect(exits[0]?.signal).toBe('SIGTERM');
  });
});

describe('killed under load', () => {
  it('a child SIGKILLed while busy comes back and is ready and serving again', async () => {
    const logger = collectLogs();
    const s = supervise({
      name: 'worker',
      command: child('--ready', '--echo'),
      ready: readyOnLine('ready'),
      logger,
    });
    await s.start();
    const first = s.child as SupervisedChild;
    let echoed = 0;
    first.onStdoutLine((l) => {
      if (l.startsWith('echo:')) echoed++;
    });
    const load = setInterval(() => {
      if (first.stdin.writable) first.stdin.write(`${'y'.repeat(2000)}\n`.repeat(20));
    }, 1);
    try {
      await until(() => echoed >= 50);
      process.kill(first.pid, 'SIGKILL');
      expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
      // never the dead one
      const second = await s.whenReady();
      expect(second.generation).toBe(2);
      expect(second.pid).not.toBe(first.pid);
      expect(s.state).toBe('ready');
      const answer = new Promise<string>((resolve) => {
        second.onStdoutLine((l) => resolve(l));
      });
      second.stdin.write('still there?\n');
      expect(await answer).toBe('echo:still there?');
      expect(logger.text('warn')).toContain('ended after');
      expect(logger.text('warn')).toContain('killed by SIGKILL');
    } finally {
      clearInterval(load);
    }
  });
});

describe('stderr', () => {
  it('each stderr line is logged tagged with the name, escaped', async () => {
    const logger = collectLogs();
    const s = supervise({
      name: 'talker',
      command: child('--stderr', 'first\n\u001b[2Jforged\r\n[other] x\u2028y\nlast no newline'),
      logger,
    });
    await s.start();
    const info = (): string[] =>
      logger.lines.filter((l) => l.level === 'info').map((l) => l.message);
    await until(() => info().includes('[talker] [other] x\\u2028y'));
    expect(info()).toEqual(
      expect.arrayContaining([
        '[talker] first',
        '[talker] \\x1b[2Jforged',
        '[talker] [other] x\\u2028y',
      ]),
    );
    // the last line has no newline: it is logged when the pipe closes
    await s.stop();
    expect(info()).toContain('[talker] last no newline');
  });
});

describe('throwing listeners', () => {
  it('an event listener or a stdout line listener that throws is logged, supervision goes on', async () => {
    const logger = collectLogs();
    const s = supervise({
      name: 'clumsy',
      command: child('--ready', '--live', '300'),
      ready: (c, signal) => {
        c.onStdoutLine(() => {
          throw new Error('line listener bug');
        });
        return readyOnLine('ready')(c, signal);
      },
      logger,
    });
    s.on('state', () => {
      throw new Error('state listener bug');
    });
    s.on('exit', () => {
      throw new Error('exit listener bug');
    });
    await s.start();
    // it dies after 300 ms and is restarted and ready again despite the listeners
    await until(() => (s.child?.generation ?? 0) >= 2 && s.state === 'ready');
    const errors = logger.text('error');
    expect(errors).toContain(
      "[clumsy] a 'state' listener threw (ignored): Error: state listener bug",
    );
    expect(errors).toContain(
      "[clumsy] a 'exit' listener threw (ignored): Error: exit listener bug",
    );
    expect(errors).toContain(
      '[clumsy] a stdout line listener threw (ignored): Error: line listener bug',
    );
  });
});
