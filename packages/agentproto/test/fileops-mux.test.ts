// The file-op conformance table end to end: through two Muxes over a Unix socket pair, and
// through a real picket-agent child process in file-op mode (the first frame is a FileOp).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileOp, type FileOpReq } from '../src/frames.js';
import { FileOpService, LinuxOpenFlag } from '../src/index.js';
import { openFileSession } from '../src/local.js';
import { defineFileOpConformance, type FileOpDriver, muxPair } from './fileops-cases.js';
import { AGENT_VIA } from './mux-helpers.js';

describe('file ops through two muxes over a socket pair', () => {
  defineFileOpConformance(async (): Promise<FileOpDriver> => {
    const pair = await muxPair(new FileOpService());
    return {
      call: (req) => pair.client.fileOp(req),
      cwd: process.cwd(),
      close: () => pair.close(),
    };
  });
});

describe('file ops through a picket-agent child in file-op mode', () => {
  defineFileOpConformance(async (): Promise<FileOpDriver> => {
    const session = await openFileSession({ via: AGENT_VIA });
    return {
      call: (req) => session.mux.fileOp(req),
      cwd: process.cwd(), // the child inherits it
      close: () => session.close(),
    };
  });
});

// As root nothing is EACCES; an agent dropped to `nobody` sees the permission errors for real.
const canDrop = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv');

describe.skipIf(!canDrop)('file ops through an unprivileged picket-agent child', () => {
  let root: string;
  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('EACCES and EPERM come from the syscalls, as Linux numbers', async () => {
    root = mkdtempSync(join(tmpdir(), 'picket-fileops-'));
    chmodSync(root, 0o755);
    const locked = join(root, 'locked');
    mkdirSync(locked, { mode: 0o700 });
    writeFileSync(join(locked, 'secret'), 's');
    const readOnly = join(root, 'read-only');
    writeFileSync(readOnly, 'r', { mode: 0o644 });

    const session = await openFileSession({
      via: ['/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...AGENT_VIA],
    });
    try {
      const call = (req: Omit<FileOpReq, 'id'>) => session.mux.fileOp(req);
      const open = await call({ op: FileOp.Open, p: join(locked, 'secret') });
      expect([open.er, open.em]).toEqual([13, `open ${join(locked, 'secret')}: permission denied`]);
      expect((await call({ op: FileOp.Stat, p: join(locked, 'secret') })).er).toBe(13);
      expect((await call({ op: FileOp.ReadDir, p: locked })).er).toBe(13);
      const write = await call({ op: FileOp.OpenFile, p: readOnly, fl: LinuxOpenFlag.O_WRONLY });
      expect(write.er).toBe(13);
      expect((await call({ op: FileOp.Remove, p: readOnly })).er).toBe(13); // root's directory
      expect((await call({ op: FileOp.Mkdir, p: join(root, 'new') })).er).toBe(13);
      const chown = await call({ op: FileOp.Chown, p: readOnly, uid: 65534, gid: 65534 });
      expect([chown.er, chown.em]).toEqual([1, `chown ${readOnly}: operation not permitted`]);
      expect((await call({ op: FileOp.Stat, p: readOnly })).er ?? 0).toBe(0);
    } finally {
      await session.close();
    }
  });
});
