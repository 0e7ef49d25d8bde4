// exec() through a real picket-agent process with real children (the original's
// remoteexec/integration_test.go, plus what the spec's details require).
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough, Writable } from 'node:stream';
import { ErrorCode } from '@picket/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import {
  enumeratePath,
  exec,
  FrameType,
  RecordDirection,
  Recorder,
  RecordType,
  readRecording,
  startExec,
} from '../src/index.js';
import { AGENT_VIA } from './mux-helpers.js';

function sink() {
  const parts: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  });
  return {
    stream,
    text: () => Buffer.concat(parts).toString(),
    buffer: () => Buffer.concat(parts),
  };
}

async function run(
  argv: string[],
  extra: Parameters<typeof exec>[1] extends infer O ? Partial<O> : never = {},
) {
  const out = sink();
  const err = sink();
  const errors: string[] = [];
  const code = await exec(
    { path: argv[0] as string, argv },
    {
      ...extra,
      via: AGENT_VIA,
      stdio: { stdout: out.stream, stderr: err.stream, ...extra.stdio },
      onError: (m) => errors.push(m),
    },
  );
  return { code, stdout: out.text(), stderr: err.text(), errors, out };
}

describe('exec through picket-agent', () => {
  it('echo, a non-zero exit and stderr', async () => {
    const r = await run(['sh', '-c', 'echo hello; echo oops >&2; exit 42']);
    expect(r).toMatchObject({ code: 42, stdout: 'hello\n', stderr: 'oops\n', errors: [] });
  });

  it('passes stdin and the working directory', async () => {
    const stdin = new PassThrough();
    stdin.end('from stdin\n');
    const r = await run(['sh', '-c', 'pwd; cat'], { stdio: { stdin } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\nfrom stdin\n$/);
    expect(r.stdout.split('\n')[0]).toBe(process.cwd()); // empty cwd: the agent's
  });

  it('runs in the given cwd; argv[0] of the child is Exec.path', async () => {
    const out = sink();
    const code = await exec(
      { path: 'sh', argv: ['ignored-argv0', '-c', 'echo "$0"; pwd'], cwd: '/' },
      { via: AGENT_VIA, stdio: { stdout: out.stream } },
    );
    expect(code).toBe(0);
    expect(out.text()).toBe('sh\n/\n');
  });

  it('a working directory that does not exist → 127, chdir named', async () => {
    const errors: string[] = [];
    const code = await exec(
      { path: 'true', cwd: '/nonexistent/dir' },
      { via: AGENT_VIA, onError: (m) => errors.push(m) },
    );
    expect(code).toBe(127);
    expect(errors).toEqual(['chdir /nonexistent/dir: no such file or directory']);
  });

  it('1 MiB through cat arrives completely before exec resolves', async () => {
    const data = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const stdin = new PassThrough();
    stdin.end(data);
    const r = await run(['cat'], { stdio: { stdin } });
    expect(r.code).toBe(0);
    expect(r.out.buffer().equals(data)).toBe(true);
  });

  it('returns while the local stdin stays open (no deadlock)', async () => {
    const stdin = new PassThrough(); // never ended
    const r = await run(['true'], { stdio: { stdin } });
    expect(r.code).toBe(0);
    expect(stdin.readableEnded).toBe(false);
  });

  it('a signal goes to the whole process group: 128 + 15', async () => {
    const out = new PassThrough();
    // sleep holds stdout open: unless the group is signalled, Exit waits for it
    const session = startExec(
      { path: 'sh', argv: ['sh', '-c', 'echo ready; sleep 120; echo never'] },
      { via: AGENT_VIA, stdio: { stdout: out } },
    );
    await new Promise<void>((resolve) => out.once('data', () => resolve()));
    session.kill('SIGTERM');
    expect(await session.exitCode).toBe(143);
  });

  it('command not found → 127 with the reason', async () => {
    const r = await run(['picket-no-such-command-xyz']);
    expect(r.code).toBe(127);
    expect(r.errors.join()).toContain('executable file not found in $PATH');
  });

  it("re-logs the agent's Log frames with source=agent, escaped", async () => {
    const lines: string[] = [];
    const log = (level: string) => (msg: string, fields?: object) =>
      lines.push(`${level} ${msg} ${JSON.stringify(fields)}`);
    const logger = {
      debug: log('debug'),
      info: log('info'),
      warn: log('warn'),
      error: log('error'),
    };
    const errors: string[] = [];
    const code = await exec(
      { path: 'no\x1b[2Jsuch' },
      { via: AGENT_VIA, logger, onError: (m) => errors.push(m) },
    );
    expect(code).toBe(127);
    const failed = lines.find((l) => l.startsWith('error start command failed'));
    expect(failed).toContain('"source":"agent"');
    expect(failed).toContain('no\\\\x1b[2Jsuch'); // JSON of the escaped text
    expect(lines.join('\n')).not.toContain('\x1b');
    expect(errors.join()).not.toContain('\x1b');
  });

  it('a path that does not exist → 127 with the reason', async () => {
    const r = await run(['/nonexistent/bin/tool']);
    expect(r.code).toBe(127);
    expect(r.errors.join()).toContain('no such file or directory');
  });

  it('filters the env by the Config allow-list; env null inherits', async () => {
    const env = [
      'KEEP_ME=1',
      'DROP_ME=2',
      'AWS_SECRET=3',
      'CHANGED=4',
      'MPROXY_CHANGED_ENVS=CHANGED',
    ];
    const out = sink();
    const code = await exec(
      { path: '/usr/bin/env', argv: ['env'], env },
      {
        via: AGENT_VIA,
        stdio: { stdout: out.stream },
        config: { env_keep: ['KEEP_*', '/SECRET/'], env_remove: ['AWS_*'] },
      },
    );
    expect(code).toBe(0);
    expect(out.text().split('\n').filter(Boolean).sort()).toEqual(['CHANGED=4', 'KEEP_ME=1']);

    const inherited = sink();
    await exec(
      { path: '/usr/bin/env', argv: ['env'], env: null },
      { via: AGENT_VIA, stdio: { stdout: inherited.stream } },
    );
    expect(inherited.text()).toContain(`PATH=${process.env.PATH}`);
  });

  it('an extra fd round trip (fd 3 both ways, EOF passed on)', async () => {
    const received: Buffer[] = [];
    let ended = false;
    const local = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        received.push(chunk);
        cb();
      },
      final(cb) {
        ended = true;
        cb();
      },
    });
    local.push('ping over fd 3\n');
    local.push(null);
    const r = await run(['sh', '-c', 'cat <&3 | tr a-z A-Z >&3'], { extraFds: { 3: local } });
    expect(r.code).toBe(0);
    expect(Buffer.concat(received).toString()).toBe('PING OVER FD 3\n');
    expect(ended).toBe(true);
  });

  it('many quick children all report their own status (no reaper race)', async () => {
    const codes = await Promise.all(
      [0, 1, 2, 3, 4].map((n) => run(['sh', '-c', `exit ${n}`]).then((r) => r.code)),
    );
    expect(codes).toEqual([0, 1, 2, 3, 4]);
  });

  it('records the command: start, every frame both ways, end', async () => {
    const sink = new PassThrough();
    const recorder = new Recorder(sink, { redact: false });
    const out = new PassThrough();
    const code = await exec(
      { path: 'sh', argv: ['sh', '-c', 'echo hi; exit 5'] },
      { via: AGENT_VIA, recorder, stdio: { stdout: out } },
    );
    expect(code).toBe(5);
    sink.end();
    const { records, error } = await readRecording(sink);
    expect(error).toBeUndefined();
    expect(records[0]?.type).toBe(RecordType.CommandStart);
    expect(records.at(-1)).toMatchObject({
      type: RecordType.CommandEnd,
      cmd_end: { exit_code: 5 },
    });
    const frames = records.flatMap((r) => (r.type === RecordType.Frame ? [r.frame] : []));
    const sent = frames.filter((f) => f.dir === RecordDirection.Send).map((f) => f.frame.t);
    const recv = frames.filter((f) => f.dir === RecordDirection.Recv).map((f) => f.frame.t);
    expect(sent.slice(0, 2)).toEqual([FrameType.Exec, FrameType.EOF]);
    expect(recv).toContain(FrameType.Data);
    expect(recv.at(-1)).toBe(FrameType.Exit);
  });

  it('an unreachable channel rejects with CONNECTION_FAILED', async () => {
    await expect(exec({ path: 'true' }, { via: ['/nonexistent/ssh'] })).rejects.toMatchObject({
      code: ErrorCode.ConnectionFailed,
    });
  });

  it('a channel that is not an agent → 127 with its stderr quoted', async () => {
    const errors: string[] = [];
    const code = await exec(
      { path: 'true' },
      {
        via: ['sh', '-c', "printf 'agent: not \\033[31minstalled\\n' >&2; exit 1"],
        onError: (m) => errors.push(m),
      },
    );
    expect(code).toBe(127);
    // quoted, with the peer's control characters escaped
    expect(errors.join()).toMatch(/ended without an exit frame.*agent: not \\x1b\[31minstalled/);
    expect(errors.join()).not.toContain('\x1b');
  });

  it('a channel that sends junk and stays alive → 127 promptly, the channel is stopped', async () => {
    const errors: string[] = [];
    const code = await exec(
      { path: 'true' },
      { via: ['sh', '-c', "printf '\\377\\377'; exec sleep 120"], onError: (m) => errors.push(m) },
    );
    expect(code).toBe(127);
    expect(errors.join()).toMatch(/ended without an exit frame \(invalid CBOR/);
  });

  it('an abort while the channel is starting still cancels', async () => {
    const ac = new AbortController();
    const p = exec(
      { path: 'sleep', argv: ['sleep', '120'] },
      { via: AGENT_VIA, signal: ac.signal },
    );
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: ErrorCode.Cancelled });
  });

  it('aborting the signal terminates the command and rejects with CANCELLED', async () => {
    const out = new PassThrough();
    const ac = new AbortController();
    const p = exec(
      { path: 'sh', argv: ['sh', '-c', 'echo ready; sleep 120'] },
      { via: AGENT_VIA, stdio: { stdout: out }, signal: ac.signal },
    );
    await new Promise<void>((resolve) => out.once('data', () => resolve()));
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: ErrorCode.Cancelled });
  });
});

