// The agent side of the file-op RPC: all 25 ops over node:fs, with agent-side handles, Linux
// errno numbers and Go os.FileMode bits on the wire (spec §2.5 and "Details the Go code
// settles" §5–6). Every request gets exactly one answer: a failure is `er` + `em`, never a throw.
import type { BigIntStats, BigIntStatsFs } from 'node:fs';
import { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import {
  FileOp,
  type FileOpReq,
  type FileOpResp,
  type FileStat,
  type FileStatfs,
  type Int64,
} from '../frames.js';
import { Errno, errnoOf, errnoText } from './errno.js';
import { goFileMode, hostOpenFlags, LinuxOpenFlag } from './mode.js';

/** Options of a {@link FileOpService}. */
export interface FileOpServiceOptions {
  /**
   * The most bytes one ReadAt answers (default 1 MiB, which keeps the reply inside the codec's
   * default item limit). A larger `sz` gets a short read without `eof`; the caller reads on.
   */
  maxReadBytes?: number;
}

/** The default of {@link FileOpServiceOptions.maxReadBytes}. */
export const DEFAULT_MAX_READ_BYTES = 1024 * 1024;

interface OpenFile {
  readonly fh: FileHandle;
  /** The path it was opened by: Fstat's name and the subject of error messages. */
  readonly path: string;
  /** Opened with O_APPEND: positional writes are refused, as Go's File.WriteAt does. */
  readonly append: boolean;
}

/** An error already in wire form (errno + Go-style message). */
class WireError extends Error {
  constructor(
    readonly errno: number,
    message: string,
    readonly n?: number,
  ) {
    super(message);
  }
}

const MAX_U32 = 0xffff_ffff;

/**
 * Serves file-op requests against the local filesystem. Requests may arrive concurrently (the
 * Mux runs several at once); ordering between requests on one handle is the caller's business,
 * but a Close racing a read never crashes: Node's FileHandle lets in-flight calls finish before
 * the descriptor is closed, and later calls on the handle answer EBADF.
 */
export class FileOpService {
  readonly #handles = new Map<number, OpenFile>();
  readonly #maxRead: number;
  #last = 0;

  constructor(options: FileOpServiceOptions = {}) {
    const max = options.maxReadBytes ?? DEFAULT_MAX_READ_BYTES;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new RangeError(`maxReadBytes must be a positive integer, got ${String(max)}`);
    }
    this.#maxRead = max;
  }

  /** The number of open handles. */
  get openHandles(): number {
    return this.#handles.size;
  }

  /** Answers one request. `id` is copied from the request; never rejects. */
  async handle(req: FileOpReq): Promise<FileOpResp> {
    try {
      return { ...(await this.#dispatch(req)), id: req.id };
    } catch (err) {
      if (err instanceof WireError) {
        const resp: FileOpResp = { id: req.id, er: err.errno, em: err.message };
        if (err.n) resp.n = err.n;
        return resp;
      }
      // A bug of ours, not a filesystem answer: still one reply, as EIO.
      return { id: req.id, er: Errno.EIO, em: `file op ${req.op}: ${String(err)}` };
    }
  }

  /** Closes every open handle (the service is ending); errors of the closes are ignored. */
  async closeAll(): Promise<void> {
    const open = [...this.#handles.values()];
    this.#handles.clear();
    await Promise.allSettled(open.map((f) => f.fh.close()));
  }

  async #dispatch(req: FileOpReq): Promise<Omit<FileOpResp, 'id'>> {
    const p = req.p ?? '';
    const np = req.np ?? '';
    switch (req.op) {
      case FileOp.Open:
        return this.#open(p, constants.O_RDONLY, 0, false);
      case FileOp.Create:
        // os.Create: read-write, created 0666 (before umask), truncated.
        return this.#open(
          p,
          constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC,
          0o666,
          false,
        );
      case FileOp.OpenFile: {
        const fl = Number(req.fl ?? 0);
        const flags = hostOpenFlags(fl);
        if (flags === undefined) {
          throw new WireError(Errno.EINVAL, `open ${p}: unsupported open flags 0x${hex(fl)}`);
        }
        return this.#open(p, flags, posixBits(req.mo), (fl & LinuxOpenFlag.O_APPEND) !== 0);
      }
      case FileOp.Close: {
        const f = this.#take(req.h, 'close');
        await attempt('close', f.path, () => f.fh.close());
        return {};
      }
      case FileOp.ReadAt:
        return this.#readAt(req);
      case FileOp.WriteAt:
        return this.#writeAt(req);
      case FileOp.Stat: {
        const st = await attempt('stat', p, () => fsp.stat(p, { bigint: true }));
        return { st: fileStat(goBase(p), st) };
      }
      case FileOp.Lstat: {
        const st = await attempt('lstat', p, () => fsp.lstat(p, { bigint: true }));
        return { st: fileStat(goBase(p), st) };
      }
      case FileOp.ReadDir:
        return { en: await readDir(p) };
      case FileOp.Mkdir:
        await attempt('mkdir', p, () => fsp.mkdir(p, posixBits(req.mo)));
        return {};
      case FileOp.MkdirAll:
        await mkdirAll(p, posixBits(req.mo));
        return {};
      case FileOp.Remove:
        await remove(p);
        return {};
      case FileOp.Rename:
        await rename(p, np);
        return {};
      case FileOp.Chmod:
        await attempt('chmod', p, () => fsp.chmod(p, posixBits(req.mo)));
        return {};
      case FileOp.Truncate: {
        const size = length('truncate', p, req.sz);
        await attempt('truncate', p, () => fsp.truncate(p, size));
        return {};
      }
      case FileOp.Getwd:
        return { p: process.cwd() };
      case FileOp.Fsync: {
        const f = this.#get(req.h, 'sync');
        await attempt('sync', f.path, () => f.fh.sync());
        return {};
      }
      case FileOp.Readlink:
        return { p: await attempt('readlink', p, () => fsp.readlink(p)) };
      case FileOp.Symlink:
        await attempt('symlink', `${p} ${np}`, () => fsp.symlink(p, np));
        return {};
      case FileOp.Link:
        await attempt('link', `${p} ${np}`, () => fsp.link(p, np));
        return {};
      case FileOp.Chown:
        await attempt('chown', p, () => fsp.chown(p, chownId(req.uid), chownId(req.gid)));
        return {};
      case FileOp.Chtimes:
        await attempt('chtimes', p, () => fsp.utimes(p, seconds(req.at), seconds(req.mt)));
        return {};
      case FileOp.Statfs: {
        const sf = await attempt('statfs', p, () => fsp.statfs(p, { bigint: true }));
        return { sf: fileStatfs(sf) };
      }
      case FileOp.Fstat: {
        const f = this.#get(req.h, 'stat');
        const st = await attempt('stat', f.path, () => f.fh.stat({ bigint: true }));
        return { st: fileStat(goBase(f.path), st) };
      }
      case FileOp.Ftruncate: {
        const f = this.#get(req.h, 'truncate');
        const size = length('truncate', f.path, req.sz);
        await attempt('truncate', f.path, () => f.fh.truncate(size));
        return {};
      }
      default:
        return { er: Errno.ENOSYS, em: 'unknown file op' };
    }
  }

  async #open(path: string, flags: number, mode: number, append: boolean) {
    const fh = await attempt('open', path, () => fsp.open(path, flags, mode));
    return { h: this.#put({ fh, path, append }) };
  }

  async #readAt(req: FileOpReq): Promise<Omit<FileOpResp, 'id'>> {
    const f = this.#get(req.h, 'read'); // EBADF before the size-0 shortcut
    const want = Number(req.sz ?? 0);
    if (want <= 0) return {};
    const offset = position('readat', f.path, req.of);
    if (offset < 0) throw new WireError(Errno.EINVAL, `readat ${f.path}: negative offset`);
    const buf = Buffer.allocUnsafe(Math.min(want, this.#maxRead));
    let n = 0;
    let eof = false;
    // Like Go's File.ReadAt: keep reading until the buffer is full or the file ends.
    while (n < buf.length) {
      const { bytesRead } = await attempt('read', f.path, () =>
        f.fh.read(buf, n, buf.length - n, offset + n),
      );
      if (bytesRead === 0) {
        eof = true;
        break;
      }
      n += bytesRead;
    }
    const resp: Omit<FileOpResp, 'id'> = {};
    if (n > 0) {
      resp.d = buf.subarray(0, n);
      resp.n = n;
    }
    if (eof) resp.eof = true;
    return resp;
  }

  async #writeAt(req: FileOpReq): Promise<Omit<FileOpResp, 'id'>> {
    const f = this.#get(req.h, 'write');
    const data = req.d ?? new Uint8Array(0);
    const offset = position('writeat', f.path, req.of);
    // A negative offset writes at the handle's current position (Go's f.Write), which appends
    // on an O_APPEND handle; Go's WriteAt refuses an O_APPEND handle (Linux would append anyway).
    if (offset >= 0 && f.append) {
      throw new WireError(Errno.EIO, 'os: invalid use of WriteAt on file opened with O_APPEND');
    }
    let n = 0;
    while (n < data.length) {
      let written: number;
      try {
        ({ bytesWritten: written } = await f.fh.write(
          data,
          n,
          data.length - n,
          offset < 0 ? null : offset + n,
        ));
      } catch (err) {
        throw new WireError(errnoOf(err), goMessage('write', f.path, err), n);
      }
      if (written === 0) break;
      n += written;
    }
    return n > 0 ? { n } : {};
  }

  #put(file: OpenFile): number {
    // Tokens run 1, 2, … and wrap past 2^32 - 1, skipping 0 and tokens still open.
    do {
      this.#last = this.#last >= MAX_U32 ? 1 : this.#last + 1;
    } while (this.#handles.has(this.#last));
    this.#handles.set(this.#last, file);
    return this.#last;
  }

  #get(h: number | undefined, goOp: string): OpenFile {
    const f = this.#handles.get(h ?? 0);
    if (f === undefined) throw badHandle(goOp, h);
    return f;
  }

  #take(h: number | undefined, goOp: string): OpenFile {
    const f = this.#get(h, goOp);
    this.#handles.delete(h ?? 0);
    return f;
  }
}

