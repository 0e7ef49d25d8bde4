/**
 * stop(): stdin EOF → SIGTERM → SIGKILL to the process group, settled within
 * 2 × stopGraceMs + 1 s in every case. The bounds checked here add generous slack for a
 * loaded machine; what matters is that no case hangs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type SupervisedChild, Supervisor, type SupervisorState } from '../src/index.js';
import {
  alive,
  child,
  collectLogs,
  fastOptions,
  next,
  readyOnLine,
  timed,
  until,
} from './helpers.js';

const GRACE = 300;
const BOUND = 2 * GRACE + 1000;
const SLACK = 4000;

const running: Supervisor[] = [];
const strays: number[] = [];
function supervise(o: ConstructorParameters<typeof Supervisor>[0]): Supervisor {
  const s = new Supervisor(fastOptions({ stopGraceMs: GRACE, ...o }));
  running.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
  for (const pid of strays.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
});

/** The pid the child printed as `<word> <pid>`. */
function printedPid(c: SupervisedChild, word: string): Promise<number> {
  return new Promise((resolve) => {
    const off = c.onStdoutLine((l) => {
      if (l.startsWith(`${word} `)) {
        off();
        resolve(Number(l.slice(word.length + 1)));
      }
    });
  });
}

async function startReady(s: Supervisor): Promise<SupervisedChild> {
  await s.start();
  return s.child as SupervisedChild;
}

