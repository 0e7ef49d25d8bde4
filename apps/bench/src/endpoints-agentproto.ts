/**
 * Worker factories of the `agentproto` scenario: bytes through a real `picket-agent` child
 * (Data frames over its stdio, both ways) to `cat` and back, against `cat` on plain pipes;
 * FileOp Stat round trips to a `picket-agent` in file-op mode, against an in-process stat.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type ExecMsg, FrameType, files, Mux } from '@picket/agentproto';
import type { Hosted } from './worker.js';

/** The `picket-agent` program of the workspace package (runs its built dist/). */
export const AGENT_BIN = join(
  dirname(createRequire(import.meta.url).resolve('@picket/agentproto/package.json')),
  'bin',
  'picket-agent.js',
);

/**
 * Calls waiting for their bytes to come back on a byte stream, in order: call k resolves
 * once the stream has returned as many bytes as calls 1…k sent.
 */
class Returns {
  private sent = 0;
  private received = 0;
  private readonly waiting: { until: number; resolve: () => void }[] = [];
  private head = 0;

  expect(bytes: number): Promise<void> {
    this.sent += bytes;
    const until = this.sent;
    return new Promise((resolve) => this.waiting.push({ until, resolve }));
  }

  got(bytes: number): void {
    this.received += bytes;
    while (this.head < this.waiting.length) {
      const w = this.waiting[this.head] as { until: number; resolve: () => void };
      if (w.until > this.received) break;
      this.head++;
      w.resolve();
    }
    if (this.head === this.waiting.length) {
      this.waiting.length = 0;
      this.head = 0;
    }
  }
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Spawns `picket-agent` with a Mux on its stdio; the mux's read loop runs until it ends. */
function startAgent() {
  const child = spawn(process.execPath, [AGENT_BIN], { stdio: ['pipe', 'pipe', 'ignore'] });
  const mux = new Mux(child.stdout, child.stdin);
  return { child, mux, loop: mux.run().catch(() => -1) };
}

/**
 * One call writes `chunkSize` bytes to `cat`'s stdin and resolves when as many came back on
 * its stdout: `via: 'agent'` runs cat under `picket-agent` (Exec, then Data frames of ≤ 32 KiB
 * both ways through the mux), `via: 'pipe'` spawns cat with plain pipes. `info.pid`: the
 * process at the far end (the agent, whose child is cat; or cat).
 */
export async function catStream(args: {
  via: 'agent' | 'pipe';
  chunkSize: number;
}): Promise<Hosted> {
  const chunk = Buffer.alloc(args.chunkSize, 0x5a);
  const returns = new Returns();
  let child: ChildProcess;
  let write: (data: Buffer) => void;
  let close: () => Promise<void>;
  if (args.via === 'pipe') {
    const cat = spawn('cat', [], { stdio: ['pipe', 'pipe', 'ignore'] });
    child = cat;
    cat.stdout.on('data', (data: Buffer) => returns.got(data.length));
    write = (data) => void cat.stdin.write(data);
    close = async () => {
      cat.stdin.end();
      await exited(child);
    };
  } else {
    const agent = startAgent();
    child = agent.child;
    const stdin = agent.child.stdin;
    const { mux } = agent;
    mux.registerStream(1, { write: (data) => returns.got(data.length), eof: () => {} });
    const cat: ExecMsg = { path: 'cat', argv: ['cat'], env: null, cwd: '' };
    await mux.send({ t: FrameType.Exec, x: cat });
    write = (data) => void mux.sendData(0, data);
    close = async () => {
      await mux.sendEOF(0); // cat ends, the agent sends Exit
      await agent.loop;
      stdin.end(); // the agent exits at the end of its input
      await exited(child);
    };
  }
  if (child.pid === undefined)
    throw new Error(`could not start ${args.via === 'pipe' ? 'cat' : AGENT_BIN}`);
  return {
    info: { pid: child.pid },
    bytesPerOp: args.chunkSize,
    call: () => {
      const back = returns.expect(args.chunkSize);
      write(chunk);
      return back;
    },
    close,
  };
}

/** FileOp Stat of `path` through `picket-agent` in file-op mode (its first frame is a FileOp). */
export async function fileOpStat(args: { path: string }): Promise<Hosted> {
  const { child, mux, loop } = startAgent();
  const fc = files(mux);
  await fc.stat(args.path); // enters file-op mode; fails here if the agent cannot serve
  return {
    info: { pid: child.pid },
    call: () => fc.stat(args.path),
    close: async () => {
      child.stdin.end();
      await loop;
      await exited(child);
    },
  };
}

/** The baseline of {@link fileOpStat}: `fs.promises.stat` of the same path in this process. */
export function localStat(args: { path: string }): Hosted {
  return { call: () => stat(args.path) };
}
