// The Mux over real kernel sockets (the original's mux_test.go + fileop_test.go, plus what the
// TypeScript mux adds: backpressure-aware priority, concurrent agent-side handlers, hostile input).
import type { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  encodeCbor,
  encodeFrame,
  FileOp,
  type FileOpResp,
  FrameType,
  Mux,
  RecordDirection,
} from '../src/index.js';
import { socketPair } from './mux-helpers.js';

const open: Socket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.destroy();
});

async function pair(options: ConstructorParameters<typeof Mux>[2] = {}, agentOptions = options) {
  const [a, b] = await socketPair();
  open.push(a, b);
  return { local: new Mux(a, a, options), agent: new Mux(b, b, agentOptions), a, b };
}

function collector() {
  const parts: Buffer[] = [];
  let eof = false;
  return {
    handler: {
      write: (d: Uint8Array) => {
        parts.push(Buffer.from(d));
      },
      eof: () => {
        eof = true;
      },
    },
    text: () => Buffer.concat(parts).toString(),
    raw: () => Buffer.concat(parts),
    bytes: () => Buffer.concat(parts).length,
    get eof() {
      return eof;
    },
  };
}

describe('Mux streams', () => {
  it('stdin → EOF → echo on stdout → Exit, in order', async () => {
    const { local, agent } = await pair();
    const stdin = collector();
    agent.registerStream(0, {
      write: stdin.handler.write,
      eof: () => {
        void (async () => {
          await agent.sendData(1, Buffer.from(`echo:${stdin.text()}`));
          await agent.sendEOF(1);
          await agent.send({ t: FrameType.Exit, c: 0 });
        })();
      },
    });
    agent.run().catch(() => undefined);
    const stdout = collector();
    let eofBeforeExit = false;
    local.registerStream(1, stdout.handler);
    local.onExit(() => {
      eofBeforeExit = stdout.eof;
    });
    await local.sendData(0, Buffer.from('hello'));
    await local.sendEOF(0);
    expect(await local.run()).toBe(0);
    expect(stdout.text()).toBe('echo:hello');
    expect(eofBeforeExit).toBe(true);
  });

  it('delivers a signal and returns the Exit code (143)', async () => {
    const { local, agent } = await pair();
    agent.onSignal((sig) => void agent.send({ t: FrameType.Exit, c: 128 + sig }));
    agent.run().catch(() => undefined);
    await local.send({ t: FrameType.Signal, sig: 15 });
    expect(await local.run()).toBe(143);
  });

  it('drops Data with an empty payload and ignores unknown frame types', async () => {
    const { local, a, b } = await pair();
    const out = collector();
    local.registerStream(1, out.handler);
    let writes = 0;
    local.registerStream(2, {
      write: () => {
        writes++;
      },
      eof: () => undefined,
    });
    b.write(encodeFrame({ t: FrameType.Data, s: 2, d: new Uint8Array(0) }));
    b.write(encodeCbor({ t: 99, x: 'from the future' }));
    b.write(encodeFrame({ t: FrameType.Data, s: 1, d: Buffer.from('ok') }));
    b.write(encodeFrame({ t: FrameType.Exit, c: 7 }));
    expect(await local.run()).toBe(7);
    expect(writes).toBe(0);
    expect(out.text()).toBe('ok');
    void a;
  });

  it('returns −1 when closed without an Exit, and when the stream ends without one', async () => {
    const first = await pair();
    const loop = first.local.run();
    first.local.close('cancelled by the test');
    expect(await loop).toBe(-1);

    const second = await pair();
    const loop2 = second.local.run();
    second.b.end();
    expect(await loop2).toBe(-1);
  });

  it('records frames both ways, including those read before the loop', async () => {
    const seen: [number, number, number][] = [];
    const recorder = {
      writeFrame: (seq: number, dir: number, frame: { t: number }) =>
        seen.push([seq, dir, frame.t]),
    };
    const { local, agent } = await pair({ recorder, recordSeq: 4 }, {});
    void (async () => {
      await agent.send({ t: FrameType.Log, l: { lvl: 0, msg: 'first' } });
      await agent.send({ t: FrameType.Exit, c: 0 });
    })();
    await local.send({ t: FrameType.Signal, sig: 2 });
    const first = await local.readFrame();
    expect(first?.t).toBe(FrameType.Log);
    expect(await local.run()).toBe(0);
    expect(seen).toEqual([
      [4, RecordDirection.Send, FrameType.Signal],
      [4, RecordDirection.Recv, FrameType.Log],
      [4, RecordDirection.Recv, FrameType.Exit],
    ]);
  });
});

