/**
 * Exec mode of the agent (spec §2.3, "Details" §3, §4, §2.8).
 *
 * - argv[0] of the child is `Exec.path`; a path without a slash is looked up in the agent's
 *   own `$PATH` (Go's `exec.Command`); `env: null` inherits the agent's environment, a list is
 *   filtered by the Config's allow-list when a Config came first.
 * - The child runs in its own process group (`detached`, i.e. setsid) and a Signal frame goes
 *   to the whole group (`kill(-pgid)`).
 * - fds 0/1/2 and every extra fd ≥ 3 are libuv `'pipe'` stdio entries — on Unix libuv makes
 *   these AF_UNIX socketpairs, so an extra fd is bidirectional like the original's socketpair.
 * - Exit is sent only after every output stream reached EOF and its frames were handed to the
 *   writer; its code is the exit status, 128 + signal, or 127 with `e` when the child cannot
 *   start (the agent itself then exits 0).
 * - Node reaps only its own children through libuv, so there is no racing reaper that could
 *   steal the child's status (the original's "wait: no child processes" bug). There is no
 *   subreaper either: orphaned grandchildren go to init.
 */
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { getSystemErrorMap } from 'node:util';
import type { Logger } from '@picket/protocol';
import { type AgentConfig, type ExecMsg, FrameType } from '../frames.js';
import type { Mux } from '../mux.js';
import { filterEnv } from './env.js';

/** The highest extra fd number the agent sets up (a guard against a huge stdio array). */
export const MAX_EXTRA_FD = 1023;

/** Exit code for "could not start" (and the agent's own exit for a bad first frame). */
export const EXIT_CANNOT_START = 127;

/** Thrown for a command that cannot even be built (the agent exits 127). */
export class BuildError extends Error {}

/** Go's `exec.LookPath` for a name without a slash, over `pathValue`. */
export function lookPath(name: string, pathValue: string | undefined): string | undefined {
  for (let dir of (pathValue ?? '').split(delimiter)) {
    if (dir === '') dir = '.'; // Go: an empty PATH entry is the current directory
    const candidate = join(dir, name);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, fsConstants.X_OK);
      return dir === '.' ? `./${name}` : candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** `KEY=VALUE` entries as a spawn env object (later duplicates win, as in Go's dedupEnv). */
function envObject(entries: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    const eq = e.indexOf('=');
    if (eq <= 0) continue;
    out[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return out;
}

function errnoText(err: NodeJS.ErrnoException): string {
  if (typeof err.errno === 'number') {
    const known = getSystemErrorMap().get(err.errno);
    if (known) return known[1];
  }
  return err.code ?? err.message;
}

/** The signal number of a Node signal name (0 when unknown). */
export function signalNumber(name: NodeJS.Signals | null): number {
  if (name === null) return 0;
  return (osConstants.signals as Record<string, number>)[name] ?? 0;
}

interface Built {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string | undefined;
  stdio: StdioOptions;
  extraFds: number[];
  uid: number | undefined;
  gid: number | undefined;
}

/**
 * Everything spawn needs, or a BuildError (the original's buildCmd failures: a bad SUDO_UID,
 * an extra fd it cannot set up). A command that is not found is a start failure, not this.
 */
export function buildCommand(
  exec: ExecMsg,
  config: AgentConfig | undefined,
  agentEnv: NodeJS.ProcessEnv,
): Built {
  let env: NodeJS.ProcessEnv = agentEnv;
  if (exec.env !== null && exec.env !== undefined) {
    env = envObject(config ? filterEnv(exec.env, config.env_keep, config.env_remove) : exec.env);
  }
  const extraFds = [...new Set(exec.fds ?? [])].sort((a, b) => a - b);
  const stdio: ('pipe' | 'ignore')[] = ['pipe', 'pipe', 'pipe'];
  for (const fd of extraFds) {
    if (!Number.isInteger(fd) || fd < 3 || fd > MAX_EXTRA_FD) {
      throw new BuildError(`extra fd ${fd} is not between 3 and ${MAX_EXTRA_FD}`);
    }
    while (stdio.length <= fd) stdio.push('ignore');
    stdio[fd] = 'pipe';
  }
  let uid: number | undefined;
  let gid: number | undefined;
  const sudoUid = agentEnv.SUDO_UID;
  if (sudoUid !== undefined && sudoUid !== '') {
    // running under sudo: the child runs as the user who called sudo
    if (!/^\d+$/.test(sudoUid) || Number(sudoUid) > 0xffffffff) {
      throw new BuildError(`invalid SUDO_UID "${sudoUid}"`);
    }
    uid = Number(sudoUid);
    gid = uid;
    const sudoGid = agentEnv.SUDO_GID;
    if (sudoGid !== undefined && sudoGid !== '') {
      if (!/^\d+$/.test(sudoGid) || Number(sudoGid) > 0xffffffff) {
        throw new BuildError(`invalid SUDO_GID "${sudoGid}"`);
      }
      gid = Number(sudoGid);
    }
  }
  return {
    file: exec.path,
    args: (exec.argv ?? []).slice(1),
    env,
    cwd: exec.cwd === '' || exec.cwd === undefined ? undefined : exec.cwd,
    stdio,
    extraFds,
    uid,
    gid,
  };
}

/** Starts the child; resolves with it, or rejects with the start error's text. */
function start(built: Built, argv0: string, agentPath: string | undefined): Promise<ChildProcess> {
  let file = built.file;
  if (file === '') return Promise.reject(new Error('exec: no command'));
  if (!file.includes('/')) {
    const found = lookPath(file, agentPath);
    if (found === undefined) {
      return Promise.reject(new Error(`exec: "${file}": executable file not found in $PATH`));
    }
    file = found;
  }
  if (built.cwd !== undefined) {
    // spawn would blame the program for a bad cwd; say what Go says
    try {
      if (!statSync(built.cwd).isDirectory()) {
        return Promise.reject(new Error(`chdir ${built.cwd}: not a directory`));
      }
    } catch (err) {
      return Promise.reject(
        new Error(`chdir ${built.cwd}: ${errnoText(err as NodeJS.ErrnoException)}`),
      );
    }
  }
  return new Promise<ChildProcess>((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(file, built.args, {
        argv0,
        cwd: built.cwd,
        env: built.env,
        stdio: built.stdio,
        detached: true, // own session and process group: signals go to -pid
        ...(built.uid === undefined ? {} : { uid: built.uid, gid: built.gid }),
      });
    } catch (err) {
      reject(new Error(`fork/exec ${file}: ${(err as Error).message}`));
      return;
    }
    child.once('spawn', () => resolve(child));
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (child.pid === undefined) {
        const where = err.syscall === 'spawn' || err.path === undefined ? file : err.path;
        reject(new Error(`fork/exec ${where}: ${errnoText(err)}`));
      }
    });
  });
}

