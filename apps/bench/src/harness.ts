import { type ChildProcess, fork } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadOptions, LoadResult } from './load.js';
import { type Aggregate, aggregate, type Sample } from './stats.js';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** Options of a forked worker process. */
export interface WorkerOptions {
  /** write a V8 CPU profile (`--cpu-prof`) into this directory on exit */
  profileDir?: string;
  /** extra node flags, e.g. `--expose-gc` */
  nodeArgs?: string[];
  /** run the process on this CPU only, through `taskset` (its path; see {@link findTaskset}) */
  pin?: { cpu: number; taskset: string };
}

/** The CPUs of a `Cpus_allowed_list` value (`0-1`, `0,2-3`), ascending; empty when unreadable. */
export function parseCpuList(list: string): number[] {
  const cpus = new Set<number>();
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (m === null) return [];
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    for (let c = from; c <= to && c - from < 4096; c++) cpus.add(c);
  }
  return [...cpus].sort((a, b) => a - b);
}

/** The CPUs a process (default this one) may run on, from Linux `/proc`; undefined elsewhere. */
export function allowedCpus(pid: number | 'self' = 'self'): number[] | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(status);
    return m === null ? undefined : parseCpuList(m[1] as string);
  } catch {
    return undefined;
  }
}

/** The path of util-linux's `taskset` on PATH, or undefined (not Linux, not installed). */
export function findTaskset(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'taskset');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** A child process running `worker.ts`, driven over IPC. */
export class WorkerProcess {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private exited = false;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    child.on('message', (raw) => {
      const msg = raw as { id: number; ok: boolean; result?: unknown; error?: string };
      const p = this.pending.get(msg.id);
      if (p === undefined) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`${name}: ${msg.error}`));
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      for (const p of this.pending.values()) {
        p.reject(new Error(`${name} exited (${code ?? signal}) with a request pending`));
      }
      this.pending.clear();
    });
  }

  /** Forks a worker and waits until it is ready for requests. */
  static async start(name: string, options: WorkerOptions = {}): Promise<WorkerProcess> {
    const execArgv = ['--import', 'tsx', ...(options.nodeArgs ?? [])];
    if (options.profileDir !== undefined) {
      // one directory per process: the loader's worker thread writes a profile of its own
      execArgv.push('--cpu-prof', `--cpu-prof-dir=${join(options.profileDir, name)}`);
    }
    const pin = options.pin;
    const child = fork(WORKER, [], {
      // pinned: `taskset -c N node <flags> worker.ts` (exec keeps the IPC descriptor)
      ...(pin === undefined
        ? { execArgv }
        : {
            execPath: pin.taskset,
            execArgv: ['-c', String(pin.cpu), process.execPath, ...execArgv],
          }),
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const worker = new WorkerProcess(name, child);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (raw: unknown): void => {
        if ((raw as { id?: number }).id === 0) {
          child.off('message', onMessage);
          resolve();
        }
      };
      child.on('message', onMessage);
      child.once('exit', (code) => reject(new Error(`${name} exited (${code}) while starting`)));
    });
    return worker;
  }

  /** The worker's process id. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  private request<T>(msg: Record<string, unknown>): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, ...msg });
    });
  }

  /** Calls `fn(args)` exported by `moduleUrl` inside the worker; resolves with its handle and info. */
  create<I = unknown>(moduleUrl: string, fn: string, args?: unknown): Promise<Hosting<I>> {
    return this.request<{ handle: number; info: I }>({ op: 'create', module: moduleUrl, fn, args });
  }

  /** Runs a closed-loop load on a hosted target. */
  run(handle: number, load: LoadOptions): Promise<LoadResult> {
    return this.request<LoadResult>({ op: 'run', handle, load });
  }

  /** Calls a method of a hosted object. */
  invoke<T = unknown>(handle: number, method: string, args?: unknown): Promise<T> {
    return this.request<T>({ op: 'invoke', handle, method, args });
  }

  /** CPU time used by the worker so far, µs. */
  async cpuUs(): Promise<number> {
    const u = await this.request<NodeJS.CpuUsage>({ op: 'cpu' });
    return u.user + u.system;
  }

  /** Closes hosted objects and lets the process exit (writes its CPU profile). */
  async stop(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    try {
      await Promise.race([
        this.request({ op: 'exit' }),
        new Promise((_, reject) => setTimeout(() => reject(new Error('exit timeout')), 10_000)),
      ]);
    } catch {
      this.child.kill('SIGKILL');
    }
    await exited;
  }
}

/** A hosted object's handle plus what its factory reported. */
export interface Hosting<I> {
  handle: number;
  info: I;
}

/** Anything whose CPU time can be sampled (a worker, or any process by pid). */
export interface CpuProbe {
  cpuUs(): Promise<number>;
}

/** CPU time (user + system) of any local process from /proc (Linux; 10 ms resolution). */
export function processCpuProbe(pid: number): CpuProbe {
  return {
    async cpuUs() {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      // fields after the parenthesised command name; utime and stime are the 14th and 15th
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      return (ticks * 1e6) / 100;
    },
  };
}

/**
 * One measured run on `load` (a target in the load process) with the server
 * process's CPU time per operation added when `server` is given.
 */
export async function measure(
  load: WorkerProcess,
  handle: number,
  options: LoadOptions,
  server?: CpuProbe,
): Promise<Sample> {
  const running = load.run(handle, options);
  let serverCpu: Promise<number> | undefined;
  if (server !== undefined) {
    // Sample the server's CPU clock at the window's edges (timers in both processes
    // start within an IPC round trip of each other).
    serverCpu = (async () => {
      await sleep(options.warmupMs);
      const start = await server.cpuUs();
      await sleep(options.durationMs);
      return (await server.cpuUs()) - start;
    })();
  }
  const result = await running;
  if (result.errors > 0 && result.ops === 0) {
    throw new Error(`every call failed: ${result.firstError}`);
  }
  if (serverCpu !== undefined) {
    const used = await serverCpu;
    result.serverCpuUs = result.ops > 0 ? used / result.ops : Number.NaN;
  }
  return result;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A variant measured by {@link measureVariants}. */
export interface Variant {
  key: string;
  run: () => Promise<Sample>;
}

/**
 * Runs every variant `reps` times, interleaved in alternating order (A B C, C B A, A B C …)
 * so slow drifts of a noisy machine hit all of them alike (a fixed order measures the
 * first variant early in every repetition), and returns the medians per variant. One
 * unmeasured round comes first: the first run after the processes start is ~15 % slow
 * (their code is not warm yet), and it would always land on the first variant.
 */
export async function measureVariants(
  variants: readonly Variant[],
  reps: number,
  onSample?: (key: string, sample: Sample) => void,
): Promise<Map<string, Aggregate>> {
  const samples = new Map<string, Sample[]>(variants.map((v) => [v.key, []]));
  const backwards = [...variants].reverse();
  for (const v of variants) await v.run();
  for (let r = 0; r < reps; r++) {
    for (const v of r % 2 === 0 ? variants : backwards) {
      const s = await v.run();
      samples.get(v.key)?.push(s);
      onSample?.(v.key, s);
    }
  }
  return new Map([...samples].map(([k, s]) => [k, aggregate(s)]));
}