describe('Mux file-op RPC', () => {
  it('runs 50 concurrent RPCs with no cross-talk, handlers concurrently up to the limit', async () => {
    const { local, agent } = await pair({}, { fileOpConcurrency: 4 });
    let running = 0;
    let peak = 0;
    agent.onFileOp(async (req) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, (req.id * 7) % 5));
      running--;
      return { id: 0, p: `answer:${req.p}` };
    });
    agent.run().catch(() => undefined);
    local.run().catch(() => undefined);
    const calls = Array.from({ length: 50 }, (_, i) =>
      local.fileOp({ op: FileOp.Stat, p: `/file/${i}` }),
    );
    const answers = await Promise.all(calls);
    answers.forEach((resp, i) => {
      expect(resp.p).toBe(`answer:/file/${i}`);
    });
    expect(new Set(answers.map((r) => r.id)).size).toBe(50);
    expect(answers.every((r) => r.id !== 0)).toBe(true);
    expect(peak).toBeGreaterThan(1); // not served one at a time in the read loop
    expect(peak).toBeLessThanOrEqual(4);
  });

  it('answers EIO when the handler throws, with the request id copied back', async () => {
    const { local, agent } = await pair();
    agent.onFileOp(() => {
      throw new Error('disk on fire');
    });
    agent.run().catch(() => undefined);
    local.run().catch(() => undefined);
    const resp = await local.fileOp({ op: FileOp.Getwd });
    expect(resp.er).toBe(5);
    expect(resp.em).toContain('disk on fire');
  });

  it('allocates ids skipping 0 and wrapping at 2^32', async () => {
    const ids: number[] = [];
    const { local, agent } = await pair();
    agent.onFileOp((req) => {
      ids.push(req.id);
      return { id: 0 };
    });
    agent.run().catch(() => undefined);
    local.run().catch(() => undefined);
    (local as unknown as { nextId: number }).nextId = 0xfffffffe;
    await local.fileOp({ op: FileOp.Getwd });
    await local.fileOp({ op: FileOp.Getwd });
    await local.fileOp({ op: FileOp.Getwd });
    expect(ids).toEqual([0xffffffff, 1, 2]);
  });

  it('cancels with an AbortSignal and drops the late reply', async () => {
    const { local, agent } = await pair();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    agent.onFileOp(async (req) => {
      if (req.p === '/slow') await gate;
      return { id: 0, p: req.p };
    });
    agent.run().catch(() => undefined);
    local.run().catch(() => undefined);
    const ac = new AbortController();
    const slow = local.fileOp({ op: FileOp.Stat, p: '/slow' }, { signal: ac.signal });
    ac.abort();
    await expect(slow).rejects.toMatchObject({ code: ErrorCode.Cancelled });
    release();
    // the late answer to /slow arrives and is dropped; the next call gets its own answer
    const next = await local.fileOp({ op: FileOp.Stat, p: '/next' });
    expect(next.p).toBe('/next');
  });

  it('fails every pending call with CONNECTION_CLOSED when the stream ends', async () => {
    const { local, agent, b } = await pair();
    agent.onFileOp(() => new Promise<FileOpResp>(() => undefined)); // never answers
    agent.run().catch(() => undefined);
    const loop = local.run();
    const calls = [local.fileOp({ op: FileOp.Stat, p: '/a' }), local.fileOp({ op: FileOp.Getwd })];
    await new Promise((r) => setTimeout(r, 20));
    b.end();
    expect(await loop).toBe(-1);
    for (const call of calls) {
      await expect(call).rejects.toMatchObject({
        code: ErrorCode.ConnectionClosed,
        message: expect.stringMatching(
          /stream ended while file op \d+ \(request \d+\) was pending/,
        ),
      });
    }
  });
});