function badHandle(goOp: string, h: number | undefined): WireError {
  return new WireError(Errno.EBADF, `${goOp} handle ${h ?? 0}: ${errnoText(Errno.EBADF)}`);
}

/** Runs one fs call; its failure becomes a {@link WireError} "op subject: text", as Go words it. */
async function attempt<T>(goOp: string, subject: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new WireError(errnoOf(err), goMessage(goOp, subject, err));
  }
}

function goMessage(goOp: string, subject: string, err: unknown): string {
  const errno = errnoOf(err);
  const code = (err as { code?: unknown } | null)?.code;
  // Without a known errno name the Node message is the only description there is.
  const known = errno !== Errno.EIO || code === 'EIO';
  return `${goOp} ${subject}: ${known ? errnoText(errno) : errorText(err)}`;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function hex(n: number): string {
  return (n >>> 0).toString(16);
}

/**
 * A file offset as the `number` Node's FileHandle takes (its write silently treats a `bigint`
 * position as "current position"); past 2^53 bytes is refused rather than rounded.
 */
function position(goOp: string, path: string, of: Int64 | undefined): number {
  const offset = Number(of ?? 0);
  if (!Number.isSafeInteger(offset)) {
    throw new WireError(Errno.EINVAL, `${goOp} ${path}: offset out of range`);
  }
  return offset;
}

/** `mo`: permission bits plus setuid / setgid / sticky; anything above is not a mode bit. */
function posixBits(mo: number | undefined): number {
  return (mo ?? 0) & 0o7777;
}

/** A truncate length: Node clamps a negative one to 0, where the syscall (and Go) says EINVAL. */
function length(goOp: string, path: string, sz: number | bigint | undefined): number {
  const size = Number(sz ?? 0);
  if (size < 0) throw new WireError(Errno.EINVAL, `${goOp} ${path}: ${errnoText(Errno.EINVAL)}`);
  return size;
}

/** uid / gid: the wire's uint32 4294967295 is chown(2)'s -1, "leave unchanged". */
function chownId(id: number | undefined): number {
  return id === MAX_U32 ? -1 : (id ?? 0);
}

/**
 * Nanoseconds since the epoch as the seconds `fs.utimes` takes. A double near 2^31 s is only good
 * to ~0.2 µs, so nanoseconds cannot survive. Where libuv truncates to microseconds (Node 20) we
 * aim at the middle of the intended microsecond so the truncation lands on it, not on the one
 * before; where it keeps the double's nanoseconds (Node 22+) the time is within 0.5 µs.
 */
function seconds(ns: Int64 | undefined): number {
  const micros = floorDiv(BigInt(ns ?? 0), 1000n);
  const whole = floorDiv(micros, 1_000_000n);
  return Number(whole) + (Number(micros - whole * 1_000_000n) + 0.5) / 1e6;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n ? q - 1n : q;
}

/** Go's basename of a path given to Stat / Open: trailing slashes dropped, "/" stays "/". */
export function goBase(path: string): string {
  let end = path.length;
  while (end > 1 && path[end - 1] === '/') end--;
  const trimmed = path.slice(0, end);
  if (trimmed === '/') return trimmed;
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

/** As the codec decodes 64-bit fields: a number while safe, so local and remote answers match. */
function int64(value: bigint): Int64 {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value;
}

function fileStat(name: string, st: BigIntStats): FileStat {
  return {
    n: name,
    s: int64(st.size),
    m: goFileMode(st.mode),
    t: int64(st.mtimeNs),
    at: int64(st.atimeNs),
    ct: int64(st.ctimeNs),
    uid: Number(st.uid),
    gid: Number(st.gid),
    nl: Number(st.nlink),
    rd: Number(st.rdev),
    bl: int64(st.blocks),
    bs: Number(st.blksize),
    ino: int64(st.ino),
    d: st.isDirectory(),
  };
}

function fileStatfs(sf: BigIntStatsFs): FileStatfs {
  return {
    b: int64(sf.blocks),
    bf: int64(sf.bfree),
    ba: int64(sf.bavail),
    f: int64(sf.files),
    ff: int64(sf.ffree),
    bs: Number(sf.bsize),
    // Node's statfs reports neither f_frsize nor f_namelen: the fragment size is the block
    // size on the filesystems Linux mounts, and 255 is NAME_MAX on all of them.
    fr: Number(sf.bsize),
    nl: 255,
  };
}

/** os.ReadDir: entries lstat'ed (an entry gone meanwhile is skipped), sorted by name bytewise. */
async function readDir(path: string): Promise<{ st: FileStat }[]> {
  let names: string[];
  try {
    names = await fsp.readdir(path);
  } catch (err) {
    // Go opens the directory first ("open"), then reads it ("readdirent": not a directory).
    const goOp = (err as { code?: unknown }).code === 'ENOTDIR' ? 'readdirent' : 'open';
    throw new WireError(errnoOf(err), goMessage(goOp, path, err));
  }
  names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const stats = await Promise.all(
    names.map((name) => fsp.lstat(join(path, name), { bigint: true }).catch(() => undefined)),
  );
  const out: { st: FileStat }[] = [];
  stats.forEach((st, i) => {
    if (st !== undefined) out.push({ st: fileStat(names[i] ?? '', st) });
  });
  return out;
}

/** os.MkdirAll: an existing directory is success, an existing non-directory is ENOTDIR. */
async function mkdirAll(path: string, mode: number): Promise<void> {
  const st = await fsp.stat(path).catch(() => undefined);
  if (st !== undefined) {
    if (st.isDirectory()) return;
    throw new WireError(Errno.ENOTDIR, `mkdir ${path}: ${errnoText(Errno.ENOTDIR)}`);
  }
  await attempt('mkdir', path, () => fsp.mkdir(path, { recursive: true, mode }));
}

/**
 * os.Remove: a file or an empty directory. unlink first, then rmdir; when both fail, rmdir's
 * error is the real one unless it is ENOTDIR (the path is not a directory).
 */
async function remove(path: string): Promise<void> {
  let unlinkErr: unknown;
  try {
    await fsp.unlink(path);
    return;
  } catch (err) {
    unlinkErr = err;
  }
  try {
    await fsp.rmdir(path);
  } catch (rmdirErr) {
    const err = errnoOf(rmdirErr) === Errno.ENOTDIR ? unlinkErr : rmdirErr;
    throw new WireError(errnoOf(err), goMessage('remove', path, err));
  }
}

/**
 * os.Rename: Go refuses to rename onto an existing directory (EEXIST) unless both names are
 * the same file, where rename(2) would replace an empty one.
 */
async function rename(from: string, to: string): Promise<void> {
  const subject = `${from} ${to}`;
  const target = await fsp.lstat(to).catch(() => undefined);
  if (target?.isDirectory()) {
    const source = await attempt('rename', subject, () => fsp.lstat(from));
    if (from === to || source.dev !== target.dev || source.ino !== target.ino) {
      throw new WireError(Errno.EEXIST, `rename ${subject}: ${errnoText(Errno.EEXIST)}`);
    }
  }
  await attempt('rename', subject, () => fsp.rename(from, to));
}
