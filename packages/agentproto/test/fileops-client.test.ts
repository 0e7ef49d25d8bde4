// The typed files client: every method against a real temp dir, over the service directly and
// over two Muxes; errno back to FileOpError codes; cancellation; replies missing their payload.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type FileClient,
  FileOpError,
  type FileOpResp,
  type FileOpRpc,
  FileOpService,
  files,
  GoFileMode,
  LinuxOpenFlag,
} from '../src/index.js';
import { expectTimeNear, muxPair } from './fileops-cases.js';

const isRoot = process.getuid?.() === 0;

function defineClientSuite(
  connect: () => Promise<{ rpc: FileOpRpc; close(): Promise<void> }>,
): void {
  let root: string;
  let fc: FileClient;
  let close: () => Promise<void>;
  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'picket-fileclient-'));
    const c = await connect();
    fc = files(c.rpc);
    close = c.close;
  });
  afterEach(async () => {
    await close();
    rmSync(root, { recursive: true, force: true });
  });

  /** The FileOpError a call rejects with. */
  async function failure(p: Promise<unknown>): Promise<FileOpError> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FileOpError);
    return err as FileOpError;
  }

  it('handles: openFile, writeAt, readAt, fstat, ftruncate, fsync, close', async () => {
    const path = join(root, 'a.txt');
    const { O_CREAT, O_RDWR, O_EXCL } = LinuxOpenFlag;
    const h = await fc.openFile(path, O_CREAT | O_RDWR | O_EXCL, 0o640);
    expect(await fc.writeAt(h, Buffer.from('hello world'), 0)).toBe(11);
    expect(await fc.writeAt(h, Buffer.from('!'), -1)).toBe(1); // at the current position
    const read = await fc.readAt(h, 6n, 100);
    expect([Buffer.from(read.data).toString(), read.eof]).toEqual(['world', true]);
    const st = await fc.fstat(h);
    expect([st.n, Number(st.s), st.m]).toEqual(['a.txt', 11, 0o640]);
    await fc.ftruncate(h, 5);
    await fc.fsync(h);
    await fc.close(h);
    expect(readFileSync(path, 'utf8')).toBe('!ello');

    const err = await failure(fc.readAt(h, 0, 1));
    expect([err.code, err.errno, err.op]).toEqual(['EBADF', 9, 'ReadAt']);
    const dup = await failure(fc.openFile(path, O_CREAT | O_EXCL | O_RDWR));
    expect([dup.code, dup.errno]).toEqual(['EEXIST', 17]);

    const r = await fc.open(path);
    expect(Buffer.from((await fc.readAt(r, 0, 5)).data).toString()).toBe('!ello');
    await fc.close(r);
    const c = await fc.create(path);
    expect((await fc.fstat(c)).s ?? 0).toBe(0);
    await fc.close(c);
  });

  it('paths: mkdirAll, mkdir, stat, lstat, chmod, chtimes, truncate, statfs, getwd', async () => {
    const dir = join(root, 'x', 'y');
    await fc.mkdirAll(dir, 0o750);
    expect((await fc.stat(dir)).m).toBe((GoFileMode.Dir | 0o750) >>> 0);
    await fc.mkdir(join(dir, 'z'));
    const file = join(dir, 'f');
    writeFileSync(file, 'abcdef');
    await fc.chmod(file, 0o600);
    await fc.truncate(file, 2);
    await fc.chtimes(file, new Date(1_500_000_000_000), 1_600_000_000_000_001_000n);
    const st = await fc.lstat(file);
    expect([st.n, Number(st.s), st.m]).toEqual(['f', 2, 0o600]);
    expectTimeNear(st.t, 1_600_000_000_000_001_000n);
    expectTimeNear(st.at, 1_500_000_000_000_000_000n);
    expect(Number((await fc.statfs(root)).bs)).toBeGreaterThan(0);
    expect(await fc.getwd()).toBe(process.cwd());
    const notDir = await failure(fc.mkdirAll(file));
    expect([notDir.code, notDir.message]).toEqual(['ENOTDIR', `mkdir ${file}: not a directory`]);
  });

  it('names: rename, link, symlink, readlink, readDir, remove, chown', async () => {
    const a = join(root, 'a');
    writeFileSync(a, 'A');
    await fc.rename(a, join(root, 'b'));
    await fc.link(join(root, 'b'), join(root, 'c'));
    await fc.symlink('b', join(root, 'd'));
    expect(await fc.readlink(join(root, 'd'))).toBe('b');
    const names = (await fc.readDir(root)).map((s) => [s.n, (s.m & GoFileMode.Symlink) !== 0]);
    expect(names).toEqual([
      ['b', false],
      ['c', false],
      ['d', true],
    ]);
    await fc.remove(join(root, 'c'));
    expect((await fc.readDir(root)).map((s) => s.n)).toEqual(['b', 'd']);
    const uid = isRoot ? 4242 : (process.getuid?.() ?? 0);
    await fc.chown(join(root, 'b'), uid, 0xffff_ffff);
    expect(statSync(join(root, 'b')).uid).toBe(uid);

    const missing = await failure(fc.stat(join(root, 'nope')));
    expect([missing.code, missing.errno, missing.op]).toEqual(['ENOENT', 2, 'Stat']);
    expect(missing.message).toBe(`stat ${join(root, 'nope')}: no such file or directory`);
  });
}

