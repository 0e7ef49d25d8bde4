/**
 * The shared socket-file helper (`@picket/protocol/internal`): the socket exists at its path
 * only with its final mode, stale sockets are replaced, anything else is refused, a path
 * past the sun_path limit is a clear error, and remove() deletes only our own file.
 */
import {
  promises as fsp,
  linkSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentProtocolError } from '../src/errors.js';
import {
  bindSocketFile,
  checkSocketPathLength,
  listenUnix,
  MAX_SOCKET_PATH_BYTES,
  type SocketFile,
} from '../src/internal/index.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'picket-sf-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function server(): net.Server {
  const s = net.createServer((socket) => {
    socket.on('error', () => undefined); // probes and test clients hang up at once
    socket.end();
  });
  cleanups.push(() => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r())));
  return s;
}

async function listen(path: string, mode = 0o600): Promise<{ s: net.Server; file: SocketFile }> {
  const s = server();
  const file = await listenUnix(s, path, { mode });
  cleanups.push(() => file.remove());
  return { s, file };
}

function connects(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.createConnection({ path });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** A socket file nobody listens on, as a killed process leaves it. */
async function staleSocket(path: string): Promise<void> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(path, r));
  linkSync(path, `${path}.keep`); // Node unlinks `path` on close; the second name survives
  await new Promise<void>((r) => s.close(() => r()));
  await fsp.rename(`${path}.keep`, path);
}

const modeOf = async (path: string): Promise<number> => (await fsp.lstat(path)).mode & 0o777;

async function rejection(p: Promise<unknown>): Promise<AgentProtocolError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentProtocolError);
  return err as AgentProtocolError;
}