describe('Mux outbound priority and backpressure', () => {
  it('a Signal is not stuck behind a data backlog, and data keeps its order', async () => {
    const { local, agent, b } = await pair();
    const total = 8 * 1024 * 1024;
    const payload = Buffer.alloc(total);
    for (let i = 0; i < total; i += 4) payload.writeUInt32BE(i / 4, i);
    // the agent does not read yet: the kernel buffer fills, write() returns false, data queues
    b.pause();
    const sent = local.sendData(0, payload);
    await new Promise((r) => setTimeout(r, 50));
    const signalSent = local.send({ t: FrameType.Signal, sig: 10 });

    const received: Buffer[] = [];
    let bytesAtSignal = -1;
    agent.registerStream(0, {
      write: (d) => {
        received.push(Buffer.from(d));
      },
      eof: () => undefined,
    });
    agent.onSignal(() => {
      bytesAtSignal = received.reduce((n, c) => n + c.length, 0);
      void agent.send({ t: FrameType.Exit, c: 0 });
    });
    const agentLoop = agent.run().catch(() => -1);
    b.resume();
    await signalSent;
    await sent;
    await local.sendEOF(0);
    expect(await local.run()).toBe(0);
    // FIFO would deliver the signal after all 8 MiB; the queue lets it overtake the backlog
    expect(bytesAtSignal).toBeGreaterThanOrEqual(0);
    expect(bytesAtSignal).toBeLessThan(total / 2);
    // everything still arrives, in order
    await new Promise((r) => setTimeout(r, 0));
    local.close();
    void agentLoop;
    await expect.poll(() => received.reduce((n, c) => n + c.length, 0)).toBe(total);
    expect(Buffer.concat(received).equals(payload)).toBe(true);
  });

  it('a slow stream consumer does not hold back signals or other streams', async () => {
    const { local, agent } = await pair();
    let release: () => void = () => undefined;
    const stuck = new Promise<void>((r) => {
      release = r;
    });
    let stdinWrites = 0;
    agent.registerStream(0, {
      write: () => {
        stdinWrites++;
        return stuck; // a child that does not read its stdin
      },
      eof: () => undefined,
    });
    const other = collector();
    agent.registerStream(3, other.handler);
    const signals: number[] = [];
    agent.onSignal((sig) => signals.push(sig));
    const loop = agent.run();
    await local.sendData(0, Buffer.alloc(256 * 1024, 7));
    await local.sendData(3, Buffer.from('other stream'));
    await local.send({ t: FrameType.Signal, sig: 2 });
    await expect.poll(() => signals).toEqual([2]);
    expect(other.text()).toBe('other stream');
    expect(stdinWrites).toBe(1); // the rest of fd 0 waits behind the first write, in order
    release();
    await expect.poll(() => stdinWrites).toBe(8);
    await local.send({ t: FrameType.Exit, c: 0 });
    expect(await loop).toBe(0);
  });

  it('sends fail with CONNECTION_CLOSED once the peer is gone', async () => {
    const { local, b } = await pair();
    b.destroy();
    await expect
      .poll(async () =>
        local.send({ t: FrameType.Signal, sig: 1 }).then(
          () => 'sent',
          (e: { code?: string }) => e.code,
        ),
      )
      .toBe(ErrorCode.ConnectionClosed);
  });

  it('sendData does not copy, and resolves only once the bytes are flushed: the buffer may be reused then', async () => {
    const { local, agent } = await pair();
    const got = collector();
    agent.registerStream(3, {
      write: got.handler.write,
      eof: () => void agent.send({ t: FrameType.Exit }),
    });
    agent.run().catch(() => undefined);
    // one buffer, refilled right after each send resolves (what a read loop with a fixed buffer does)
    const buf = Buffer.alloc(100 * 1024);
    const want: Buffer[] = [];
    for (let round = 0; round < 20; round++) {
      buf.fill(round + 1);
      want.push(Buffer.from(buf));
      await local.sendData(3, buf);
    }
    buf.fill(0xee);
    await local.sendEOF(3);
    expect(await local.run()).toBe(0);
    expect(got.bytes()).toBe(20 * buf.length);
    const all = Buffer.concat(want);
    expect(got.raw().equals(all)).toBe(true);
  });

  it('Data payloads handed to a handler are views that stay valid while later frames are read', async () => {
    const { local, agent } = await pair();
    const kept: Uint8Array[] = [];
    agent.registerStream(1, {
      write: (d) => void kept.push(d), // kept as handed over, no copy
      eof: () => void agent.send({ t: FrameType.Exit }),
    });
    agent.run().catch(() => undefined);
    // 3 MiB in frames whose bytes differ per frame, split across reads in every way
    const frames = 96;
    const sent: Buffer[] = [];
    for (let i = 0; i < frames; i++) {
      const b = Buffer.alloc(32 * 1024 - (i % 7) * 1000);
      for (let j = 0; j < b.length; j += 4) b.writeUInt32BE((i << 20) | j, j);
      sent.push(b);
      void local.sendData(1, b);
    }
    await local.sendEOF(1);
    expect(await local.run()).toBe(0);
    expect(kept.length).toBe(frames);
    // every payload still holds its own bytes after all the reads that followed it
    for (let i = 0; i < frames; i++) {
      expect(Buffer.from(kept[i] as Uint8Array).equals(sent[i] as Buffer)).toBe(true);
    }
  });

  it('splits data into frames of at most 32 KiB', async () => {
    const { local, agent } = await pair();
    const sizes: number[] = [];
    agent.registerStream(3, {
      write: (d) => void sizes.push(d.length),
      eof: () => void agent.send({ t: FrameType.Exit }),
    });
    agent.run().catch(() => undefined);
    await local.sendData(3, Buffer.alloc(100 * 1024, 1));
    await local.sendEOF(3);
    expect(await local.run()).toBe(0);
    expect(sizes).toEqual([32768, 32768, 32768, 4096]);
  });
});