describe('files client over the service directly', () => {
  defineClientSuite(async () => {
    const service = new FileOpService();
    let id = 0;
    return {
      rpc: { fileOp: (req) => service.handle({ ...req, id: ++id }) },
      close: () => service.closeAll(),
    };
  });
});

describe('files client over two muxes', () => {
  defineClientSuite(async () => {
    const pair = await muxPair(new FileOpService());
    return { rpc: pair.client, close: () => pair.close() };
  });

  it('50 concurrent reads of 50 files: no cross-talk', async () => {
    const root = mkdtempSync(join(tmpdir(), 'picket-fileclient-'));
    const pair = await muxPair(new FileOpService());
    try {
      const fc = files(pair.client);
      const paths = Array.from({ length: 50 }, (_, i) => join(root, `f${i}`));
      paths.forEach((p, i) => {
        writeFileSync(p, `contents of ${i}`.repeat(i + 1));
      });
      const handles = await Promise.all(paths.map((p) => fc.open(p)));
      const reads = await Promise.all(handles.map((h) => fc.readAt(h, 0, 4096)));
      reads.forEach((r, i) => {
        expect(Buffer.from(r.data).toString()).toBe(`contents of ${i}`.repeat(i + 1));
      });
    } finally {
      await pair.close();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('an aborted signal rejects with CANCELLED', async () => {
    const pair = await muxPair(new FileOpService());
    try {
      const ac = new AbortController();
      ac.abort();
      const err = await files(pair.client)
        .getwd({ signal: ac.signal })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AgentProtocolError);
      expect((err as AgentProtocolError).code).toBe(ErrorCode.Cancelled);
    } finally {
      await pair.close();
    }
  });
});

describe('files client: answers that are not plain success', () => {
  const answering = (resp: Omit<FileOpResp, 'id'>): FileOpRpc => ({
    fileOp: async () => ({ id: 1, ...resp }),
  });

  it('an errno without em gets a message; an unknown errno keeps its number', async () => {
    const err = (await files(answering({ er: 38 }))
      .getwd()
      .catch((e: unknown) => e)) as FileOpError;
    expect([err.code, err.errno, err.message]).toEqual([
      'ENOSYS',
      38,
      'Getwd: function not implemented',
    ]);
    const odd = (await files(answering({ er: 200, em: 'strange' }))
      .getwd()
      .catch((e: unknown) => e)) as FileOpError;
    expect([odd.code, odd.errno, odd.message]).toEqual(['EUNKNOWN', 200, 'strange']);
  });

  it('the agent’s em is escaped and bounded before it becomes the message', async () => {
    const err = (await files(
      answering({ er: 2, em: `open /a\n\u001b[31mfake: ${'x'.repeat(5000)}` }),
    )
      .open('/a')
      .catch((e: unknown) => e)) as FileOpError;
    expect(err.message.startsWith('open /a\\n\\x1b[31mfake: xxx')).toBe(true);
    expect(err.message.includes('\n') || err.message.includes('\u001b')).toBe(false);
    expect(err.message.length).toBeLessThan(1100);
  });

  it('em without an errno is still a failure (as the Go client)', async () => {
    const err = (await files(answering({ em: 'odd' }))
      .remove('/x')
      .catch((e: unknown) => e)) as FileOpError;
    expect(err).toBeInstanceOf(FileOpError);
    expect([err.errno, err.message, err.op]).toEqual([0, 'odd', 'Remove']);
  });

  it('a failed WriteAt reports the bytes done', async () => {
    const err = (await files(answering({ er: 28, em: 'write /x: no space left on device', n: 3 }))
      .writeAt(1, Buffer.from('abcdef'), 0)
      .catch((e: unknown) => e)) as FileOpError;
    expect([err.code, err.bytesDone]).toEqual(['ENOSPC', 3]);
  });

  it('a success without its payload is INVALID_MESSAGE, not an empty result', async () => {
    for (const call of [
      (fc: FileClient) => fc.stat('/x'),
      (fc: FileClient) => fc.fstat(1),
      (fc: FileClient) => fc.statfs('/x'),
    ]) {
      const err = await call(files(answering({}))).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AgentProtocolError);
      expect((err as AgentProtocolError).code).toBe(ErrorCode.InvalidMessage);
    }
  });
});
