// The local side of the file-op RPC: one typed method per op over any `fileOp` RPC (the Mux's),
// with the wire's errno turned back into an error carrying the POSIX code.
import { AgentProtocolError, ErrorCode, escapeForLog } from '@picket/protocol';
import {
  FileOp,
  type FileOpReq,
  type FileOpResp,
  type FileStat,
  type FileStatfs,
} from '../frames.js';
import { errnoName, errnoText } from './errno.js';

/** What a {@link FileClient} needs: the Mux's `fileOp` RPC, or anything shaped like it. */
export interface FileOpRpc {
  fileOp(req: Omit<FileOpReq, 'id'>, options?: { signal?: AbortSignal }): Promise<FileOpResp>;
}

/** Per-call options: a signal that cancels the call (the late reply is dropped). */
export interface FileCallOptions {
  signal?: AbortSignal;
}

/** One ReadAt answer: the bytes read and whether the read reached the end of the file. */
export interface ReadResult {
  data: Uint8Array;
  eof: boolean;
}

/** The longest agent message kept in a {@link FileOpError} (characters). */
const MAX_MESSAGE = 1024;

const OP_NAMES = new Map<number, string>(Object.entries(FileOp).map(([name, op]) => [op, name]));

/**
 * The remote filesystem said no: `code` is the POSIX name (`'ENOENT'`; `'EUNKNOWN'` for a number
 * this table does not know), `errno` the Linux number from the wire, `message` the agent's `em`
 * (control characters escaped, at most 1024 characters kept).
 * Separate from AgentProtocolError on purpose: this is an answer, the RPC itself worked.
 */
export class FileOpError extends Error {
  override readonly name = 'FileOpError';
  readonly code: string;
  readonly errno: number;
  /** The op that failed (`'Open'`, `'ReadAt'`, …). */
  readonly op: string;
  /** Bytes done before the failure (WriteAt reports its partial count). */
  readonly bytesDone: number;

  constructor(op: string, errno: number, message: string, bytesDone = 0) {
    super(message);
    this.op = op;
    this.errno = errno;
    this.code = errnoName(errno) ?? 'EUNKNOWN';
    this.bytesDone = bytesDone;
  }
}

/** A wire number (`number` or, beyond 2^53, `bigint`) as a `number`; byte counts stay small. */
function num(value: number | bigint | undefined): number {
  return Number(value ?? 0);
}

/** Nanoseconds since the epoch, from a Date (millisecond precision) or nanoseconds as given. */
function nanos(time: Date | bigint): bigint {
  return typeof time === 'bigint' ? time : BigInt(time.getTime()) * 1_000_000n;
}

/**
 * A typed file-op client. Paths are the agent's; modes are POSIX permission bits (with
 * setuid 0o4000 / setgid 0o2000 / sticky 0o1000); open flags are Linux `O_*` numbers
 * ({@link LinuxOpenFlag}); `FileStat.m` comes back as Go `os.FileMode` bits ({@link GoFileMode}).
 * A failure the agent reports rejects with {@link FileOpError}; a transport failure rejects with
 * whatever the RPC rejects with (the Mux: AgentProtocolError).
 */
export class FileClient {
  readonly #rpc: FileOpRpc;

  constructor(rpc: FileOpRpc) {
    this.#rpc = rpc;
  }

