// The pure translations of the file-op wire: st_mode → Go os.FileMode, Linux O_* → host flags,
// Node error codes → Linux errno numbers.
import { constants } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errnoOf } from '../src/fileops/errno.js';
import { goBase } from '../src/fileops/service.js';
import {
  Errno,
  errnoName,
  errnoText,
  GoFileMode,
  goFileMode,
  hostOpenFlags,
  LinuxOpenFlag,
  linuxErrno,
  posixModeFromGo,
} from '../src/index.js';

describe('goFileMode: st_mode → Go os.FileMode', () => {
  // [st_mode, Go FileMode] — Go values as os.FileMode prints them: d, L, p, S, D, c, u, g, t.
  const table: [string, number, number][] = [
    ['regular 0644', 0o100644, 0o644],
    ['directory 0755', 0o040755, 0x8000_01ed],
    ['symlink 0777', 0o120777, 0x0800_01ff],
    ['named pipe 0600', 0o010600, 0x0200_0180],
    ['socket 0755', 0o140755, 0x0100_01ed],
    ['block device 0660', 0o060660, 0x0400_01b0],
    ['char device 0666', 0o020666, 0x0420_01b6],
    ['setuid 4755', 0o104755, 0x0080_01ed],
    ['setgid 2755', 0o102755, 0x0040_01ed],
    ['sticky dir 1777', 0o041777, 0x8010_01ff],
    ['all three 7777 on a dir', 0o047777, 0x80d0_01ff],
    ['unknown type 0170000', 0o170644, 0o644],
  ];
  it.each(table)('%s', (_name, stMode, go) => {
    expect(goFileMode(stMode)).toBe(go);
    expect(goFileMode(BigInt(stMode))).toBe(go);
    expect(goFileMode(stMode)).toBeGreaterThanOrEqual(0); // unsigned, even with bit 31
  });

  it('the named bits are Go’s', () => {
    expect(GoFileMode.Dir).toBe(2 ** 31);
    expect(GoFileMode.Symlink).toBe(2 ** 27);
    expect(GoFileMode.Setuid).toBe(2 ** 23);
    expect(GoFileMode.Setgid).toBe(2 ** 22);
    expect(GoFileMode.Sticky).toBe(2 ** 20);
    const type =
      GoFileMode.Dir |
      GoFileMode.Symlink |
      GoFileMode.NamedPipe |
      GoFileMode.Socket |
      GoFileMode.Device |
      GoFileMode.CharDevice |
      GoFileMode.Irregular;
    expect(type >>> 0).toBe(GoFileMode.Type);
  });

  it('posixModeFromGo is the way back for permissions and the three special bits', () => {
    expect(posixModeFromGo(0x80d0_01ff)).toBe(0o7777);
    expect(posixModeFromGo(0x0800_01ff)).toBe(0o777);
    expect(posixModeFromGo(0o640)).toBe(0o640);
  });
});

describe('hostOpenFlags: Linux O_* → this host', () => {
  const L = LinuxOpenFlag;
  const C = constants;
  const table: [string, number, number | undefined][] = [
    ['O_RDONLY', 0, C.O_RDONLY],
    ['O_WRONLY', 1, C.O_WRONLY],
    ['O_RDWR', 2, C.O_RDWR],
    ['access mode 3', 3, undefined],
    ['Go create|rdwr|excl (0xc2)', 0xc2, C.O_CREAT | C.O_RDWR | C.O_EXCL],
    ['Go create|wronly|trunc (0x241)', 0x241, C.O_CREAT | C.O_WRONLY | C.O_TRUNC],
    ['Go append|wronly (0x401)', 0x401, C.O_APPEND | C.O_WRONLY],
    ['O_SYNC (0x101000)', L.O_SYNC | L.O_WRONLY, C.O_SYNC | C.O_WRONLY],
    ['O_DSYNC', L.O_DSYNC, C.O_DSYNC],
    ['O_DIRECTORY|O_NOFOLLOW', L.O_DIRECTORY | L.O_NOFOLLOW, C.O_DIRECTORY | C.O_NOFOLLOW],
    ['O_NONBLOCK|O_NOCTTY', L.O_NONBLOCK | L.O_NOCTTY, C.O_NONBLOCK | C.O_NOCTTY],
    ['O_CLOEXEC and O_LARGEFILE are ignored', L.O_CLOEXEC | L.O_LARGEFILE, C.O_RDONLY],
    ['an unknown bit', 0x4000_0000, undefined],
    ['O_DIRECT (not translated)', 0o40000, undefined],
  ];
  it.each(table)('%s', (_name, linux, host) => {
    expect(hostOpenFlags(linux)).toBe(host);
  });
});

describe('errno: names, Linux numbers, Go texts', () => {
  const table: [string, number, string][] = [
    ['ENOENT', 2, 'no such file or directory'],
    ['EIO', 5, 'input/output error'],
    ['EBADF', 9, 'bad file descriptor'],
    ['EACCES', 13, 'permission denied'],
    ['EEXIST', 17, 'file exists'],
    ['ENOTDIR', 20, 'not a directory'],
    ['EISDIR', 21, 'is a directory'],
    ['EINVAL', 22, 'invalid argument'],
    ['ENOSPC', 28, 'no space left on device'],
    ['ENOSYS', 38, 'function not implemented'],
    ['ENOTEMPTY', 39, 'directory not empty'],
    ['ELOOP', 40, 'too many levels of symbolic links'],
    ['EOPNOTSUPP', 95, 'operation not supported'],
  ];
  it.each(table)('%s is %d', (name, errno, text) => {
    expect(linuxErrno(name)).toBe(errno);
    expect(errnoName(errno)).toBe(name);
    expect(errnoText(errno)).toBe(text);
    expect(errnoOf(Object.assign(new Error('x'), { code: name }))).toBe(errno);
  });

  it('Errno constants agree with the table', () => {
    for (const [name, errno] of Object.entries(Errno)) expect(linuxErrno(name)).toBe(errno);
  });

  it('Linux numbers, not the host’s: Darwin’s names map the same, aliases fold', () => {
    expect(linuxErrno('ENOTSUP')).toBe(95);
    expect(linuxErrno('EWOULDBLOCK')).toBe(11);
    expect(linuxErrno('ENOSYS')).toBe(38); // 78 on Darwin
    expect(linuxErrno('ENOTEMPTY')).toBe(39); // 66 on Darwin
  });

  it('errnoOf: Node argument errors are EINVAL, anything without a known code EIO', () => {
    const withCode = (code: unknown) => Object.assign(new Error('x'), { code });
    expect(errnoOf(withCode('ERR_INVALID_ARG_VALUE'))).toBe(22);
    expect(errnoOf(withCode('ERR_INVALID_ARG_TYPE'))).toBe(22);
    expect(errnoOf(withCode('ERR_OUT_OF_RANGE'))).toBe(22);
    expect(errnoOf(withCode('EWHATEVER'))).toBe(5);
    expect(errnoOf(withCode(17))).toBe(5);
    expect(errnoOf(new Error('plain'))).toBe(5);
    expect(errnoOf(undefined)).toBe(5);
    expect(errnoText(9999)).toBe('errno 9999');
    expect(errnoName(9999)).toBeUndefined();
  });
});

describe('goBase: the name Stat and Fstat report', () => {
  it.each([
    ['/a/b/c.txt', 'c.txt'],
    ['/a/b/', 'b'],
    ['rel', 'rel'],
    ['/', '/'],
    ['//', '/'],
    ['', ''],
  ])('%j → %j', (path, base) => {
    expect(goBase(path)).toBe(base);
  });
});