describe('enumeratePath through picket-agent', () => {
  const root = mkdtempSync(join(tmpdir(), 'apenum-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  function file(path: string, mode: number, body = '#!/bin/sh\n') {
    writeFileSync(path, body);
    chmodSync(path, mode);
  }

  it('lists executables, first directory wins, non-executables and dirs skipped', async () => {
    const d1 = join(root, 'd1');
    const d2 = join(root, 'd2');
    mkdirSync(d1);
    mkdirSync(d2);
    file(join(d1, 'tool'), 0o755, 'first');
    file(join(d1, 'notes'), 0o644);
    mkdirSync(join(d1, 'subdir'));
    file(join(d2, 'tool'), 0o700, 'second, shadowed');
    file(join(d2, 'notes'), 0o750, 'executable here');
    file(join(d2, 'alpha'), 0o711);
    const entries = await enumeratePath({
      via: AGENT_VIA,
      paths: [join(root, 'missing'), '', d1, d2],
    });
    expect(entries.map((e) => [e.name, e.path, e.mode, Number(e.size)])).toEqual([
      ['tool', join(d1, 'tool'), 0o755, 5],
      ['alpha', join(d2, 'alpha'), 0o711, 10],
      ['notes', join(d2, 'notes'), 0o750, 15],
    ]);
    expect(entries.every((e) => e.mtime !== undefined && BigInt(e.mtime) > 0n)).toBe(true);
  });

  it('nothing found → an empty list', async () => {
    const empty = join(root, 'empty');
    mkdirSync(empty);
    expect(await enumeratePath({ via: AGENT_VIA, paths: [empty] })).toEqual([]);
  });
});
