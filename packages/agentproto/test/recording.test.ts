/** Recordings (spec §2.6): the byte vector, Recorder → reader, redaction, write errors, truncated tails, replay. */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { AgentProtocolError } from '@picket/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DecodedFrame,
  decodeRecord,
  type ExecMsg,
  encodeFrame,
  encodeRecord,
  type Frame,
  FrameType,
  type RecordEntry,
  RecordType,
} from '../src/frames.js';
import { Mux } from '../src/mux.js';
import {
  createReplayChannel,
  RecordDirection,
  Recorder,
  readRecording,
  readRecordingFile,
} from '../src/recording.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

const VECTOR =
  'a2 6474797065 03 656672616d65 a4 627473 1b18b7621060544d15 63646972 02 63736571 00 656672616d65 a2 6163 01 6174 05';

/** A sink that keeps every byte written. */
function collector(): { sink: Writable; data: () => Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  return { sink, data: () => Buffer.concat(chunks) };
}

/** A clock that ticks 1 µs per call from a time beyond 2^53 ns. */
function clock(start = 1781000000123456789n): () => bigint {
  let t = start;
  return () => {
    const now = t;
    t += 1000n;
    return now;
  };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'picket-rec-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the recording byte vector', () => {
  it('encodes and decodes exactly, with the uint64 nanosecond timestamp as a bigint', () => {
    const rec: RecordEntry = {
      type: RecordType.Frame,
      frame: { seq: 0, ts: 1781000000123456789n, dir: 2, frame: { t: 5, c: 1 } },
    };
    expect(hex(encodeRecord(rec))).toBe(VECTOR.replace(/\s+/g, ''));
    expect(decodeRecord(bytes(VECTOR))).toEqual(rec);
  });

  it('the Recorder writes the same bytes for that frame', async () => {
    const { sink, data } = collector();
    const r = new Recorder(sink, { now: () => 1781000000123456789n });
    r.writeFrame(0, RecordDirection.Recv, { t: FrameType.Exit, c: 1 });
    await r.flush();
    expect(hex(data())).toBe(VECTOR.replace(/\s+/g, ''));
  });

  it('every payload field Go writes is present even when zero', () => {
    const start = encodeRecord({
      type: RecordType.CommandStart,
      cmd_start: { seq: 0, start_time: 0, exec: { path: '', argv: null, env: null, cwd: '' } },
    });
    expect(hex(start)).toBe(
      'a2 64 74797065 02 69 636d645f7374617274 a3 63 736571 00 64 65786563 a4 63637764 60 63656e76 f6 6461726776 f6 6470617468 60 6a 73746172745f74696d65 00'.replace(
        /\s+/g,
        '',
      ),
    );
    const header = decodeRecord(
      encodeRecord({
        type: RecordType.SessionHeader,
        header: { version: '', start_time: 0, local_user: '', local_pid: 0, agent_path: '' },
      }),
    );
    expect(header).toEqual({
      type: 1,
      header: { version: '', start_time: 0, local_user: '', local_pid: 0, agent_path: '' },
    });
  });
});

const exec: ExecMsg = {
  path: '/bin/cat',
  argv: ['cat'],
  env: ['HOME=/root', 'TOKEN=s3cret', 'ODD'],
  cwd: '/tmp',
};

