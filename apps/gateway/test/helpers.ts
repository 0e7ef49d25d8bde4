/**
 * Test helpers: spawn TypeScript entry points (`node --import tsx`) and the
 * built `picket` CLI as real child processes, wait for their stdout lines,
 * and kill them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export const APP_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The `@picket/cli` package folder (a devDependency), found the way Node resolves it. */
export const CLI_DIR = dirname(createRequire(import.meta.url).resolve('@picket/cli/package.json'));

/** The `picket` executable: the `bin` entry of `@picket/cli` (`bin/picket.js`, which runs `dist/main.js`). */
export const PICKET_BIN = join(
  CLI_DIR,
  (JSON.parse(readFileSync(join(CLI_DIR, 'package.json'), 'utf8')) as { bin: { picket: string } })
    .bin.picket,
);

/** A spawned process with everything it printed so far. */
export interface Spawned {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** resolves with the first stdout match of `re` (rejects on exit or after `ms`) */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
}

const running = new Set<ChildProcess>();

/** Starts `node --import tsx <script> ...args` in the app folder (`env` is added to ours). */
export function spawnTs(
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Spawned {
  return spawnNode(['--import', 'tsx', script, ...args], env);
}

/** Starts the built CLI, `picket <args>`, as a user would run it. */
export function spawnPicket(args: string[]): Spawned {
  return spawnNode([PICKET_BIN, ...args]);
}

function spawnNode(nodeArgs: string[], env: Record<string, string> = {}): Spawned {
  const proc = spawn(process.execPath, nodeArgs, {
    cwd: APP_DIR,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_NO_WARNINGS: '1', ...env },
  });
  running.add(proc);
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code) => {
      running.delete(proc);
      resolve(code);
      for (const l of listeners) l();
    });
  });
  const waitFor = (re: RegExp, ms = 20_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = re.exec(out);
        if (m) {
          done();
          resolve(m);
        } else if (proc.exitCode !== null || proc.signalCode !== null) {
          done();
          reject(
            new Error(
              `process exited (${proc.exitCode ?? proc.signalCode}) before ${re}\nstdout:\n${out}\nstderr:\n${err}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${re}\nstdout:\n${out}\nstderr:\n${err}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });
  return { proc, stdout: () => out, stderr: () => err, waitFor, exited };
}

/**
 * Stops every process the tests spawned and waits until they are gone:
 * SIGTERM first (the gateway then removes its temporary sockets), SIGKILL
 * for whatever is still alive after 3 s.
 */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...running].map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          const force = setTimeout(() => p.kill('SIGKILL'), 3_000);
          p.once('exit', () => {
            clearTimeout(force);
            resolve();
          });
          p.kill('SIGTERM');
        }),
    ),
  );
  running.clear();
}

/** A gateway child process and its base URL. */
export interface GatewayProcess extends Spawned {
  base: string;
  port: number;
}

/** Spawns the gateway (`src/main.ts`) and waits for its listening line. */
export async function startGateway(
  args: string[],
  env: Record<string, string> = {},
): Promise<GatewayProcess> {
  const s = spawnTs('src/main.ts', args, env);
  const m = await s.waitFor(/picket gateway listening on (http:\/\/127\.0\.0\.1:(\d+))/);
  return { ...s, base: m[1] as string, port: Number(m[2]) };
}

/** A fresh temporary directory (Unix sockets, config files). */
export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'picket-'));
}

/** Writes a config object as YAML and returns the path. */
export function writeYaml(dir: string, config: unknown): string {
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

/** Polls `fn` until it returns a truthy value (hang guard `ms`). */
export async function until<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 10_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
}
