// `picket recording show FILE` on recordings made by @picket/agentproto's Recorder and on the
// spec's byte vector (what mproxy writes), through the built CLI.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameType, RecordDirection, Recorder } from '@picket/agentproto';
import { afterAll, describe, expect, it } from 'vitest';
import { MAIN, run } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'picket-rec-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A recording of one command, clock pinned to 2026-06-09T10:13:20.123456789Z + 1 µs per record. */
async function record(path: string, redact: boolean): Promise<void> {
  let t = 1781000000123456789n;
  const r = await Recorder.open(path, {
    redact,
    now: () => {
      t += 1000n;
      return t - 1000n;
    },
  });
  r.writeSessionHeader({
    local_user: 'alice',
    local_pid: 42,
    agent_path: '/opt/picket-agent',
    backend_type: 'ssh',
  });
  const exec = { path: '/bin/sh', argv: ['sh', '-c', 'cat'], env: ['TOKEN=s3cret'], cwd: '/srv' };
  const seq = r.writeCommandStart(exec);
  r.writeFrame(seq, RecordDirection.Send, { t: FrameType.Exec, x: exec });
  r.writeFrame(seq, RecordDirection.Send, {
    t: FrameType.Data,
    d: Buffer.from('hi \x1b[31mred\n'),
  });
  r.writeFrame(seq, RecordDirection.Send, { t: FrameType.Signal, sig: 15 });
  r.writeFrame(seq, RecordDirection.Recv, {
    t: FrameType.Data,
    s: 1,
    d: Buffer.from('café ✓\u202e'),
  });
  r.writeFrame(seq, RecordDirection.Recv, { t: FrameType.Exit, c: 143 });
  r.writeCommandEnd(seq, 143);
  await r.close();
}

describe('picket recording show', () => {
  it('prints every record, one line each, with peer text escaped', async () => {
    const file = join(dir, 'full.rec');
    await record(file, false);
    const r = await run(['recording', 'show', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      'session 2026-06-09T10:13:20.123456789Z version="picket-agentproto/0.1.0" user="alice" pid=42 agent="/opt/picket-agent" backend="ssh"',
      'command 0 start 2026-06-09T10:13:20.123457789Z "/bin/sh" argv=["sh", "-c", "cat"] cwd="/srv" env=["TOKEN=s3cret"]',
      '  +0.000001000s #0 send Exec "/bin/sh" argv=["sh", "-c", "cat"] cwd="/srv" env=["TOKEN=s3cret"]',
      '  +0.000002000s #0 send Data fd=0 12 bytes "hi \\x1b[31mred\\n"',
      '  +0.000003000s #0 send Signal 15 (SIGTERM)',
      '  +0.000004000s #0 recv Data fd=1 12 bytes "café ✓\\u202e"',
      '  +0.000005000s #0 recv Exit code=143',
      'command 0 end 2026-06-09T10:13:20.123463789Z exit=143',
      'footer 2026-06-09T10:13:20.123464789Z commands=1',
      '',
    ]);
  });

  it('a default (redacted) recording shows no secrets', async () => {
    const file = join(dir, 'redacted.rec');
    await record(file, true);
    const r = await run(['recording', 'show', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('s3cret');
    expect(r.stdout).toContain('env=["TOKEN=<redacted>"]');
    expect(r.stdout).toContain('send Data fd=0 19 bytes "<redacted 12 bytes>"');
  });

  it("reads the spec's byte vector (a Go-written record with a uint64 timestamp)", async () => {
    const file = join(dir, 'vector.rec');
    writeFileSync(
      file,
      Buffer.from(
        'a2647479706503656672616d65a46274731b18b7621060544d1563646972026373657100656672616d65a2616301617405',
        'hex',
      ),
    );
    const r = await run(['recording', 'show', file]);
    expect(r).toMatchObject({
      code: 0,
      stdout: '  2026-06-09T10:13:20.123456789Z #0 recv Exit code=1\n',
    });
    const j = await run(['recording', 'show', '--json', file]);
    expect(JSON.parse(j.stdout)).toEqual({
      type: 3,
      frame: { seq: 0, ts: '1781000000123456789', dir: 2, frame: { t: 5, c: 1 } },
    });
  });

  it('a truncated recording: the records before the damage, the problem on stderr, exit 1', async () => {
    const file = join(dir, 'cut.rec');
    await record(file, false);
    const all = readFileSync(file);
    writeFileSync(file, all.subarray(0, all.length - 3));
    const r = await run(['recording', 'show', file]);
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split('\n')).toHaveLength(8);
    expect(r.stderr).toMatch(
      /cut\.rec: 8 records, then: record 8: invalid CBOR: stream ended in the middle of an item/,
    );
  });

  it('usage errors exit 2; a missing file exits 1', async () => {
    expect((await run(['recording'])).code).toBe(2);
    expect((await run(['recording', 'play', 'x'])).stderr).toMatch(/unknown subcommand "play"/);
    const missing = await run(['recording', 'show', join(dir, 'none.rec')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ENOENT/);
    expect((await run(['recording', '--help'])).stdout).toMatch(/Usage: picket recording show/);
  });
});

describe('picket recording show into a slow pipe', () => {
  it('every line reaches a reader that starts reading late (output flushed before exit)', async () => {
    const file = join(dir, 'big.rec');
    const r = await Recorder.open(file, { redact: false });
    const seq = r.writeCommandStart({ path: '/bin/cat', argv: ['cat'], env: [], cwd: '/' });
    const frames = 20_000;
    for (let i = 0; i < frames; i++) {
      r.writeFrame(seq, RecordDirection.Recv, {
        t: FrameType.Data,
        s: 1,
        d: Buffer.from(`line ${i}`),
      });
    }
    r.writeCommandEnd(seq, 0);
    await r.close();
    const child = spawn(process.execPath, [MAIN, 'recording', 'show', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // let the pipe fill up and the command finish its work before anything is read
    child.stdout.pause();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    const out = Buffer.concat(chunks).toString('utf8');
    expect(out).toContain(`"line ${frames - 1}"`);
    expect(out.trimEnd().split('\n').length).toBeGreaterThanOrEqual(frames + 2);
  }, 60_000);
});