describe('Recorder → readRecording', () => {
  it('header, two commands and the footer written by close() come back as 8 records in order', async () => {
    const { sink, data } = collector();
    const r = new Recorder(sink, { now: clock(), redact: false });
    r.writeSessionHeader({ agent_path: '/usr/bin/picket-agent', backend_type: 'local' });
    const a = r.writeCommandStart(exec);
    r.writeFrame(a, RecordDirection.Send, { t: FrameType.Data, d: Buffer.from('in') });
    r.writeCommandEnd(a, 0);
    const b = r.writeCommandStart({ ...exec, argv: ['cat', '-n'] });
    r.writeFrame(b, RecordDirection.Recv, { t: FrameType.Exit, c: 3 });
    r.writeCommandEnd(b, 3);
    await r.close();
    const { records, error } = await readRecording(data());
    expect(error).toBeUndefined();
    expect(records.map((x) => x.type)).toEqual([1, 2, 3, 4, 2, 3, 4, 5]);
    expect([a, b]).toEqual([0, 1]);
    const [h, s0, f0, e0, s1, f1, e1, foot] = records;
    expect(h).toMatchObject({
      header: {
        version: 'picket-agentproto/0.1.0',
        start_time: 1781000000123456789n,
        local_pid: process.pid,
        agent_path: '/usr/bin/picket-agent',
        backend_type: 'local',
      },
    });
    expect(s0).toEqual({ type: 2, cmd_start: { seq: 0, start_time: 1781000000123457789n, exec } });
    expect(f0).toEqual({
      type: 3,
      frame: {
        seq: 0,
        ts: 1781000000123458789n,
        dir: 1,
        frame: { t: 2, s: 0, d: Buffer.from('in') },
      },
    });
    expect(e0).toMatchObject({ cmd_end: { seq: 0, exit_code: 0 } });
    expect(s1).toMatchObject({ cmd_start: { seq: 1, exec: { argv: ['cat', '-n'] } } });
    expect(f1).toMatchObject({ frame: { seq: 1, dir: 2, frame: { t: 5, c: 3 } } });
    expect(e1).toMatchObject({ cmd_end: { seq: 1, exit_code: 3 } });
    expect(foot).toMatchObject({ type: 5, footer: { command_count: 2 } });
    // records after close are dropped, close is idempotent
    r.writeCommandEnd(9, 9);
    await r.close();
    expect((await readRecording(data())).records).toHaveLength(8);
  });

  it('redacts env values and data payloads by default, keeps names and lengths', async () => {
    const { sink, data } = collector();
    const r = new Recorder(sink);
    const seq = r.writeCommandStart(exec);
    const sent: Frame[] = [
      { t: FrameType.Exec, x: exec },
      { t: FrameType.Data, s: 1, d: Buffer.from('password: hunter2') },
      { t: FrameType.FileOp, fop: { id: 1, op: 6, h: 1, d: Buffer.from('secret file') } },
      { t: FrameType.FileResp, frp: { id: 1, d: Buffer.from('secret read') } },
      { t: FrameType.Data, s: 1, d: Buffer.alloc(0) },
      { t: FrameType.Signal, sig: 15 },
    ];
    for (const f of sent) r.writeFrame(seq, RecordDirection.Send, f);
    await r.close();
    const text = data().toString('latin1');
    for (const secret of ['s3cret', 'hunter2', 'secret file', 'secret read', '/root']) {
      expect(text).not.toContain(secret);
    }
    const { records } = await readRecording(data());
    expect(records[0]).toMatchObject({
      cmd_start: {
        exec: { env: ['HOME=<redacted>', 'TOKEN=<redacted>', '<redacted>'], argv: ['cat'] },
      },
    });
    const frames = records.flatMap((x) => (x.type === RecordType.Frame ? [x.frame.frame] : []));
    expect(frames[1]).toEqual({ t: 2, s: 1, d: Buffer.from('<redacted 17 bytes>') });
    expect(frames[2]).toMatchObject({ fop: { d: Buffer.from('<redacted 11 bytes>'), h: 1 } });
    expect(frames[3]).toMatchObject({ frp: { d: Buffer.from('<redacted 11 bytes>') } });
    expect(frames[4]).toEqual({ t: 2, s: 1, d: Buffer.alloc(0) });
    expect(frames[5]).toEqual({ t: 4, sig: 15 });
    // the caller's frames are not modified
    expect(Buffer.from((sent[1] as { d: Uint8Array }).d).toString()).toBe('password: hunter2');
  });

  it('a file recording is created with mode 0600 and read back from disk', async () => {
    const path = join(dir, 'session.rec');
    const r = await Recorder.open(path);
    r.writeSessionHeader();
    await r.close();
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const { records, error } = await readRecordingFile(path);
    expect(error).toBeUndefined();
    expect(records.map((x) => x.type)).toEqual([1, 5]);
  });

  it('a file that cannot be opened rejects open()', async () => {
    const err = await Recorder.open(join(dir, 'missing', 'x.rec')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect((err as Error).message).toMatch(/cannot open .*ENOENT/);
  });
});

describe('write errors are surfaced, never swallowed', () => {
  it('a real ENOSPC (/dev/full): an error event, flush() and close() reject', async () => {
    const r = await Recorder.open('/dev/full');
    const events: Error[] = [];
    r.on('error', (e) => events.push(e));
    r.writeSessionHeader();
    await expect(r.flush()).rejects.toThrow(/recording: write failed: .*ENOSPC/);
    expect(events).toHaveLength(1);
    expect(r.error?.cause).toMatchObject({ code: 'ENOSPC' });
    await expect(r.close()).rejects.toThrow(/ENOSPC/);
  });

  it('without an error listener nothing crashes and close() still rejects', async () => {
    const sink = new Writable({
      write(_chunk, _enc, cb) {
        cb(new Error('disk on fire'));
      },
    });
    const r = new Recorder(sink);
    r.writeFrame(0, RecordDirection.Send, { t: FrameType.Signal, sig: 2 });
    r.writeFrame(0, RecordDirection.Send, { t: FrameType.Signal, sig: 3 }); // dropped after the failure
    await expect(r.close()).rejects.toThrow(/disk on fire/);
  });

  it('the hook never throws into the Mux, even on a destroyed sink', async () => {
    const sink = new PassThrough();
    sink.destroy();
    const r = new Recorder(sink);
    expect(() => r.writeFrame(0, RecordDirection.Recv, { t: FrameType.Exit, c: 0 })).not.toThrow();
    await expect(r.close()).rejects.toThrow(/write failed/);
  });
});

describe('readRecording is tolerant of a damaged tail', () => {
  async function sample(): Promise<Buffer> {
    const { sink, data } = collector();
    const r = new Recorder(sink, { now: clock(), redact: false });
    r.writeSessionHeader({ local_user: 'u', agent_path: 'a' });
    const seq = r.writeCommandStart(exec);
    r.writeFrame(seq, RecordDirection.Recv, { t: FrameType.Data, s: 1, d: Buffer.alloc(300, 1) });
    r.writeCommandEnd(seq, 0);
    await r.close();
    return data();
  }

  it('keeps every complete record before a cut and names the truncation', async () => {
    const all = await sample();
    const full = (await readRecording(all)).records;
    expect(full).toHaveLength(5);
    const ends: number[] = [];
    let at = 0;
    for (const rec of full) {
      at += encodeRecord(rec).length;
      ends.push(at);
    }
    for (let cut = 1; cut < all.length; cut += 7) {
      const { records, error } = await readRecording(all.subarray(0, cut));
      const complete = ends.filter((e) => e <= cut).length;
      expect(records).toEqual(full.slice(0, complete));
      if (ends.includes(cut)) expect(error).toBeUndefined();
      else
        expect(error?.message).toMatch(
          new RegExp(`record ${complete}: .*stream ended in the middle of an item`),
        );
    }
  });

  it('reads from a stream in small chunks, and reports a bad record by index', async () => {
    const all = await sample();
    const chunks = [];
    for (let i = 0; i < all.length; i += 5) chunks.push(all.subarray(i, i + 5));
    expect((await readRecording(Readable.from(chunks))).records).toHaveLength(5);
    const bad = Buffer.concat([
      all.subarray(0, encodeRecord((await readRecording(all)).records[0] as RecordEntry).length),
      bytes('a1 6474797065 09'),
    ]);
    const { records, error } = await readRecording(bad);
    expect(records).toHaveLength(1);
    expect(error?.message).toMatch(/record 1: invalid record: unknown record type 9/);
    const junk = await readRecording(bytes('1c'));
    expect(junk.error?.message).toMatch(/reserved additional info/);
  });

  it('a missing file rejects (an I/O error, not content)', async () => {
    await expect(readRecordingFile(join(dir, 'nope.rec'))).rejects.toThrow(/ENOENT/);
  });
});

// ---------------------------------------------------------------------------------------------
// Replay

/** One recorded exec session: Exec, stdout, stdin + EOF, Exit 3. */
function script(): RecordEntry[] {
  const frames: Array<[1 | 2, Frame]> = [
    [1, { t: FrameType.Exec, x: exec }],
    [2, { t: FrameType.Data, s: 1, d: Buffer.from('hello\n') }],
    [1, { t: FrameType.Data, s: 0, d: Buffer.from('input') }],
    [1, { t: FrameType.EOF, s: 0 }],
    [2, { t: FrameType.Data, s: 2, d: Buffer.from('warn\n') }],
    [2, { t: FrameType.EOF, s: 1 }],
    [2, { t: FrameType.Exit, c: 3 }],
  ];
  return [
    { type: RecordType.CommandStart, cmd_start: { seq: 4, start_time: 1, exec } },
    ...frames.map(
      ([d, frame], i): RecordEntry => ({
        type: RecordType.Frame,
        frame: { seq: 4, ts: i, dir: d, frame },
      }),
    ),
    { type: RecordType.CommandEnd, cmd_end: { seq: 4, end_time: 9, exit_code: 3 } },
  ];
}

/** Reads frames from a replay readable. */
async function framesOf(readable: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of readable) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('replay channel', () => {
  it('with raw frames: recv frames come as the matching sends are written, then the stream ends', async () => {
    const ch = createReplayChannel(script());
    const all = framesOf(ch.readable);
    const write = (f: Frame) =>
      new Promise<void>((res, rej) =>
        ch.writable.write(encodeFrame(f), (e) => (e ? rej(e) : res())),
      );
    await write({ t: FrameType.Exec, x: exec });
    const both = Buffer.concat([
      encodeFrame({ t: 2, s: 0, d: Buffer.from('input') }),
      encodeFrame({ t: 3 }),
    ]);
    // written in odd pieces: the channel decodes the byte stream
    await new Promise<void>((res) => ch.writable.write(both.subarray(0, 3), () => res()));
    await new Promise<void>((res) => ch.writable.write(both.subarray(3), () => res()));
    await ch.done;
    const expected = Buffer.concat(
      [
        { t: 2, s: 1, d: Buffer.from('hello\n') },
        { t: 2, s: 2, d: Buffer.from('warn\n') },
        { t: 3, s: 1 },
        { t: 5, c: 3 },
      ].map((f) => encodeFrame(f as Frame)),
    );
    expect((await all).equals(expected)).toBe(true);
  });

  it('a mismatching send fails the channel with a clear error', async () => {
    const ch = createReplayChannel(script());
    ch.readable.on('error', () => {});
    ch.writable.on('error', () => {});
    const err = await new Promise<Error | null | undefined>((res) =>
      ch.writable.write(encodeFrame({ t: FrameType.Signal, sig: 9 }), res),
    );
    expect(err?.message).toMatch(
      /^replay of command 4: recorded frame 0 expects Exec frame \(a2617401/,
    );
    expect(err?.message).toMatch(/but the Mux sent Signal frame \(a26174046373696709\)$/);
    await expect(ch.done).rejects.toThrow(/expects Exec frame/);
  });

  it('ending the output while recorded sends are still due fails the channel', async () => {
    const ch = createReplayChannel(script());
    ch.readable.on('error', () => {});
    ch.writable.on('error', () => {});
    await new Promise<void>((res) =>
      ch.writable.write(encodeFrame({ t: FrameType.Exec, x: exec }), () => res()),
    );
    ch.writable.end();
    await expect(ch.done).rejects.toThrow(
      /ended its output with 2 recorded send frame\(s\) still due/,
    );
  });

  it('drives a real Mux: exit code, stdout/stderr, and the same frames recorded again', async () => {
    const original = script();
    const ch = createReplayChannel(original);
    const { sink, data } = collector();
    const recorder = new Recorder(sink, { redact: false });
    const mux = new Mux(ch.readable, ch.writable, { recorder, recordSeq: 4 });
    const out: Record<number, string> = { 1: '', 2: '' };
    for (const fd of [1, 2]) {
      mux.registerStream(fd, {
        write: (d) => {
          out[fd] += Buffer.from(d).toString();
        },
        eof: () => {},
      });
    }
    const running = mux.run();
    await mux.send({ t: FrameType.Exec, x: exec });
    await mux.sendData(0, Buffer.from('input'));
    await mux.sendEOF(0);
    expect(await running).toBe(3);
    await ch.done;
    expect(out).toEqual({ 1: 'hello\n', 2: 'warn\n' });
    mux.close();
    await recorder.close();
    const again = (await readRecording(data())).records.flatMap((r) =>
      r.type === RecordType.Frame ? [[r.frame.seq, r.frame.dir, r.frame.frame] as const] : [],
    );
    const want = original.flatMap((r) =>
      r.type === RecordType.Frame
        ? [[r.frame.seq, r.frame.dir, decodeAgain(r.frame.frame)] as const]
        : [],
    );
    // sends and receives each in recorded order (how the two interleave depends on scheduling)
    for (const d of [1, 2]) {
      expect(again.filter((x) => x[1] === d)).toEqual(want.filter((x) => x[1] === d));
    }
    expect(again).toHaveLength(want.length);
  });

  it('a Mux records frames read before its loop (readFrame) too, with their directions', async () => {
    const info: Frame = {
      t: FrameType.PathInfo,
      i: { entries: [{ name: 'sh', path: '/bin/sh', mode: 0o755, size: 1 }] },
    };
    const ch = createReplayChannel([
      {
        type: RecordType.Frame,
        frame: { seq: 0, ts: 0, dir: 1, frame: { t: FrameType.PathQuery, q: {} } },
      },
      { type: RecordType.Frame, frame: { seq: 0, ts: 1, dir: 2, frame: info } },
    ]);
    const { sink, data } = collector();
    const recorder = new Recorder(sink, { now: clock() });
    const mux = new Mux(ch.readable, ch.writable, { recorder, recordSeq: 0 });
    await mux.send({ t: FrameType.PathQuery, q: {} });
    expect(await mux.readFrame()).toEqual(info);
    await ch.done;
    mux.close();
    await recorder.close();
    const frames = (await readRecording(data())).records.flatMap((r) =>
      r.type === RecordType.Frame ? [[r.frame.dir, r.frame.frame.t]] : [],
    );
    expect(frames).toEqual([
      [1, FrameType.PathQuery],
      [2, FrameType.PathInfo],
    ]);
  });

  it('replays a redacted recording: redacted sends match, placeholders are delivered', async () => {
    const { sink, data } = collector();
    const recorder = new Recorder(sink); // redacting
    for (const r of script()) {
      if (r.type === RecordType.Frame)
        recorder.writeFrame(r.frame.seq, r.frame.dir as 1 | 2, r.frame.frame);
    }
    await recorder.close();
    const ch = createReplayChannel((await readRecording(data())).records);
    const mux = new Mux(ch.readable, ch.writable);
    let stdout = '';
    mux.registerStream(1, {
      write: (d) => {
        stdout += Buffer.from(d).toString();
      },
      eof: () => {},
    });
    const running = mux.run();
    await mux.send({ t: FrameType.Exec, x: exec });
    await mux.sendData(0, Buffer.from('other')); // same length as 'input': the redacted forms match
    await mux.sendEOF(0);
    expect(await running).toBe(3);
    expect(stdout).toBe('<redacted 6 bytes>');
    mux.close();
  });

  it('a Mux that sends something else gets the error and its run() ends', async () => {
    const ch = createReplayChannel(script());
    const mux = new Mux(ch.readable, ch.writable);
    const running = mux.run().catch((e: unknown) => e);
    await mux.send({ t: FrameType.Exec, x: { ...exec, cwd: '/elsewhere' } }).catch(() => {});
    await expect(ch.done).rejects.toThrow(/recorded frame 0 expects Exec frame/);
    const result = await running;
    expect(result === -1 || result instanceof Error).toBe(true);
    mux.close();
  });
});

/** A frame as the decoder returns it (scalars filled). */
function decodeAgain(f: Frame | DecodedFrame): DecodedFrame {
  const rec = decodeRecord(encodeRecord({ type: 3, frame: { seq: 0, ts: 0, dir: 1, frame: f } }));
  return (rec as Extract<RecordEntry, { type: 3 }>).frame.frame as DecodedFrame;
}
