// FileOpService directly (and through the frame codec), plus what only a direct test can see:
// concurrent close vs read, closeAll, the read limit.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  decodeFrame,
  encodeFrame,
  FileOp,
  type FileOpReq,
  type FileOpResp,
  FrameType,
} from '../src/frames.js';
import { FileOpService } from '../src/index.js';
import { defineFileOpConformance } from './fileops-cases.js';

describe('FileOpService, called directly', () => {
  defineFileOpConformance(async () => {
    const service = new FileOpService();
    return {
      call: (req) => service.handle({ id: 0, ...req }),
      cwd: process.cwd(),
      close: () => service.closeAll(),
    };
  });
});

describe('FileOpService, every request and reply through the frame codec', () => {
  defineFileOpConformance(async () => {
    const service = new FileOpService();
    let id = 0;
    return {
      async call(req) {
        const sent = decodeFrame(encodeFrame({ t: FrameType.FileOp, fop: { id: ++id, ...req } }));
        if (sent.t !== FrameType.FileOp || !('fop' in sent) || !sent.fop) throw new Error('no fop');
        const resp = await service.handle(sent.fop as FileOpReq);
        const back = decodeFrame(encodeFrame({ t: FrameType.FileResp, frp: resp }));
        const frp = (back as { frp?: FileOpResp }).frp;
        expect(frp?.id).toBe(id);
        return frp as FileOpResp;
      },
      cwd: process.cwd(),
      close: () => service.closeAll(),
    };
  });
});

describe('FileOpService concurrency and limits', () => {
  let root: string;
  let service: FileOpService;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'picket-fileops-'));
    service = new FileOpService();
  });
  afterEach(async () => {
    await service.closeAll();
    rmSync(root, { recursive: true, force: true });
  });

  const call = (req: Omit<FileOpReq, 'id'>) => service.handle({ id: 0, ...req });

  it('Close racing 50 reads on the same handle: every read answers data or EBADF, none crashes', async () => {
    const path = join(root, 'big');
    writeFileSync(path, Buffer.alloc(256 * 1024, 7));
    const { h } = await call({ op: FileOp.Open, p: path });
    const reads = Array.from({ length: 50 }, (_, i) =>
      call({ op: FileOp.ReadAt, h, of: i * 4096, sz: 8192 }),
    );
    const closed = call({ op: FileOp.Close, h });
    const answers = await Promise.all([...reads, closed]);
    for (const r of answers.slice(0, 50)) {
      if (r.er) expect(r.er).toBe(9);
      else expect(r.n).toBe(8192);
    }
    expect(answers[50]?.er ?? 0).toBe(0);
    expect((await call({ op: FileOp.ReadAt, h, sz: 1 })).er).toBe(9);
    expect(service.openHandles).toBe(0);
  });

  it('50 concurrent opens get 50 distinct handles, each reading its own file', async () => {
    const paths = Array.from({ length: 50 }, (_, i) => join(root, `f${i}`));
    paths.forEach((p, i) => {
      writeFileSync(p, `file ${i}`);
    });
    const opened = await Promise.all(paths.map((p) => call({ op: FileOp.Open, p })));
    expect(new Set(opened.map((r) => r.h)).size).toBe(50);
    const reads = await Promise.all(
      opened.map(({ h }) => call({ op: FileOp.ReadAt, h, of: 0, sz: 64 })),
    );
    reads.forEach((r, i) => {
      expect(Buffer.from(r.d ?? []).toString()).toBe(`file ${i}`);
    });
  });

  it('closeAll closes every handle; later calls on them answer EBADF', async () => {
    const path = join(root, 'x');
    writeFileSync(path, 'x');
    const a = await call({ op: FileOp.Open, p: path });
    const b = await call({ op: FileOp.Create, p: join(root, 'y') });
    expect(service.openHandles).toBe(2);
    await service.closeAll();
    expect(service.openHandles).toBe(0);
    expect((await call({ op: FileOp.ReadAt, h: a.h, sz: 1 })).er).toBe(9);
    expect((await call({ op: FileOp.Fstat, h: b.h })).er).toBe(9);
  });

  it('a ReadAt above maxReadBytes answers short without eof; the caller reads on', async () => {
    const small = new FileOpService({ maxReadBytes: 4 });
    const path = join(root, 'r');
    writeFileSync(path, 'abcdefg');
    const { h } = await small.handle({ id: 1, op: FileOp.Open, p: path });
    const first = await small.handle({ id: 2, op: FileOp.ReadAt, h, of: 0, sz: 100 });
    expect([Buffer.from(first.d ?? []).toString(), first.eof ?? false]).toEqual(['abcd', false]);
    const rest = await small.handle({ id: 3, op: FileOp.ReadAt, h, of: 4, sz: 100 });
    expect([Buffer.from(rest.d ?? []).toString(), rest.eof]).toEqual(['efg', true]);
    expect(rest.id).toBe(3);
    await small.closeAll();
    expect(() => new FileOpService({ maxReadBytes: 0 })).toThrow(/maxReadBytes/);
  });

  it('an offset past 2^53 is EINVAL, not rounded', async () => {
    const path = join(root, 'o');
    writeFileSync(path, 'o');
    const { h } = await call({ op: FileOp.OpenFile, p: path, fl: 2 });
    const r = await call({ op: FileOp.WriteAt, h, of: 2n ** 60n, d: Buffer.from('z') });
    expect(r.er).toBe(22);
  });
});
