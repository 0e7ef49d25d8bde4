// The two bit vocabularies of the file-op wire and their translation to the host:
// - `FileStat.m` in responses is a Go `os.FileMode` (type bits high up, not `st_mode`'s S_IFMT);
// - `fl` in requests is Linux `O_*` numbers, translated to this host's `fs.constants`.
import { constants } from 'node:fs';

/** Go's `os.FileMode` bits as they appear in `FileStat.m` (unsigned 32-bit). */
export const GoFileMode = {
  Dir: 0x8000_0000, // 1 << 31
  Append: 0x4000_0000, // 1 << 30
  Exclusive: 0x2000_0000, // 1 << 29
  Temporary: 0x1000_0000, // 1 << 28
  Symlink: 0x0800_0000, // 1 << 27
  Device: 0x0400_0000, // 1 << 26
  NamedPipe: 0x0200_0000, // 1 << 25
  Socket: 0x0100_0000, // 1 << 24
  Setuid: 0x0080_0000, // 1 << 23
  Setgid: 0x0040_0000, // 1 << 22
  CharDevice: 0x0020_0000, // 1 << 21
  Sticky: 0x0010_0000, // 1 << 20
  Irregular: 0x0008_0000, // 1 << 19
  /** The mask of the type bits (Go's `ModeType`). */
  Type: 0x8f28_0000,
  /** The permission bits (Go's `ModePerm`). */
  Perm: 0o777,
} as const;

// S_IFMT and its file types: the same numbers on Linux, Darwin and the BSDs.
const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFDIR = 0o040000;
const S_IFBLK = 0o060000;
const S_IFLNK = 0o120000;
const S_IFSOCK = 0o140000;

/**
 * A POSIX `st_mode` (as in `fs.Stats.mode`) as a Go `os.FileMode`: permission bits kept, the
 * file type and setuid / setgid / sticky moved to Go's high bits. A regular file has no type
 * bit; an unknown type gets none either (as Go does).
 */
export function goFileMode(stMode: number | bigint): number {
  const mode = Number(stMode);
  let out = mode & 0o777;
  if (mode & 0o4000) out |= GoFileMode.Setuid;
  if (mode & 0o2000) out |= GoFileMode.Setgid;
  if (mode & 0o1000) out |= GoFileMode.Sticky;
  switch (mode & S_IFMT) {
    case S_IFDIR:
      out |= GoFileMode.Dir;
      break;
    case S_IFLNK:
      out |= GoFileMode.Symlink;
      break;
    case S_IFIFO:
      out |= GoFileMode.NamedPipe;
      break;
    case S_IFSOCK:
      out |= GoFileMode.Socket;
      break;
    case S_IFBLK:
      out |= GoFileMode.Device;
      break;
    case S_IFCHR:
      out |= GoFileMode.Device | GoFileMode.CharDevice;
      break;
  }
  return out >>> 0; // bit 31 makes a JS bitwise result negative
}

/**
 * A Go `os.FileMode` back to POSIX permission bits with setuid / setgid / sticky (what `mo`
 * carries on requests); the type bits are dropped.
 */
export function posixModeFromGo(goMode: number): number {
  let out = goMode & 0o777;
  if (goMode & GoFileMode.Setuid) out |= 0o4000;
  if (goMode & GoFileMode.Setgid) out |= 0o2000;
  if (goMode & GoFileMode.Sticky) out |= 0o1000;
  return out;
}

/**
 * Linux `O_*` open flags (the generic / x86-64 numbers) as the file-op wire carries them in `fl`.
 * `O_CLOEXEC` and `O_LARGEFILE` are accepted and ignored: the agent's descriptors are always
 * close-on-exec and always large-file capable.
 */
export const LinuxOpenFlag = {
  O_RDONLY: 0,
  O_WRONLY: 0o1,
  O_RDWR: 0o2,
  O_CREAT: 0o100,
  O_EXCL: 0o200,
  O_NOCTTY: 0o400,
  O_TRUNC: 0o1000,
  O_APPEND: 0o2000,
  O_NONBLOCK: 0o4000,
  O_DSYNC: 0o10000,
  O_LARGEFILE: 0o100000,
  O_DIRECTORY: 0o200000,
  O_NOFOLLOW: 0o400000,
  O_CLOEXEC: 0o2000000,
  O_SYNC: 0o4010000,
} as const;

const O_ACCMODE = 0o3;

/** Linux flag → this host's constant (undefined where the host has none, e.g. O_DSYNC on some). */
const TRANSLATED: ReadonlyArray<readonly [number, number | undefined]> = [
  // O_SYNC contains O_DSYNC's bit on Linux: match it first, as a whole.
  [LinuxOpenFlag.O_SYNC, constants.O_SYNC],
  [LinuxOpenFlag.O_DSYNC, constants.O_DSYNC],
  [LinuxOpenFlag.O_CREAT, constants.O_CREAT],
  [LinuxOpenFlag.O_EXCL, constants.O_EXCL],
  [LinuxOpenFlag.O_NOCTTY, constants.O_NOCTTY],
  [LinuxOpenFlag.O_TRUNC, constants.O_TRUNC],
  [LinuxOpenFlag.O_APPEND, constants.O_APPEND],
  [LinuxOpenFlag.O_NONBLOCK, constants.O_NONBLOCK],
  [LinuxOpenFlag.O_DIRECTORY, constants.O_DIRECTORY],
  [LinuxOpenFlag.O_NOFOLLOW, constants.O_NOFOLLOW],
];

const IGNORED = LinuxOpenFlag.O_CLOEXEC | LinuxOpenFlag.O_LARGEFILE;

/**
 * Translates wire open flags (Linux numbers) to this host's `fs.open` flags. Returns undefined
 * for an access mode of 3 or a bit this table does not know: the service answers EINVAL rather
 * than hand an unknown bit to the host's `open(2)`, where it could mean something else.
 */
export function hostOpenFlags(linuxFlags: number): number | undefined {
  const access = linuxFlags & O_ACCMODE;
  if (access === O_ACCMODE) return undefined;
  let out =
    access === LinuxOpenFlag.O_WRONLY
      ? constants.O_WRONLY
      : access === LinuxOpenFlag.O_RDWR
        ? constants.O_RDWR
        : constants.O_RDONLY;
  let rest = (linuxFlags & ~O_ACCMODE & ~IGNORED) >>> 0;
  for (const [linux, host] of TRANSLATED) {
    if ((rest & linux) !== linux) continue;
    if (host === undefined) return undefined;
    out |= host;
    rest &= ~linux;
  }
  return rest === 0 ? out : undefined;
}
