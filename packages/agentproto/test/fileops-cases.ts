// The file-op conformance table (in the spirit of the original's fileop_conformance_test.go),
// against a real temp dir. It is run by several test files, each with its own way of reaching a
// FileOpService: directly, through two Muxes over a Unix socket pair, and through a picket-agent
// child.
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileOp, type FileOpReq, type FileOpResp } from '../src/frames.js';
import { type FileOpService, GoFileMode, LinuxOpenFlag } from '../src/index.js';
import { Mux } from '../src/mux.js';
import { socketPair } from './mux-helpers.js';

/** One way of reaching a file-op service. */
export interface FileOpDriver {
  call(req: Omit<FileOpReq, 'id'>): Promise<FileOpResp>;
  /** What Getwd must answer (the serving process's working directory). */
  readonly cwd: string;
  close(): Promise<void>;
}

/** An agent-side Mux serving `service` and a client-side Mux over a real Unix socket pair. */
export async function muxPair(
  service: FileOpService,
): Promise<{ client: Mux; close(): Promise<void> }> {
  const [agentEnd, clientEnd] = await socketPair();
  const agent = new Mux(agentEnd, agentEnd);
  const client = new Mux(clientEnd, clientEnd);
  agent.onFileOp((req) => service.handle(req));
  const loops = [agent.run().catch(() => -1), client.run().catch(() => -1)];
  return {
    client,
    async close() {
      clientEnd.end();
      agentEnd.end();
      await Promise.all(loops);
      agent.close();
      client.close();
      agentEnd.destroy();
      clientEnd.destroy();
      await service.closeAll();
    },
  };
}

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_APPEND, O_TRUNC } = LinuxOpenFlag;
const isRoot = process.getuid?.() === 0;
const text = (d: Uint8Array | undefined) => Buffer.from(d ?? []).toString();

/**
 * A time set through Chtimes, as the file system kept it: `fs.utimes` takes float seconds, so
 * the microsecond is exact where libuv truncates to microseconds (Node 20) and within a
 * fraction of one where it keeps the double's nanoseconds (Node 22+).
 */
export function expectTimeNear(got: bigint | number | undefined, want: bigint): void {
  const diff = BigInt(got ?? 0) - want;
  expect(diff >= 0n ? diff : -diff, `${got} ns vs ${want} ns`).toBeLessThan(1000n);
}