/** Copies `source` to stream `fd` of the mux, then EOF. Resolves when all of it was handed over. */
async function bridgeOut(mux: Mux, fd: number, source: Readable, logger: Logger): Promise<void> {
  try {
    for await (const chunk of source) {
      await mux.sendData(fd, chunk as Uint8Array);
    }
  } catch (err) {
    logger.debug('reading a child stream failed', { stream: fd, error: (err as Error).message });
  }
  await mux.sendEOF(fd).catch(() => undefined);
}

/** A stream handler writing into one of the child's inputs, with backpressure. */
function intoChild(target: Writable, fd: number, logger: Logger) {
  target.on('error', (err: NodeJS.ErrnoException) => {
    // EPIPE after the child closed its end is expected
    logger.debug('writing to the child failed', { stream: fd, error: err.code ?? err.message });
  });
  return {
    write(data: Uint8Array): Promise<void> | undefined {
      if (target.destroyed || target.writableEnded) return undefined;
      if (target.write(data)) return undefined;
      return new Promise<void>((resolve) => {
        const done = () => {
          target.off('drain', done);
          target.off('close', done);
          resolve();
        };
        target.on('drain', done);
        target.on('close', done);
      });
    },
    eof(): void {
      if (!target.destroyed && !target.writableEnded) target.end();
    },
  };
}

/** Runs exec mode to the end; resolves with the agent's own exit code. */
export async function runExec(
  mux: Mux,
  exec: ExecMsg,
  config: AgentConfig | undefined,
  logger: Logger,
  agentEnv: NodeJS.ProcessEnv,
): Promise<number> {
  let built: Built;
  try {
    built = buildCommand(exec, config, agentEnv);
  } catch (err) {
    const message = (err as Error).message;
    logger.error('build command failed', { error: message });
    await mux.send({ t: FrameType.Exit, c: EXIT_CANNOT_START, e: message }).catch(() => undefined);
    return EXIT_CANNOT_START;
  }
  logger.debug('building command', { path: exec.path, cwd: exec.cwd });

  let child: ChildProcess;
  try {
    child = await start(built, exec.path, agentEnv.PATH);
  } catch (err) {
    const message = (err as Error).message;
    logger.error('start command failed', { error: message });
    await mux.send({ t: FrameType.Exit, c: EXIT_CANNOT_START, e: message }).catch(() => undefined);
    return 0; // the error is in the Exit frame
  }
  const pid = child.pid as number;
  logger.debug('child started', { pid });

  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve(signal !== null ? 128 + signalNumber(signal) : (code ?? 0));
    });
  });

  const inputs: Writable[] = [];
  if (child.stdin) {
    mux.registerStream(0, intoChild(child.stdin, 0, logger));
    inputs.push(child.stdin);
  }
  const outputs: Promise<void>[] = [];
  if (child.stdout) outputs.push(bridgeOut(mux, 1, child.stdout, logger));
  if (child.stderr) outputs.push(bridgeOut(mux, 2, child.stderr, logger));
  for (const fd of built.extraFds) {
    const sock = child.stdio[fd] as (Readable & Writable) | null | undefined;
    if (!sock) continue;
    mux.registerStream(fd, intoChild(sock, fd, logger));
    inputs.push(sock);
    outputs.push(bridgeOut(mux, fd, sock, logger));
  }

  mux.onSignal((sig) => {
    logger.debug('forwarding signal to child', { signal: sig });
    try {
      process.kill(-pid, sig);
    } catch (err) {
      try {
        process.kill(pid, sig); // not a group leader any more: the child alone
      } catch {
        logger.warn('failed to send signal to child group', {
          signal: sig,
          error: (err as Error).message,
        });
      }
    }
  });

  const loop = mux.run().then(
    () => undefined,
    (err: Error) => logger.warn('mux read loop failed', { error: err.message }),
  );
  // The local side is gone or closed the session: no more input can come for the child.
  void loop.then(() => {
    for (const input of inputs) if (!input.destroyed && !input.writableEnded) input.end();
  });

  const code = await exited;
  logger.debug('child exited', { code });
  await Promise.all(outputs); // every output drained and its EOF handed to the writer
  await mux.send({ t: FrameType.Exit, c: code }).catch((err: Error) => {
    logger.warn('failed to send exit frame', { error: err.message });
  });
  // one more frame (normally none) or the local side closing our stdin, then we are done
  await Promise.race([mux.waitForInput(), loop]);
  mux.close('exec finished');
  return 0;
}