describe('stop escalation', () => {
  it('a well-behaved child exits on stdin EOF: no signal is needed', async () => {
    const s = supervise({ name: 'polite', command: child('--ready'), ready: readyOnLine('ready') });
    const c = await startReady(s);
    expect(await timed(s.stop())).toBeLessThan(BOUND + SLACK);
    expect(await c.exited).toEqual({ code: 0, signal: null });
    expect(s.state).toBe('stopped');
    expect(s.child).toBeUndefined();
  });

  it('a child that ignores stdin EOF gets SIGTERM after the grace', async () => {
    const s = supervise({
      name: 'deaf',
      command: child('--ready', '--ignore-eof'),
      ready: readyOnLine('ready'),
    });
    const c = await startReady(s);
    expect(await timed(s.stop())).toBeLessThan(BOUND + SLACK);
    expect(await c.exited).toEqual({ code: null, signal: 'SIGTERM' });
  });

  it('a child that ignores SIGTERM gets SIGKILL, and so does its grandchild in the group', async () => {
    const logger = collectLogs();
    const s = supervise({
      name: 'stubborn',
      command: child('--grandchild', '--ready', '--ignore-eof', '--ignore-term'),
      ready: (c, signal) =>
        Promise.all([printedPid(c, 'grandchild'), readyOnLine('ready')(c, signal)]).then(
          ([pid]) => {
            grandchild = pid;
          },
        ),
      logger,
    });
    let grandchild = 0;
    const c = await startReady(s);
    expect(alive(grandchild)).toBe(true);
    strays.push(grandchild);
    expect(await timed(s.stop())).toBeLessThan(BOUND + SLACK);
    expect(await c.exited).toEqual({ code: null, signal: 'SIGKILL' });
    await until(() => !alive(grandchild));
    expect(logger.text('warn')).toContain(
      `[stubborn] pid ${c.pid} ignored SIGTERM for ${GRACE} ms: SIGKILL`,
    );
  });

  it('a grandchild that escaped the group and holds the pipes does not hold stop() up', async () => {
    const s = supervise({
      name: 'leaky',
      command: child('--escapee', '--ready'),
      ready: (c, signal) =>
        Promise.all([printedPid(c, 'escapee'), readyOnLine('ready')(c, signal)]).then(([pid]) => {
          strays.push(pid);
        }),
    });
    const c = await startReady(s);
    expect(await timed(s.stop())).toBeLessThan(BOUND + SLACK);
    expect(await c.exited).toEqual({ code: 0, signal: null });
  });

  it('a child that already died is stopped at once', async () => {
    const s = supervise({
      name: 'gone',
      command: child('--ready'),
      ready: readyOnLine('ready'),
      backoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    const c = await startReady(s);
    const backoff = next(s, 'backoff');
    process.kill(c.pid, 'SIGKILL');
    await backoff;
    expect(await timed(s.stop())).toBeLessThan(1000 + SLACK);
  });
});

describe('stop() at every moment', () => {
  it('before start: settles, nothing is spawned, start() then rejects', async () => {
    const s = supervise({ name: 'never', command: child() });
    const spawned: unknown[] = [];
    s.on('spawn', (c) => spawned.push(c));
    await s.stop();
    expect(s.state).toBe('stopped');
    await expect(s.start()).rejects.toMatchObject({ code: 'CANCELLED' });
    await expect(s.whenReady()).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(spawned).toEqual([]);
    expect(s.stats()).toMatchObject({ state: 'stopped', generation: 0, restarts: 0 });
  });

  it('during the backoff: settles at once, no further spawn', async () => {
    const s = supervise({
      name: 'resting',
      command: child('--exit', '1'),
      backoff: { initialMs: 600_000, maxMs: 600_000 },
    });
    void s.start();
    await next(s, 'state', (st) => st === 'backoff');
    const spawns: unknown[] = [];
    s.on('spawn', (c) => spawns.push(c));
    expect(await timed(s.stop())).toBeLessThan(1000 + SLACK);
    expect(spawns).toEqual([]);
    expect(s.state).toBe('stopped');
    // a restart that never happened is not counted
    expect(s.stats()).toMatchObject({ generation: 1, restarts: 0 });
  });

  it('during the ready check: start() and whenReady() reject, the child is stopped', async () => {
    const s = supervise({
      name: 'slow',
      command: child('--ignore-eof'),
      ready: readyOnLine('ready'),
      readyTimeoutMs: 600_000,
    });
    const started = s.start();
    const waiting = s.whenReady();
    const [c] = await next(s, 'spawn');
    expect(s.child).toBe(c);
    expect(s.state).toBe('starting');
    const rejected = Promise.all([
      expect(started).rejects.toMatchObject({ code: 'CANCELLED' }),
      expect(waiting).rejects.toMatchObject({ code: 'CANCELLED' }),
    ]);
    expect(await timed(s.stop())).toBeLessThan(BOUND + SLACK);
    await rejected;
    expect(await c.exited).toEqual({ code: null, signal: 'SIGTERM' });
  });

  it('during a ready check that ignores its signal', async () => {
    const s = supervise({
      name: 'stuck-check',
      command: child(),
      ready: () => new Promise(() => {}),
      readyTimeoutMs: 600_000,
    });
    void s.start().catch(() => {});
    const [c] = await next(s, 'spawn');
    expect(await timed(s.stop())).toBeLessThan(BOUND + SLACK);
    await c.exited;
    expect(alive(c.pid)).toBe(false);
  });

  it('while a failed generation that ignores SIGTERM is being killed', async () => {
    const s = supervise({
      name: 'failing',
      command: child('--ignore-eof', '--ignore-term', '--grandchild'),
      ready: readyOnLine('never'),
      readyTimeoutMs: 200,
      stopGraceMs: 2000,
    });
    void s.start().catch(() => {});
    const [c] = await next(s, 'spawn');
    // the ready timeout failed it: SIGTERM is ignored, SIGKILL is 2 s away
    await next(s, 'state', (st) => st === 'backoff');
    expect(await timed(s.stop())).toBeLessThan(2 * 2000 + 1000 + SLACK);
    expect(alive(c.pid)).toBe(false);
    expect(s.state).toBe('stopped');
  });

  it('whenReady({ signal }) rejects with the signal’s reason, the supervisor runs on', async () => {
    const s = supervise({ name: 'waited', command: child(), ready: readyOnLine('never') });
    void s.start().catch(() => {});
    const ac = new AbortController();
    const waiting = s.whenReady({ signal: ac.signal });
    ac.abort(new Error('gave up waiting'));
    await expect(waiting).rejects.toThrow('gave up waiting');
    expect(s.state).toBe('starting');
  });

  it('is idempotent, and the states go ready → stopping → stopped', async () => {
    const s = supervise({ name: 'twice', command: child('--ready'), ready: readyOnLine('ready') });
    await s.start();
    const states: SupervisorState[] = [];
    s.on('state', (st) => states.push(st));
    const a = s.stop();
    expect(s.stop()).toBe(a);
    await a;
    expect(states).toEqual(['stopping', 'stopped']);
  });
});
