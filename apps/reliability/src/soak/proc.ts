/**
 * Child processes for the soak: spawn, watch their output for a readiness line, kill with
 * SIGKILL (a crash, as far as their peers can tell), restart; and count a process's open
 * file descriptors and sockets through /proc.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Every child still running: killed when this process exits, however it exits. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
  // Signals end a process without 'exit' unless handled: turn them into an exit.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => process.exit(130));
  }
}

/** A named child process that can be killed and started again with the same command. */
export class ManagedProcess {
  private child: ChildProcess | undefined;
  private lines: string[] = [];
  private waiters: (() => void)[] = [];
  private exitPromise: Promise<void> = Promise.resolve();
  /** times it was started */
  starts = 0;

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: readonly string[],
    private readonly options: { cwd?: string; echo?: boolean } = {},
  ) {}

  /** The running child's pid. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** True while the child runs. */
  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  /** The last output lines (stdout and stderr), for diagnostics. */
  tail(n = 20): string[] {
    return this.lines.slice(-n);
  }

  /** Starts the process; `ready` (if given) must appear in its output within `timeoutMs`. */
  async start(ready?: RegExp, timeoutMs = 20_000): Promise<string | undefined> {
    this.lines = [];
    this.starts++;
    const child = spawn(this.command, this.args, {
      cwd: this.options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FORCE_COLOR: '0' },
    });
    this.child = child;
    installExitHook();
    live.add(child);
    this.exitPromise = new Promise((resolve) =>
      child.once('exit', () => {
        live.delete(child);
        resolve();
      }),
    );
    const onData = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.length === 0) continue;
        this.lines.push(line);
        if (this.lines.length > 200) this.lines.shift();
        if (this.options.echo) process.stderr.write(`[${this.name}] ${line}\n`);
      }
      for (const w of this.waiters.splice(0)) w();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', () => {
      for (const w of this.waiters.splice(0)) w();
    });
    if (ready === undefined) return undefined;
    return this.waitFor(ready, timeoutMs);
  }

  /** Resolves with the first output line matching `re` (searching what was already printed). */
  waitFor(re: RegExp, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `${this.name}: no line matching ${re} within ${timeoutMs} ms; last output:\n  ${this.tail().join('\n  ')}`,
          ),
        );
      }, timeoutMs);
      const check = (): void => {
        const hit = this.lines.find((l) => re.test(l));
        if (hit !== undefined) {
          clearTimeout(timer);
          resolve(hit);
          return;
        }
        if (!this.running) {
          clearTimeout(timer);
          reject(
            new Error(
              `${this.name} exited before printing ${re}; last output:\n  ${this.tail().join('\n  ')}`,
            ),
          );
          return;
        }
        this.waiters.push(check);
      };
      check();
    });
  }

  /** Sends `signal` and waits for the exit (SIGKILL after `graceMs` if it does not go). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }
}

/** Open file descriptors of `pid`, and how many of them are sockets (Linux /proc). */
export function countFds(pid: number): { fds: number; sockets: number } {
  const dir = `/proc/${pid}/fd`;
  let fds = 0;
  let sockets = 0;
  for (const name of readdirSync(dir)) {
    let target: string;
    try {
      target = readlinkSync(`${dir}/${name}`);
    } catch {
      continue; // closed while we looked
    }
    fds++;
    if (target.startsWith('socket:')) sockets++;
  }
  return { fds, sockets };
}

/** What each socket of `pid` is, from /proc/net/{tcp,tcp6,unix}: `tcp 127.0.0.1:80->127.0.0.1:5000 01`, `unix /path`. */
export function describeSockets(pid: number): Map<string, number> {
  const inodes = new Set<string>();
  const dir = `/proc/${pid}/fd`;
  for (const name of readdirSync(dir)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`${dir}/${name}`));
      if (m?.[1] !== undefined) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const kinds = new Map<string, number>();
  const add = (k: string): void => {
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  };
  const seen = new Set<string>();
  const hexAddr = (s: string): string => {
    const [ip, port] = s.split(':') as [string, string];
    const p = Number.parseInt(port, 16);
    if (ip.length === 8) {
      const b = Buffer.from(ip, 'hex');
      return `${b[3]}.${b[2]}.${b[1]}.${b[0]}:${p}`;
    }
    return `[v6]:${p}`;
  };
  for (const file of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const inode = f[9];
      if (inode === undefined || !inodes.has(inode)) continue;
      seen.add(inode);
      const state = f[3] === '0A' ? 'LISTEN' : f[3] === '01' ? 'ESTABLISHED' : `state ${f[3]}`;
      add(
        `tcp ${hexAddr(f[1] as string)} -> ${hexAddr(f[2] as string)} ${state}`.replace(
          /:\d{5}\b(?= ->)/,
          ':*',
        ),
      );
    }
  }
  try {
    for (const line of readFileSync(`/proc/${pid}/net/unix`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const inode = f[6];
      if (inode === undefined || !inodes.has(inode)) continue;
      seen.add(inode);
      add(`unix ${f[7] ?? '(unnamed)'}`);
    }
  } catch {
    // no unix table
  }
  for (const inode of inodes) if (!seen.has(inode)) add('other socket');
  return kinds;
}