/** Registers the whole table; `connect` makes a fresh service (handles from 1) per test. */
export function defineFileOpConformance(connect: () => Promise<FileOpDriver>): void {
  let root: string;
  let driver: FileOpDriver;

  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'picket-fileops-'));
    driver = await connect();
  });
  afterEach(async () => {
    await driver.close();
    chmodSync(root, 0o755);
    rmSync(root, { recursive: true, force: true });
  });

  /** A call that must succeed. */
  async function ok(req: Omit<FileOpReq, 'id'>): Promise<FileOpResp> {
    const resp = await driver.call(req);
    expect(resp.er ?? 0, `op ${req.op} failed: ${resp.em}`).toBe(0);
    expect(resp.em ?? '').toBe('');
    return resp;
  }
  /** A call that must fail with `errno`. */
  async function fails(req: Omit<FileOpReq, 'id'>, errno: number): Promise<FileOpResp> {
    const resp = await driver.call(req);
    expect(resp.er, `op ${req.op} on ${req.p ?? req.h}: ${resp.em}`).toBe(errno);
    expect(resp.em).toBeTruthy();
    return resp;
  }

  describe('file-op conformance', () => {
    it('Open, ReadAt to EOF, size 0, Close, then EBADF', async () => {
      const path = join(root, 'read.txt');
      writeFileSync(path, 'abcdef');
      const open = await ok({ op: FileOp.Open, p: path });
      expect(open.h).toBe(1); // handles start at 1

      const read = await ok({ op: FileOp.ReadAt, h: open.h, of: 2, sz: 10 });
      expect([text(read.d), read.n, read.eof]).toEqual(['cdef', 4, true]);
      const full = await ok({ op: FileOp.ReadAt, h: open.h, of: 0, sz: 6 });
      expect([text(full.d), full.n, full.eof ?? false]).toEqual(['abcdef', 6, false]);
      const past = await ok({ op: FileOp.ReadAt, h: open.h, of: 100, sz: 4 });
      expect([past.d?.length ?? 0, past.n ?? 0, past.eof]).toEqual([0, 0, true]);
      const zero = await ok({ op: FileOp.ReadAt, h: open.h, of: 0, sz: 0 });
      expect([zero.d?.length ?? 0, zero.n ?? 0, zero.eof ?? false]).toEqual([0, 0, false]);
      // Open is read-only.
      await fails({ op: FileOp.WriteAt, h: open.h, of: 0, d: Buffer.from('x') }, 9);

      await ok({ op: FileOp.Close, h: open.h });
      await fails({ op: FileOp.ReadAt, h: open.h, sz: 1 }, 9);
      // EBADF comes before the size-0 shortcut.
      await fails({ op: FileOp.ReadAt, h: open.h, sz: 0 }, 9);
      await fails({ op: FileOp.Close, h: open.h }, 9);
      // The next handle is a new token, not the closed one reused.
      expect((await ok({ op: FileOp.Open, p: path })).h).toBe(2);
    });

    it('OpenFile O_CREAT|O_EXCL 0640, WriteAt, Fstat, Ftruncate, Fsync, Close', async () => {
      const path = join(root, 'write.txt');
      const flags = O_CREAT | O_RDWR | O_EXCL;
      const open = await ok({ op: FileOp.OpenFile, p: path, fl: flags, mo: 0o640 });
      const write = await ok({
        op: FileOp.WriteAt,
        h: open.h,
        of: 0,
        d: Buffer.from('hello world'),
      });
      expect(write.n).toBe(11);
      const fstat = await ok({ op: FileOp.Fstat, h: open.h });
      expect(fstat.st).toMatchObject({ n: 'write.txt', s: 11, m: 0o640 }); // no type bits
      expect(fstat.st?.d ?? false).toBe(false);
      expect(fstat.st?.nl).toBe(1);
      expect(fstat.st?.ino).toBe(Number(statSync(path).ino));
      await ok({ op: FileOp.Ftruncate, h: open.h, sz: 5 });
      await ok({ op: FileOp.Fsync, h: open.h });
      await ok({ op: FileOp.Close, h: open.h });

      expect(readFileSync(path, 'utf8')).toBe('hello');
      expect(statSync(path).mode & 0o777).toBe(0o640);
      await fails({ op: FileOp.OpenFile, p: path, fl: flags, mo: 0o640 }, 17); // EEXIST
      await fails({ op: FileOp.OpenFile, p: path, fl: 0o3 }, 22); // no such access mode
    });

    it('Create truncates and opens read-write', async () => {
      const path = join(root, 'created.txt');
      writeFileSync(path, 'old contents');
      const created = await ok({ op: FileOp.Create, p: path });
      expect(statSync(path).size).toBe(0);
      await ok({ op: FileOp.WriteAt, h: created.h, of: 0, d: Buffer.from('new') });
      const back = await ok({ op: FileOp.ReadAt, h: created.h, of: 0, sz: 10 });
      expect([text(back.d), back.eof]).toEqual(['new', true]);
      await ok({ op: FileOp.Close, h: created.h });
    });

    it('WriteAt with offset < 0 writes at the current position; O_APPEND refuses offsets', async () => {
      const path = join(root, 'pos.txt');
      writeFileSync(path, 'abcdef');
      const rw = await ok({ op: FileOp.OpenFile, p: path, fl: O_RDWR });
      await ok({ op: FileOp.WriteAt, h: rw.h, of: -1, d: Buffer.from('12') });
      await ok({ op: FileOp.WriteAt, h: rw.h, of: -1, d: Buffer.from('34') });
      await ok({ op: FileOp.Close, h: rw.h });
      expect(readFileSync(path, 'utf8')).toBe('1234ef');

      const app = await ok({ op: FileOp.OpenFile, p: path, fl: O_WRONLY | O_APPEND });
      const w = await ok({ op: FileOp.WriteAt, h: app.h, of: -1, d: Buffer.from('XY') });
      expect(w.n).toBe(2);
      // Go's File.WriteAt refuses an O_APPEND file (an errno-less error: EIO).
      const refused = await fails({ op: FileOp.WriteAt, h: app.h, of: 0, d: Buffer.from('Z') }, 5);
      expect(refused.em).toContain('O_APPEND');
      await ok({ op: FileOp.Close, h: app.h });
      expect(readFileSync(path, 'utf8')).toBe('1234efXY');

      const trunc = await ok({ op: FileOp.OpenFile, p: path, fl: O_WRONLY | O_TRUNC });
      await ok({ op: FileOp.Close, h: trunc.h });
      expect(readFileSync(path, 'utf8')).toBe('');
    });

    it('MkdirAll, Stat, Chmod, Chtimes, Truncate, Statfs', async () => {
      const dir = join(root, 'dir', 'nested');
      await ok({ op: FileOp.MkdirAll, p: dir, mo: 0o750 });
      await ok({ op: FileOp.MkdirAll, p: dir, mo: 0o750 }); // an existing directory is fine
      const stat = await ok({ op: FileOp.Stat, p: dir });
      expect(stat.st).toMatchObject({ n: 'nested', d: true, m: (GoFileMode.Dir | 0o750) >>> 0 });

      const file = join(dir, 'meta.txt');
      const open = await ok({ op: FileOp.OpenFile, p: file, fl: O_CREAT | O_WRONLY, mo: 0o600 });
      await ok({ op: FileOp.Close, h: open.h });
      expect(statSync(file).mode & 0o777).toBe(0o600);
      await ok({ op: FileOp.Chmod, p: file, mo: 0o644 });
      const at = 1_600_000_000_123_456_000n;
      const mt = 1_700_000_000_456_000_000n;
      await ok({ op: FileOp.Truncate, p: file, sz: 3 });
      await ok({ op: FileOp.Chtimes, p: file, at, mt }); // after Truncate, which sets mtime
      const meta = statSync(file, { bigint: true });
      expect([meta.size, meta.mode & 0o777n]).toEqual([3n, 0o644n]);
      expectTimeNear(meta.atimeNs, at);
      expectTimeNear(meta.mtimeNs, mt);
      // Microseconds survive (Node's utimes keeps no more), even where a double rounds down.
      const us = 1_600_000_000_000_001_000n;
      await ok({ op: FileOp.Chtimes, p: join(root, 'dir'), at: us, mt: us });
      expectTimeNear(statSync(join(root, 'dir'), { bigint: true }).mtimeNs, us);
      const again = await ok({ op: FileOp.Stat, p: file });
      expect(again.st).toMatchObject({ n: 'meta.txt', s: 3, m: 0o644 });
      expect(BigInt(again.st?.t ?? 0)).toBe(meta.mtimeNs); // what the file system kept
      expect(BigInt(again.st?.at ?? 0)).toBe(meta.atimeNs);
      expect(again.st?.uid ?? 0).toBe(process.getuid?.()); // 0 is absent on the wire

      // setuid / setgid / sticky travel as POSIX bits and come back as Go's.
      await ok({ op: FileOp.Chmod, p: file, mo: 0o4755 });
      expect(statSync(file).mode & 0o7777).toBe(0o4755);
      const suid = await ok({ op: FileOp.Stat, p: file });
      expect(suid.st?.m).toBe((GoFileMode.Setuid | 0o755) >>> 0);
      await ok({ op: FileOp.Chmod, p: dir, mo: 0o1777 });
      const sticky = await ok({ op: FileOp.Stat, p: dir });
      expect(sticky.st?.m).toBe((GoFileMode.Dir | GoFileMode.Sticky | 0o777) >>> 0);

      const statfs = await ok({ op: FileOp.Statfs, p: root });
      expect(Number(statfs.sf?.bs)).toBeGreaterThan(0);
      expect(Number(statfs.sf?.nl)).toBeGreaterThan(0);
      expect(Number(statfs.sf?.b)).toBeGreaterThan(0);
    });

    it('Mkdir, Rename, Link, Symlink, Readlink, Lstat, ReadDir, Remove', async () => {
      const dir = join(root, 'links');
      await ok({ op: FileOp.Mkdir, p: dir, mo: 0o755 });
      const original = join(dir, 'original.txt');
      writeFileSync(original, 'content');

      const renamed = join(dir, 'renamed.txt');
      await ok({ op: FileOp.Rename, p: original, np: renamed });
      await fails({ op: FileOp.Stat, p: original }, 2);
      await ok({ op: FileOp.Link, p: renamed, np: join(dir, 'hard.txt') });
      await ok({ op: FileOp.Symlink, p: 'renamed.txt', np: join(dir, 'sym.txt') });
      const readlink = await ok({ op: FileOp.Readlink, p: join(dir, 'sym.txt') });
      expect(readlink.p).toBe('renamed.txt');
      const lstat = await ok({ op: FileOp.Lstat, p: join(dir, 'sym.txt') });
      expect((lstat.st?.m ?? 0) & GoFileMode.Symlink).not.toBe(0);
      expect(lstat.st?.s).toBe('renamed.txt'.length);
      const followed = await ok({ op: FileOp.Stat, p: join(dir, 'sym.txt') });
      const perm = statSync(renamed).mode & 0o777;
      expect(followed.st).toMatchObject({ n: 'sym.txt', s: 7, m: perm });

      mkdirSync(join(dir, 'a-sub'));
      const readdir = await ok({ op: FileOp.ReadDir, p: dir });
      // Sorted by name by the service, each entry lstat'ed.
      const entries = (readdir.en ?? []).map((e) => [
        e.st.n,
        (e.st.m & GoFileMode.Symlink) !== 0,
        e.st.d ?? false,
      ]);
      expect(entries).toEqual([
        ['a-sub', false, true],
        ['hard.txt', false, false],
        ['renamed.txt', false, false],
        ['sym.txt', true, false],
      ]);
      expect(readdir.en?.[1]?.st.nl).toBe(2); // the hard link

      await ok({ op: FileOp.Remove, p: join(dir, 'hard.txt') });
      await fails({ op: FileOp.Stat, p: join(dir, 'hard.txt') }, 2);
      await ok({ op: FileOp.Remove, p: join(dir, 'a-sub') }); // an empty directory
      await fails({ op: FileOp.Remove, p: dir }, 39); // ENOTEMPTY
      await fails({ op: FileOp.Remove, p: join(dir, 'gone') }, 2);
      // Go's os.Rename will not replace a directory.
      mkdirSync(join(dir, 'target'));
      await fails({ op: FileOp.Rename, p: renamed, np: join(dir, 'target') }, 17);
      const empty = await ok({ op: FileOp.ReadDir, p: join(dir, 'target') });
      expect(empty.en ?? []).toEqual([]);
    });

    it('errors: ENOENT, EBADF, ENOSYS, EEXIST, ENOTDIR and the rest, with Go-style em', async () => {
      const missing = join(root, 'missing');
      const open = await fails({ op: FileOp.Open, p: missing }, 2);
      expect(open.em).toBe(`open ${missing}: no such file or directory`);
      await fails({ op: FileOp.Stat, p: missing }, 2);
      await fails({ op: FileOp.Lstat, p: missing }, 2);
      await fails({ op: FileOp.ReadDir, p: missing }, 2);
      await fails({ op: FileOp.Chmod, p: missing, mo: 0o644 }, 2);
      await fails({ op: FileOp.Chtimes, p: missing }, 2);
      await fails({ op: FileOp.Truncate, p: missing }, 2);
      await fails({ op: FileOp.Readlink, p: missing }, 2);
      await fails({ op: FileOp.Link, p: missing, np: join(root, 'l') }, 2);
      await fails({ op: FileOp.Rename, p: missing, np: join(root, 'r') }, 2);
      await fails({ op: FileOp.Statfs, p: missing }, 2);
      await fails({ op: FileOp.Chown, p: missing, uid: 0, gid: 0 }, 2);
      await fails({ op: FileOp.Mkdir, p: join(missing, 'sub') }, 2);

      for (const op of [FileOp.Close, FileOp.ReadAt, FileOp.WriteAt, FileOp.Fsync]) {
        await fails({ op, h: 999, sz: 1, d: Buffer.from('x') }, 9);
      }
      await fails({ op: FileOp.Fstat, h: 999 }, 9);
      await fails({ op: FileOp.Ftruncate, h: 999 }, 9);
      await fails({ op: FileOp.Close }, 9); // handle 0 is never issued

      for (const op of [0, 26, 255]) {
        const unknown = await fails({ op }, 38);
        expect(unknown.em).toBe('unknown file op');
      }

      const file = join(root, 'file');
      writeFileSync(file, '0123456789');
      await fails({ op: FileOp.Mkdir, p: root }, 17);
      await fails({ op: FileOp.Symlink, p: 'x', np: file }, 17);
      await fails({ op: FileOp.Link, p: file, np: file }, 17);
      await fails({ op: FileOp.MkdirAll, p: file }, 20); // over an existing file
      await fails({ op: FileOp.MkdirAll, p: join(file, 'sub') }, 20);
      await fails({ op: FileOp.Stat, p: join(file, 'x') }, 20);
      await fails({ op: FileOp.ReadDir, p: file }, 20);
      await fails({ op: FileOp.OpenFile, p: root, fl: O_WRONLY }, 21); // EISDIR
      await fails({ op: FileOp.Readlink, p: file }, 22); // not a link
      await fails({ op: FileOp.Truncate, p: file, sz: -1 }, 22);
      await fails({ op: FileOp.Open, p: 'nul\u0000byte' }, 22);
      await fails({ op: FileOp.OpenFile, p: file, fl: O_RDONLY | 0x4000_0000 }, 22);
      const loop = join(root, 'loop');
      await ok({ op: FileOp.Symlink, p: 'loop', np: loop });
      await fails({ op: FileOp.Stat, p: loop }, 40); // ELOOP

      const h = (await ok({ op: FileOp.OpenFile, p: file, fl: O_RDWR })).h;
      await fails({ op: FileOp.ReadAt, h, of: -1, sz: 1 }, 22);
      await fails({ op: FileOp.Ftruncate, h, sz: -1 }, 22);
      expect(readFileSync(file, 'utf8')).toBe('0123456789'); // nothing clamped to 0
    });

    it.skipIf(isRoot)('EACCES from a directory without permissions', async () => {
      const locked = join(root, 'locked');
      mkdirSync(join(locked, 'inner'), { recursive: true });
      chmodSync(locked, 0o000);
      await fails({ op: FileOp.Stat, p: join(locked, 'inner') }, 13);
      chmodSync(locked, 0o755);
    });

    it('Chown (to another owner when privileged), Getwd', async () => {
      const file = join(root, 'owned');
      writeFileSync(file, '');
      const [uid, gid] = isRoot ? [1234, 4321] : [process.getuid?.() ?? 0, process.getgid?.() ?? 0];
      await ok({ op: FileOp.Chown, p: file, uid, gid });
      expect([statSync(file).uid, statSync(file).gid]).toEqual([uid, gid]);
      // uint32 -1 leaves the owner as it is.
      await ok({ op: FileOp.Chown, p: file, uid: 0xffff_ffff, gid });
      expect(statSync(file).uid).toBe(uid);
      const wd = await ok({ op: FileOp.Getwd });
      expect(wd.p).toBe(driver.cwd);
    });
  });
}
