// Errno on the file-op wire: Linux numbers (the agent the Go client expects is a Linux build; a
// Darwin or FreeBSD host's own numbers would mean something else to the peer), with Go's
// strerror texts so `em` reads like the original's `*os.PathError` ("open /x: no such file or
// directory"). Node reports the failing syscall's error by name (`err.code`), which is portable;
// the host's numeric `err.errno` is not used.

/** Linux errno numbers and Go's message text for each, keyed by the POSIX name. */
const TABLE: Readonly<Record<string, readonly [number, string]>> = {
  EPERM: [1, 'operation not permitted'],
  ENOENT: [2, 'no such file or directory'],
  ESRCH: [3, 'no such process'],
  EINTR: [4, 'interrupted system call'],
  EIO: [5, 'input/output error'],
  ENXIO: [6, 'no such device or address'],
  E2BIG: [7, 'argument list too long'],
  ENOEXEC: [8, 'exec format error'],
  EBADF: [9, 'bad file descriptor'],
  ECHILD: [10, 'no child processes'],
  EAGAIN: [11, 'resource temporarily unavailable'],
  ENOMEM: [12, 'cannot allocate memory'],
  EACCES: [13, 'permission denied'],
  EFAULT: [14, 'bad address'],
  ENOTBLK: [15, 'block device required'],
  EBUSY: [16, 'device or resource busy'],
  EEXIST: [17, 'file exists'],
  EXDEV: [18, 'invalid cross-device link'],
  ENODEV: [19, 'no such device'],
  ENOTDIR: [20, 'not a directory'],
  EISDIR: [21, 'is a directory'],
  EINVAL: [22, 'invalid argument'],
  ENFILE: [23, 'too many open files in system'],
  EMFILE: [24, 'too many open files'],
  ENOTTY: [25, 'inappropriate ioctl for device'],
  ETXTBSY: [26, 'text file busy'],
  EFBIG: [27, 'file too large'],
  ENOSPC: [28, 'no space left on device'],
  ESPIPE: [29, 'illegal seek'],
  EROFS: [30, 'read-only file system'],
  EMLINK: [31, 'too many links'],
  EPIPE: [32, 'broken pipe'],
  ERANGE: [34, 'numerical result out of range'],
  EDEADLK: [35, 'resource deadlock avoided'],
  ENAMETOOLONG: [36, 'file name too long'],
  ENOLCK: [37, 'no locks available'],
  ENOSYS: [38, 'function not implemented'],
  ENOTEMPTY: [39, 'directory not empty'],
  ELOOP: [40, 'too many levels of symbolic links'],
  ENODATA: [61, 'no data available'],
  EOVERFLOW: [75, 'value too large for defined data type'],
  EOPNOTSUPP: [95, 'operation not supported'],
  ETIMEDOUT: [110, 'connection timed out'],
  ESTALE: [116, 'stale NFS file handle'],
  EDQUOT: [122, 'disk quota exceeded'],
  ECANCELED: [125, 'operation canceled'],
};

/** Names Node may report that Linux gives the same number as another name. */
const ALIASES: Readonly<Record<string, string>> = {
  EWOULDBLOCK: 'EAGAIN',
  ENOTSUP: 'EOPNOTSUPP',
  EDEADLOCK: 'EDEADLK',
};

const BY_NUMBER = new Map<number, string>(
  Object.entries(TABLE).map(([name, [errno]]) => [errno, name]),
);

/** The Linux errno numbers the file-op service uses by name (a subset of {@link linuxErrno}). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOSPC: 28,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
} as const;

/** The Linux errno number for a POSIX error name (`'ENOENT'` → 2), or undefined if unknown. */
export function linuxErrno(code: string): number | undefined {
  return TABLE[ALIASES[code] ?? code]?.[0];
}

/** The POSIX name for a Linux errno number (2 → `'ENOENT'`), or undefined if unknown. */
export function errnoName(errno: number): string | undefined {
  return BY_NUMBER.get(errno);
}

/** Go's text for a Linux errno number (2 → "no such file or directory"). */
export function errnoText(errno: number): string {
  const name = BY_NUMBER.get(errno);
  return name === undefined ? `errno ${errno}` : (TABLE[name]?.[1] ?? `errno ${errno}`);
}

/** Node's argument-validation codes: Go rejects the same inputs (a NUL in a path) with EINVAL. */
const INVALID_ARGUMENT = /^ERR_(INVALID_ARG_|OUT_OF_RANGE)/;

/**
 * The wire errno for something a Node fs call threw: the syscall's own error when it has one
 * (by name), EINVAL for Node's argument checks, EIO for anything else.
 */
export function errnoOf(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return Errno.EIO;
  if (INVALID_ARGUMENT.test(code)) return Errno.EINVAL;
  return linuxErrno(code) ?? Errno.EIO;
}