describe('bindSocketFile', () => {
  it('the path holds the socket only with its final mode, whatever the umask', async () => {
    const dir = tempDir();
    const path = join(dir, 'a.sock');
    const previous = process.umask(0);
    cleanups.push(() => process.umask(previous));
    const s = server();
    let duringBind: { entries: string[]; privateMode: number } | undefined;
    const file = await bindSocketFile(
      path,
      async (tempPath) => {
        await new Promise<void>((r) => s.listen(tempPath, r));
        // Bound, not yet chmodded: the directory shows nothing at `path`, only the 0700 dir.
        const entries = readdirSync(dir);
        duringBind = { entries, privateMode: await modeOf(join(dir, entries[0] ?? '')) };
        return () => new Promise<void>((r) => s.close(() => r()));
      },
      { mode: 0o640 },
    );
    cleanups.push(() => file.remove());
    expect(duringBind?.entries).toHaveLength(1);
    expect(duringBind?.entries[0]).toMatch(/^\.\w{6}$/);
    expect(duringBind?.privateMode).toBe(0o700);
    expect(await modeOf(path)).toBe(0o640);
    expect(readdirSync(dir)).toEqual(['a.sock']); // the private directory is gone
    expect(file.inode).toBe((await fsp.lstat(path)).ino);
    expect(await connects(path)).toBe(true);
  });

  it('replaces a stale socket and logs it', async () => {
    const path = join(tempDir(), 'stale.sock');
    await staleSocket(path);
    const staleInode = (await fsp.lstat(path)).ino;
    const lines: unknown[] = [];
    const s = server();
    const file = await listenUnix(s, path, {
      mode: 0o660,
      logger: { info: (message, fields) => lines.push([message, fields]) },
    });
    cleanups.push(() => file.remove());
    expect(file.inode).not.toBe(staleInode);
    expect(await modeOf(path)).toBe(0o660);
    expect(await connects(path)).toBe(true);
    expect(lines).toEqual([['replacing stale socket file', { path }]]);
  });

  it('refuses a live socket and leaves it working', async () => {
    const dir = tempDir();
    const path = join(dir, 'live.sock');
    const first = await listen(path);
    const err = await rejection(listenUnix(server(), path, { mode: 0o600 }));
    expect(err.code).toBe('CONNECTION_FAILED');
    expect(err.message).toBe(`${path}: another process is already listening on this socket`);
    expect((await fsp.lstat(path)).ino).toBe(first.file.inode);
    expect(await connects(path)).toBe(true);
    expect(readdirSync(dir)).toEqual(['live.sock']);
  });

  it('refuses a regular file and leaves it untouched', async () => {
    const dir = tempDir();
    const path = join(dir, 'data');
    writeFileSync(path, 'precious');
    const err = await rejection(listenUnix(server(), path, { mode: 0o600 }));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toBe(`${path} exists and is not a socket; refusing to replace it`);
    expect(await fsp.readFile(path, 'utf8')).toBe('precious');
    expect(readdirSync(dir)).toEqual(['data']);
  });

  it('a path past the sun_path limit is refused naming the path and its length', async () => {
    const dir = tempDir();
    const path = join(dir, 'x'.repeat(MAX_SOCKET_PATH_BYTES));
    const bytes = Buffer.byteLength(path);
    const s = server();
    const err = await rejection(listenUnix(s, path, { mode: 0o600 }));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toBe(
      `socket path ${path} is ${bytes} bytes; a Unix socket path can have at most ${MAX_SOCKET_PATH_BYTES}`,
    );
    expect(s.listening).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
    // multi-byte characters count as bytes
    const wide = `/${'é'.repeat(60)}`;
    expect(() => checkSocketPathLength(wide)).toThrow(/is 121 bytes/);
    expect(() => checkSocketPathLength('')).toThrow(/empty socket path/);
  });

  it('a directory too long for the private bind directory is a clear error', async () => {
    // the final path fits, the temporary one (<dir>/.XXXXXX/s) would not
    const base = tempDir();
    const dir = join(base, 'd'.repeat(MAX_SOCKET_PATH_BYTES - Buffer.byteLength(base) - 6));
    await fsp.mkdir(dir);
    const path = join(dir, 's');
    expect(Buffer.byteLength(path)).toBeLessThanOrEqual(MAX_SOCKET_PATH_BYTES);
    const err = await rejection(listenUnix(server(), path, { mode: 0o600 }));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(
      new RegExp(`^socket path ${path}: its directory leaves no room .* use a shorter directory$`),
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a missing directory is named, with the system error as the cause', async () => {
    const dir = join(tempDir(), 'missing');
    const err = await rejection(listenUnix(server(), join(dir, 'a.sock'), { mode: 0o600 }));
    expect(err.code).toBe('CONNECTION_FAILED');
    expect(err.message).toMatch(
      new RegExp(
        `^cannot listen on ${dir}/a.sock: cannot create a private directory in ${dir}: ENOENT`,
      ),
    );
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('a failing bind leaves nothing behind', async () => {
    const dir = tempDir();
    const err = await rejection(
      bindSocketFile(
        join(dir, 'x.sock'),
        async () => {
          throw new Error('no luck');
        },
        { mode: 0o600 },
      ),
    );
    expect(err.message).toBe(`cannot listen on ${join(dir, 'x.sock')}: no luck`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a live socket appearing while binding is not replaced; the new server is closed', async () => {
    const dir = tempDir();
    const path = join(dir, 'race.sock');
    const s = server();
    let other: SocketFile | undefined;
    const err = await rejection(
      bindSocketFile(
        path,
        async (tempPath) => {
          await new Promise<void>((r) => s.listen(tempPath, r));
          other = (await listen(path)).file; // someone else wins the path meanwhile
          return () => new Promise<void>((r) => s.close(() => r()));
        },
        { mode: 0o600 },
      ),
    );
    expect(err.message).toMatch(/another process is already listening/);
    expect(s.listening).toBe(false);
    expect((await fsp.lstat(path)).ino).toBe(other?.inode);
    expect(readdirSync(dir)).toEqual(['race.sock']);
  });
});

describe('SocketFile.remove', () => {
  it('unlinks the path while it is our socket, once', async () => {
    const path = join(tempDir(), 'own.sock');
    const { s, file } = await listen(path);
    expect(await file.remove()).toBe(true);
    await expect(fsp.lstat(path)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await file.remove()).toBe(true); // same answer, nothing else touched
    await new Promise<void>((r) => s.close(() => r()));
  });

  it('closing the server does not remove the file: Node unlinks only the temporary name', async () => {
    const path = join(tempDir(), 'kept.sock');
    const { s, file } = await listen(path);
    await new Promise<void>((r) => s.close(() => r()));
    expect((await fsp.lstat(path)).ino).toBe(file.inode);
  });

  it("leaves another process's socket at the same path alone", async () => {
    const path = join(tempDir(), 'shared.sock');
    const { file } = await listen(path);
    await fsp.unlink(path);
    const successor = await listen(path); // a new server took the path
    expect(await file.remove()).toBe(false);
    expect((await fsp.lstat(path)).ino).toBe(successor.file.inode);
    expect(await connects(path)).toBe(true);
  });

  it('leaves a regular file that replaced the socket alone', async () => {
    const path = join(tempDir(), 'gone.sock');
    const { file } = await listen(path);
    await fsp.unlink(path);
    writeFileSync(path, 'keep');
    expect(await file.remove()).toBe(false);
    expect(await fsp.readFile(path, 'utf8')).toBe('keep');
  });
});
