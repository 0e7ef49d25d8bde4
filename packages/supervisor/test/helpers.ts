/** Shared pieces of the supervisor tests: fixtures, a log collector, event waits, process probes. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from '@picket/protocol';
import type { ReadyCheck, Supervisor, SupervisorEvents, SupervisorOptions } from '../src/index.js';

export const CHILD = fileURLToPath(new URL('./fixtures/child.mjs', import.meta.url));
export const UDS_SERVER = fileURLToPath(new URL('./fixtures/uds-server.mjs', import.meta.url));

/** argv running the child fixture with `flags`. */
export function child(...flags: string[]): string[] {
  return [process.execPath, CHILD, ...flags];
}

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
}

/** A logger that keeps every line. */
export function collectLogs(): Logger & {
  lines: LogLine[];
  text(level?: LogLine['level']): string;
} {
  const lines: LogLine[] = [];
  const at = (level: LogLine['level']) => (message: string) => {
    lines.push({ level, message });
  };
  return {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    text: (level) =>
      lines
        .filter((l) => level === undefined || l.level === level)
        .map((l) => l.message)
        .join('\n'),
  };
}

/** Small delays and graces so the tests run fast; every test may override. */
export function fastOptions(o: SupervisorOptions): SupervisorOptions {
  return {
    stopGraceMs: 300,
    readyTimeoutMs: 15_000,
    ...o,
    backoff: { initialMs: 20, maxMs: 200, ...o.backoff },
  };
}

/** Ready when the child prints `want` on a line of its own (what prox's `ready` check does). */
export function readyOnLine(want: string): ReadyCheck {
  return (c, signal) =>
    new Promise<void>((resolve, reject) => {
      const off = c.onStdoutLine((line) => {
        if (line === want) {
          off();
          resolve();
        }
      });
      signal.addEventListener(
        'abort',
        () => {
          off();
          reject(signal.reason);
        },
        { once: true },
      );
    });
}

/** The next `event` of `s` whose arguments pass `pred`. */
export function next<K extends keyof SupervisorEvents>(
  s: Supervisor,
  event: K,
  pred: (...args: SupervisorEvents[K]) => boolean = () => true,
): Promise<SupervisorEvents[K]> {
  return new Promise((resolve) => {
    const on = (...args: SupervisorEvents[K]): void => {
      if (!pred(...args)) return;
      (s.off as (e: K, l: typeof on) => void)(event, on);
      resolve(args);
    };
    (s.on as (e: K, l: typeof on) => void)(event, on);
  });
}

/** True while `pid` runs (a zombie, killed but not yet reaped, counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Resolves once `cond()` holds; polls every 20 ms (hang guard: the test timeout). */
export async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 20));
}

/** How long `p` takes, in ms. */
export async function timed(p: Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await p;
  return performance.now() - t0;
}
