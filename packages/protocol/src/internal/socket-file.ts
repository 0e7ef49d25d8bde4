/**
 * Unix socket files that exist only with their final mode.
 *
 * bind(2) creates a socket file with the process umask (often 0755 or 0777) and a chmod
 * can only follow it, so a file bound at its real path is, for a moment, open to every
 * local user. Here the socket is bound inside a fresh 0700 directory next to the target
 * (nobody else can reach it there), chmodded, and renamed into place: the path never
 * holds the socket with wider bits. rename(2) also replaces a stale socket atomically.
 */
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { dirname, join, sep } from 'node:path';
import { AgentProtocolError, ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';

/**
 * Longest Unix socket path in bytes: the size of `sun_path` (108 on Linux, 104 on macOS
 * and the BSDs). Node silently truncates a longer path, which would bind a different file.
 */
export const MAX_SOCKET_PATH_BYTES = process.platform === 'linux' ? 108 : 104;

/** What {@link bindSocketFile} and {@link listenUnix} need to know. */
export interface SocketFileOptions {
  /** permission bits of the socket file, e.g. 0o660 */
  mode: number;
  /** told (info) when a stale socket file is replaced */
  logger?: Pick<Logger, 'info'>;
}

/** A socket file this process created; {@link remove} deletes it only while it is still ours. */
export interface SocketFile {
  /** the path as given */
  readonly path: string;
  /** inode of the socket file */
  readonly inode: number;
  /**
   * Unlinks `path` if it still holds this socket (same device and inode), so a file some
   * other process bound there since is left alone. Resolves true if it removed the file.
   * Call it before closing the server: the listening socket keeps the inode allocated, so
   * its number cannot have been reused by a newer file yet.
   */
  remove(): Promise<boolean>;
}

/** Closes what a bind function opened (used when a later step fails). */
export type Unbind = () => unknown;

/** Throws `INVALID_ARGUMENT` naming `path` and its byte length if it cannot be bound. */
export function checkSocketPathLength(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (path === '') throw new AgentProtocolError(ErrorCode.InvalidArgument, 'empty socket path');
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `socket path ${path} is ${bytes} bytes; a Unix socket path can have at most ${MAX_SOCKET_PATH_BYTES}`,
    );
  }
}

/** True when something accepts connections on `path`. */
function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createConnection({ path });
    const done = (live: boolean): void => {
      probe.destroy();
      resolve(live);
    };
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
    // No answer either way: assume someone owns it rather than steal it.
    probe.setTimeout(1000, () => done(true));
  });
}

/**
 * Resolves 'absent' or 'stale' (a socket nobody listens on, safe to replace); rejects when
 * `path` holds anything else: a file that is not a socket, or a live socket.
 */
export async function inspectSocketPath(path: string): Promise<'absent' | 'stale'> {
  let stat: Awaited<ReturnType<typeof fsp.lstat>>;
  try {
    stat = await fsp.lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw AgentProtocolError.from(err, ErrorCode.ConnectionFailed, `cannot inspect ${path}`);
  }
  if (!stat.isSocket()) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `${path} exists and is not a socket; refusing to replace it`,
    );
  }
  if (await isLive(path)) {
    throw new AgentProtocolError(
      ErrorCode.ConnectionFailed,
      `${path}: another process is already listening on this socket`,
    );
  }
  return 'stale';
}

/**
 * Creates the socket file `path` with `options.mode` from the start. `bind(tempPath)` must
 * bind the socket at `tempPath` and resolve once it listens, with a function that closes
 * it again (called if a later step fails). Refuses, before binding, a path that is too
 * long, a file that is not a socket and a live socket; a stale socket is replaced.
 */
export async function bindSocketFile(
  path: string,
  bind: (tempPath: string) => Promise<Unbind>,
  options: SocketFileOptions,
): Promise<SocketFile> {
  checkSocketPathLength(path);
  const dir = dirname(path);
  // mkdtemp appends six characters to the prefix; the socket inside is named "s".
  const tempBytes = Buffer.byteLength(join(dir, '.XXXXXX', 's'));
  if (tempBytes > MAX_SOCKET_PATH_BYTES) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `socket path ${path}: its directory leaves no room for the private bind directory ` +
        `(${tempBytes} bytes needed, at most ${MAX_SOCKET_PATH_BYTES}); use a shorter directory`,
    );
  }
  if ((await inspectSocketPath(path)) === 'stale') {
    options.logger?.info('replacing stale socket file', { path });
  }
  let privateDir: string;
  try {
    // Not join(dir, '.'): join would drop the '.', making a sibling of `dir`.
    privateDir = await fsp.mkdtemp(`${dir}${sep}.`); // mode 0700
  } catch (err) {
    throw AgentProtocolError.from(
      err,
      ErrorCode.ConnectionFailed,
      `cannot listen on ${path}: cannot create a private directory in ${dir}`,
    );
  }
  const tempPath = join(privateDir, 's');
  let unbind: Unbind | undefined;
  try {
    unbind = await bind(tempPath);
    await fsp.chmod(tempPath, options.mode);
    const stat = await fsp.lstat(tempPath);
    // Again, right before replacing: something may have appeared at `path` meanwhile.
    await inspectSocketPath(path);
    await fsp.rename(tempPath, path);
    return ownedSocketFile(path, stat.dev, stat.ino);
  } catch (err) {
    await Promise.resolve(unbind?.()).catch(() => undefined);
    await fsp.rm(tempPath, { force: true }).catch(() => undefined);
    throw AgentProtocolError.from(err, ErrorCode.ConnectionFailed, `cannot listen on ${path}`);
  } finally {
    await fsp.rmdir(privateDir).catch(() => undefined);
  }
}

function ownedSocketFile(path: string, dev: number, inode: number): SocketFile {
  let removed: Promise<boolean> | undefined;
  const remove = async (): Promise<boolean> => {
    const stat = await fsp.lstat(path).catch(() => undefined);
    if (stat === undefined || !stat.isSocket() || stat.dev !== dev || stat.ino !== inode) {
      return false;
    }
    return fsp.unlink(path).then(
      () => true,
      () => false,
    );
  };
  return {
    path,
    inode,
    remove: () => {
      removed ??= remove();
      return removed;
    },
  };
}

/**
 * {@link bindSocketFile} for a `net.Server`: listens on `path` with the socket file born
 * with `options.mode`. Node unlinks only the temporary name when the server closes, so
 * call `remove()` on the result when closing it (before `server.close()`).
 */
export function listenUnix(
  server: net.Server,
  path: string,
  options: SocketFileOptions & { backlog?: number },
): Promise<SocketFile> {
  return bindSocketFile(
    path,
    (tempPath) =>
      new Promise<Unbind>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ path: tempPath, backlog: options.backlog }, () => {
          server.off('error', reject);
          resolve(() => new Promise<void>((done) => server.close(() => done())));
        });
      }),
    options,
  );
}
