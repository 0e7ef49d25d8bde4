// The picket-agent process driven with raw frames (what an independent peer sees): mode by
// first frame, the exit codes of the agent itself, and the session's end after Exit.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  type DecodedFrame,
  encodeCbor,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameType,
  isKnownFrame,
} from '../src/index.js';
import { AGENT_VIA } from './mux-helpers.js';

/** A raw agent process: write frames, read frames, await its exit code. */
function agent() {
  const [file, ...args] = AGENT_VIA as [string, ...string[]];
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const decoder = new FrameDecoder();
  const frames: DecodedFrame[] = [];
  const waiters: (() => void)[] = [];
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  child.stdout.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== undefined; f = decoder.next()) frames.push(f);
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return {
    child,
    frames,
    stderr: () => stderr,
    exited,
    send: (...fs: (Frame | Uint8Array)[]) => {
      for (const f of fs) child.stdin.write(f instanceof Uint8Array ? f : encodeFrame(f));
    },
    /** Resolves with the first received frame of type `t`. */
    async waitFor(t: number): Promise<DecodedFrame> {
      for (;;) {
        const found = frames.find((f) => f.t === t);
        if (found) return found;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
}

function logMessages(frames: DecodedFrame[]): string[] {
  return frames.flatMap((f) => (isKnownFrame(f) && f.t === FrameType.Log && f.l ? [f.l.msg] : []));
}

const exec = (path: string, argv: string[], extra: object = {}): Frame => ({
  t: FrameType.Exec,
  x: { path, argv, env: null, cwd: '', ...extra },
});

describe('picket-agent: mode by first frame', () => {
  it('a first frame that is not Exec / PathQuery / FileOp → error log, exit 127', async () => {
    const a = agent();
    a.send({ t: FrameType.Data, s: 0, d: Buffer.from('x') });
    expect(await a.exited).toBe(127);
    expect(logMessages(a.frames).join()).toMatch(/first frame must be exec, path query or file op/);
  });

  it('a Config frame without cfg is not a Config → exit 127', async () => {
    const a = agent();
    a.send({ t: FrameType.Config }, exec('true', ['true']));
    expect(await a.exited).toBe(127);
  });

  it('junk as the first frame → exit 127 with the decode error logged in-band', async () => {
    const a = agent();
    a.child.stdin.end(Buffer.from([0xff, 0x00]));
    expect(await a.exited).toBe(127);
    expect(logMessages(a.frames).join()).toMatch(/reading the first frame failed/);
  });

  it('empty input → exit 127', async () => {
    const a = agent();
    a.child.stdin.end();
    expect(await a.exited).toBe(127);
  });

  it('a start failure sends Exit{127, e} and the agent exits 0', async () => {
    const a = agent();
    a.send(exec('/nonexistent/prog', ['prog']));
    const exit = await a.waitFor(FrameType.Exit);
    expect(exit).toMatchObject({ c: 127, e: expect.stringContaining('/nonexistent/prog') });
    a.child.stdin.end();
    expect(await a.exited).toBe(0);
  });

  it('an extra fd it cannot set up → Exit{127} and the agent exits 127', async () => {
    const a = agent();
    a.send(exec('true', ['true'], { fds: [1] }));
    const exit = await a.waitFor(FrameType.Exit);
    expect(exit).toMatchObject({ c: 127, e: expect.stringContaining('extra fd 1') });
    expect(await a.exited).toBe(127);
  });

  it('Config then Exec: stdout data, EOF on 1 and 2, then Exit; waits for one more frame', async () => {
    const a = agent();
    a.send(
      { t: FrameType.Config, cfg: { env_keep: ['ONLY'], env_remove: null } },
      exec('sh', ['sh', '-c', 'echo "[$ONLY][$OTHER]"'], { env: ['ONLY=yes', 'OTHER=no'] }),
    );
    await a.waitFor(FrameType.Exit);
    const kinds = a.frames.filter((f) => f.t !== FrameType.Log).map((f) => f.t);
    expect(kinds.at(-1)).toBe(FrameType.Exit);
    expect(kinds.filter((t) => t === FrameType.EOF)).toHaveLength(2);
    const out = a.frames.flatMap((f) =>
      isKnownFrame(f) && f.t === FrameType.Data && f.s === 1 ? [Buffer.from(f.d)] : [],
    );
    expect(Buffer.concat(out).toString()).toBe('[yes][]\n');
    // the agent is still there (stdin open): one more frame ends it
    expect(a.child.exitCode).toBe(null);
    a.send({ t: FrameType.Signal, sig: 0 });
    expect(await a.exited).toBe(0);
  });

  it('after Exit, stdin EOF ends the agent too', async () => {
    const a = agent();
    a.send(exec('sh', ['sh', '-c', 'exit 3']));
    expect(await a.waitFor(FrameType.Exit)).toMatchObject({ c: 3 });
    a.child.stdin.end();
    expect(await a.exited).toBe(0);
  });

  it('PathQuery → one PathInfo (entries null when nothing is found), then exit 0', async () => {
    const a = agent();
    a.send({ t: FrameType.PathQuery, q: { paths: ['/nonexistent/dir'] } });
    expect(await a.exited).toBe(0);
    const infos = a.frames.filter((f) => f.t === FrameType.PathInfo);
    expect(infos).toEqual([{ t: FrameType.PathInfo, i: { entries: null } }]);
    // byte-exact: {t:10, i:{entries: null}}
    expect(Buffer.from(encodeFrame(infos[0] as Frame)).toString('hex')).toBe(
      Buffer.from(encodeCbor({ t: 10, i: { entries: null } })).toString('hex'),
    );
  });

  it('hostile frames mid-exec end the read loop; the child still finishes and Exit is sent', async () => {
    const a = agent();
    a.send(exec('sh', ['sh', '-c', 'read x && echo "got [$x]"']));
    a.child.stdin.write(Buffer.from([0xff, 0xff]));
    // the loop ended, so the child's stdin was closed: `read` sees EOF
    expect(await a.waitFor(FrameType.Exit)).toMatchObject({ c: 1 });
    expect(logMessages(a.frames).join()).toMatch(/mux read loop failed/);
    expect(await a.exited).toBe(0);
  });
});