describe('Mux memory', () => {
  it('reading many chunks does not pile up state (a long-lived mux stays flat)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const { agent, a } = await pair();
    let got = 0;
    agent.registerStream(1, { write: () => void got++, eof: () => undefined });
    void agent.run().catch(() => undefined);
    const frame = encodeFrame({ t: FrameType.Data, s: 1, d: Buffer.from('x') });
    // one frame per read: the next is written once the previous was delivered
    const feed = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const want = got + 1;
        a.write(frame);
        while (got < want) await new Promise((r) => setImmediate(r));
      }
    };
    await feed(2_000);
    gc();
    const before = process.memoryUsage().heapUsed;
    await feed(30_000);
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    // the old read loop kept ~350 bytes per read (a reaction on one never-settling promise): ~10 MB here
    expect(grown).toBeLessThan(4 * 1024 * 1024);
  }, 60_000);
});

describe('Mux hostile input', () => {
  async function failure(bytes: Uint8Array[], maxItemSize?: number) {
    const { local, b } = await pair(maxItemSize === undefined ? {} : { maxItemSize });
    const loop = local.run();
    const pending = local.fileOp({ op: FileOp.Getwd });
    for (const chunk of bytes) b.write(chunk);
    const err = await loop.then(
      () => undefined,
      (e: unknown) => e,
    );
    const pendingErr = await pending.then(
      () => undefined,
      (e: unknown) => e,
    );
    return { err, pendingErr };
  }

  it('junk bytes end the loop with INVALID_MESSAGE and fail pending calls', async () => {
    const { err, pendingErr } = await failure([Buffer.from([0xff, 0xff, 0xff, 0x1c])]);
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect((err as AgentProtocolError).code).toBe(ErrorCode.InvalidMessage);
    expect(pendingErr).toMatchObject({ code: ErrorCode.ConnectionClosed });
    expect((pendingErr as Error).message).toContain((err as Error).message);
  });

  it('an item above the size limit ends the loop before it is buffered', async () => {
    const big = encodeFrame({ t: FrameType.Data, s: 1, d: Buffer.alloc(4096) });
    const { err } = await failure([big], 1024);
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect([ErrorCode.MessageTooLarge, ErrorCode.InvalidMessage]).toContain(
      (err as AgentProtocolError).code,
    );
  });

  it('a field of the wrong type ends the loop with an error naming it', async () => {
    const { err } = await failure([encodeCbor({ t: 2, s: 1, d: 'text, not bytes' })]);
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect((err as Error).message).toMatch(/\bd\b/);
  });

  it('frames before the fault are still delivered', async () => {
    const { local, b } = await pair();
    const out = collector();
    local.registerStream(1, out.handler);
    const loop = local.run();
    b.write(
      Buffer.concat([
        encodeFrame({ t: FrameType.Data, s: 1, d: Buffer.from('before') }),
        Buffer.from([0xff]),
      ]),
    );
    await expect(loop).rejects.toBeInstanceOf(AgentProtocolError);
    expect(out.text()).toBe('before');
  });

  it('a stream cut inside an item is an error, not a clean end', async () => {
    const { local, b } = await pair();
    const loop = local.run();
    const exit = encodeFrame({ t: FrameType.Exit, c: 3 });
    b.end(exit.subarray(0, exit.length - 1));
    await expect(loop).rejects.toMatchObject({ code: ErrorCode.InvalidMessage });
  });
});
