/** Everything a supervisor runs is tied to its owner's signal (prox's Background-ctx bug). */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Supervisor } from '../src/index.js';
import { alive, child, collectLogs } from './helpers.js';

const SCRIPT = fileURLToPath(new URL('./fixtures/lifetime.ts', import.meta.url));

describe('owner signal', () => {
  it('aborting it stops every supervisor in every state, and leaves nothing behind', async () => {
    const p = spawn(process.execPath, ['--import', 'tsx', SCRIPT], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const guard = setTimeout(() => p.kill('SIGKILL'), 25_000);
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
      p.once('close', (c, s) => resolve([c, s])),
    );
    clearTimeout(guard);
    // exited by itself (not killed by the guard): no timer, socket or child was left
    expect({ code, signal, err }).toEqual({ code: 0, signal: null, err: '' });
    const lines = out.trim().split('\n');
    expect(lines.at(-1)).toBe('stopped');
    const pids = (lines.find((l) => l.startsWith('pids ')) ?? '').split(' ').slice(1).map(Number);
    expect(pids.length).toBe(3);
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });

  it('an owner signal aborted before start: start() rejects, nothing is spawned', async () => {
    const owner = new AbortController();
    owner.abort();
    const s = new Supervisor({
      name: 'late',
      command: child(),
      signal: owner.signal,
      logger: collectLogs(),
    });
    const spawned: unknown[] = [];
    s.on('spawn', (c) => spawned.push(c));
    await expect(s.start()).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(s.state).toBe('stopped');
    expect(spawned).toEqual([]);
  });

  it('aborting it while running is stop(): the state ends at stopped and the child is gone', async () => {
    const owner = new AbortController();
    const s = new Supervisor({
      name: 'owned',
      command: child('--ignore-eof'),
      signal: owner.signal,
      stopGraceMs: 200,
      logger: collectLogs(),
    });
    await s.start();
    const c = s.child;
    if (!c) throw new Error('no child');
    const stopped = new Promise<void>((resolve) =>
      s.on('state', (st) => st === 'stopped' && resolve()),
    );
    owner.abort();
    await stopped;
    await c.exited;
    expect(alive(c.pid)).toBe(false);
    // stop() after the abort is the same stop
    await s.stop();
  });
});