  async #call(req: Omit<FileOpReq, 'id'>, options?: FileCallOptions): Promise<FileOpResp> {
    const resp = await this.#rpc.fileOp(req, options?.signal ? { signal: options.signal } : {});
    const er = resp.er ?? 0;
    // As the Go client: either field set is a failure.
    if (er !== 0 || (resp.em ?? '') !== '') {
      const op = OP_NAMES.get(req.op) ?? `op ${req.op}`;
      // `em` is the peer's text: escaped and bounded before it can reach a log line.
      const em = resp.em ?? '';
      const text = em.length > MAX_MESSAGE ? `${em.slice(0, MAX_MESSAGE)}…` : em;
      const message = text ? escapeForLog(text) : `${op}: ${errnoText(er)}`;
      throw new FileOpError(op, er, message, num(resp.n));
    }
    return resp;
  }

  async #stat(req: Omit<FileOpReq, 'id'>, options?: FileCallOptions): Promise<FileStat> {
    const resp = await this.#call(req, options);
    if (resp.st === undefined || resp.st === null) throw missing(req.op, 'st');
    return resp.st;
  }

  /** Opens read-only; resolves to the agent-side handle. */
  async open(path: string, options?: FileCallOptions): Promise<number> {
    return num((await this.#call({ op: FileOp.Open, p: path }, options)).h);
  }

  /** Creates or truncates, opened read-write (Go's os.Create, mode 0666 before umask). */
  async create(path: string, options?: FileCallOptions): Promise<number> {
    return num((await this.#call({ op: FileOp.Create, p: path }, options)).h);
  }

  /** Opens with Linux `O_*` flags; `mode` applies when the file is created (default 0o666). */
  async openFile(
    path: string,
    flags: number,
    mode = 0o666,
    options?: FileCallOptions,
  ): Promise<number> {
    const req = { op: FileOp.OpenFile, p: path, fl: flags, mo: mode };
    return num((await this.#call(req, options)).h);
  }

  async close(handle: number, options?: FileCallOptions): Promise<void> {
    await this.#call({ op: FileOp.Close, h: handle }, options);
  }

  /**
   * Reads up to `size` bytes at `offset`. A short read is not an error: `eof` says whether it
   * ended at the end of the file (the agent may also answer short without `eof` when `size` is
   * above its per-read limit; read on from `offset + data.length`).
   */
  async readAt(
    handle: number,
    offset: number | bigint,
    size: number,
    options?: FileCallOptions,
  ): Promise<ReadResult> {
    const resp = await this.#call({ op: FileOp.ReadAt, h: handle, of: offset, sz: size }, options);
    return { data: resp.d ?? new Uint8Array(0), eof: resp.eof === true };
  }

  /**
   * Writes `data` at `offset`; a negative offset writes at the handle's current position
   * (appends on an O_APPEND handle, which refuses positional writes). Resolves to the count.
   */
  async writeAt(
    handle: number,
    data: Uint8Array,
    offset: number | bigint,
    options?: FileCallOptions,
  ): Promise<number> {
    const resp = await this.#call({ op: FileOp.WriteAt, h: handle, of: offset, d: data }, options);
    return num(resp.n);
  }

  stat(path: string, options?: FileCallOptions): Promise<FileStat> {
    return this.#stat({ op: FileOp.Stat, p: path }, options);
  }

  /** Like {@link stat}, but a symlink is described itself, not followed. */
  lstat(path: string, options?: FileCallOptions): Promise<FileStat> {
    return this.#stat({ op: FileOp.Lstat, p: path }, options);
  }

  /** The entries of a directory, lstat'ed, sorted by name. */
  async readDir(path: string, options?: FileCallOptions): Promise<FileStat[]> {
    const resp = await this.#call({ op: FileOp.ReadDir, p: path }, options);
    return (resp.en ?? []).map((entry) => entry.st);
  }

  async mkdir(path: string, mode = 0o777, options?: FileCallOptions): Promise<void> {
    await this.#call({ op: FileOp.Mkdir, p: path, mo: mode }, options);
  }

  /** Creates the directory and any missing parents; an existing directory is fine. */
  async mkdirAll(path: string, mode = 0o777, options?: FileCallOptions): Promise<void> {
    await this.#call({ op: FileOp.MkdirAll, p: path, mo: mode }, options);
  }

  /** Removes a file or an empty directory. */
  async remove(path: string, options?: FileCallOptions): Promise<void> {
    await this.#call({ op: FileOp.Remove, p: path }, options);
  }

  async rename(from: string, to: string, options?: FileCallOptions): Promise<void> {
    await this.#call({ op: FileOp.Rename, p: from, np: to }, options);
  }

  async chmod(path: string, mode: number, options?: FileCallOptions): Promise<void> {
    await this.#call({ op: FileOp.Chmod, p: path, mo: mode }, options);
  }

  async truncate(path: string, size: number | bigint, options?: FileCallOptions): Promise<void> {
    await this.#call({ op: FileOp.Truncate, p: path, sz: size }, options);
  }

  /** The agent's working directory. */
  async getwd(options?: FileCallOptions): Promise<string> {
    return (await this.#call({ op: FileOp.Getwd }, options)).p ?? '';
  }

  async fsync(handle: number, options?: FileCallOptions): Promise<void> {
    await this.#call({ op: FileOp.Fsync, h: handle }, options);
  }

  async readlink(path: string, options?: FileCallOptions): Promise<string> {
    return (await this.#call({ op: FileOp.Readlink, p: path }, options)).p ?? '';
  }

  /** Creates `linkPath` as a symbolic link whose content is `target`. */
  async symlink(target: string, linkPath: string, options?: FileCallOptions): Promise<void> {
    await this.#call({ op: FileOp.Symlink, p: target, np: linkPath }, options);
  }

  /** Creates `newPath` as a hard link to `existing`. */
  async link(existing: string, newPath: string, options?: FileCallOptions): Promise<void> {
    await this.#call({ op: FileOp.Link, p: existing, np: newPath }, options);
  }

  /** Changes owner and group; 4294967295 (uint32 -1) leaves one unchanged. */
  async chown(path: string, uid: number, gid: number, options?: FileCallOptions): Promise<void> {
    await this.#call({ op: FileOp.Chown, p: path, uid, gid }, options);
  }

  /** Sets access and modification times: a Date, or nanoseconds since the epoch. */
  async chtimes(
    path: string,
    atime: Date | bigint,
    mtime: Date | bigint,
    options?: FileCallOptions,
  ): Promise<void> {
    const req = { op: FileOp.Chtimes, p: path, at: nanos(atime), mt: nanos(mtime) };
    await this.#call(req, options);
  }

  async statfs(path: string, options?: FileCallOptions): Promise<FileStatfs> {
    const resp = await this.#call({ op: FileOp.Statfs, p: path }, options);
    if (resp.sf === undefined || resp.sf === null) throw missing(FileOp.Statfs, 'sf');
    return resp.sf;
  }

  /** Stat of an open handle; `n` is the base name of the path it was opened by. */
  fstat(handle: number, options?: FileCallOptions): Promise<FileStat> {
    return this.#stat({ op: FileOp.Fstat, h: handle }, options);
  }

  async ftruncate(handle: number, size: number | bigint, options?: FileCallOptions): Promise<void> {
    await this.#call({ op: FileOp.Ftruncate, h: handle, sz: size }, options);
  }
}

function missing(op: number, field: string): AgentProtocolError {
  const name = OP_NAMES.get(op) ?? `op ${op}`;
  return new AgentProtocolError(
    ErrorCode.InvalidMessage,
    `file-op ${name} reply has no '${field}' although it reports success`,
  );
}

/** A {@link FileClient} over an RPC such as a Mux: `files(mux).stat('/etc/hosts')`. */
export function files(rpc: FileOpRpc): FileClient {
  return new FileClient(rpc);
}
