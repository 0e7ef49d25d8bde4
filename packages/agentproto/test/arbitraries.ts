/** fast-check arbitraries of frames and records as decoding returns them (shared by the property tests). */
import fc from 'fast-check';
import type {
  DecodedFrame,
  FileOpReq,
  FileOpResp,
  FileStat,
  Int64,
  RecordEntry,
} from '../src/frames.js';
import { FrameType } from '../src/frames.js';

const MIN64 = -(2n ** 63n);
const MAX64 = 2n ** 63n - 1n;
const toInt64 = (n: bigint): Int64 =>
  Number.isSafeInteger(Number(n)) && BigInt(Number(n)) === n ? Number(n) : n;
const i64 = fc.bigInt({ min: MIN64, max: MAX64 }).map(toInt64);
const i64nz = fc
  .bigInt({ min: MIN64, max: MAX64 })
  .filter((n) => n !== 0n)
  .map(toInt64);
const u64nz = fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }).map(toInt64);
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u32nz = fc.integer({ min: 1, max: 0xffffffff });
const int53nz = fc.integer({ min: -(2 ** 40), max: 2 ** 40 }).filter((n) => n !== 0);
const text = fc.string({ maxLength: 12 });
const textNz = fc.string({ minLength: 1, maxLength: 12 });
const buf = fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b));
const bufNz = fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => Buffer.from(b));
const list = fc.option(fc.array(text, { maxLength: 4 }), { nil: null });
const listNz = fc.array(text, { minLength: 1, maxLength: 4 });

const stat: fc.Arbitrary<FileStat> = fc.record(
  {
    n: text,
    s: i64,
    m: u32,
    t: i64nz,
    at: i64nz,
    ct: i64nz,
    uid: u32nz,
    gid: u32nz,
    nl: u32nz,
    rd: u32nz,
    bl: u64nz,
    bs: u32nz,
    ino: u64nz,
    d: fc.constant(true),
  },
  { requiredKeys: ['n', 's', 'm'] },
);

const req: fc.Arbitrary<FileOpReq> = fc.record(
  {
    id: u32,
    op: fc.integer({ min: 0, max: 255 }),
    p: textNz,
    np: textNz,
    fl: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).filter((n) => n !== 0),
    mo: u32nz,
    uid: int53nz,
    gid: int53nz,
    h: u32nz,
    of: i64nz,
    sz: i64nz,
    at: i64nz,
    mt: i64nz,
    d: bufNz,
  },
  { requiredKeys: ['id', 'op'] },
);

const resp: fc.Arbitrary<FileOpResp> = fc.record(
  {
    id: u32,
    er: u32nz,
    em: textNz,
    h: u32nz,
    d: bufNz,
    n: i64nz,
    eof: fc.constant(true),
    p: textNz,
    st: stat,
    sf: fc.record(
      { b: u64nz, bf: u64nz, ba: u64nz, f: u64nz, ff: u64nz, bs: u32nz, fr: u32nz, nl: u32nz },
      { requiredKeys: [] },
    ),
    en: fc.array(
      stat.map((st) => ({ st })),
      { minLength: 1, maxLength: 3 },
    ),
  },
  { requiredKeys: ['id'] },
);

/** Frames as decoding returns them: optional fields absent or non-zero, scalars always set. */
export const frame: fc.Arbitrary<DecodedFrame> = fc.oneof(
  fc.record(
    {
      t: fc.constant(FrameType.Exec),
      x: fc.record(
        {
          path: text,
          argv: list,
          env: list,
          cwd: text,
          fds: fc.array(u32, { minLength: 1, maxLength: 3 }),
        },
        { requiredKeys: ['path', 'argv', 'env', 'cwd'] },
      ),
    },
    { requiredKeys: ['t'] },
  ),
  fc.record({ t: fc.constant(FrameType.Data), s: u32, d: buf }),
  fc.record({ t: fc.constant(FrameType.EOF), s: u32 }),
  fc.record({ t: fc.constant(FrameType.Signal), sig: fc.integer({ min: -64, max: 64 }) }),
  fc.record(
    { t: fc.constant(FrameType.Exit), c: fc.integer(), e: textNz },
    { requiredKeys: ['t', 'c'] },
  ),
  fc.record({ t: fc.constant(FrameType.Error), e: text }),
  fc.record(
    {
      t: fc.constant(FrameType.Log),
      l: fc.record(
        { lvl: fc.integer({ min: -8, max: 12 }), msg: text, a: listNz },
        { requiredKeys: ['lvl', 'msg'] },
      ),
    },
    { requiredKeys: ['t'] },
  ),
  fc.record(
    { t: fc.constant(FrameType.Config), cfg: fc.record({ env_keep: list, env_remove: list }) },
    { requiredKeys: ['t'] },
  ),
  fc.record(
    { t: fc.constant(FrameType.PathQuery), q: fc.record({ paths: listNz }, { requiredKeys: [] }) },
    { requiredKeys: ['t'] },
  ),
  fc.record(
    {
      t: fc.constant(FrameType.PathInfo),
      i: fc.record({
        entries: fc.option(
          fc.array(
            fc.record(
              { name: text, path: text, mode: u32, size: i64, mtime: i64nz },
              { requiredKeys: ['name', 'path', 'mode', 'size'] },
            ),
            { maxLength: 3 },
          ),
          { nil: null },
        ),
      }),
    },
    { requiredKeys: ['t'] },
  ),
  fc.record({ t: fc.constant(FrameType.FileOp), fop: req }, { requiredKeys: ['t'] }),
  fc.record({ t: fc.constant(FrameType.FileResp), frp: resp }, { requiredKeys: ['t'] }),
  fc.record({ t: fc.integer({ min: 13, max: 255 }), unknown: fc.constant(true as const) }),
) as fc.Arbitrary<DecodedFrame>;

/** Records of every type, payload fields as decoding returns them. */
export const record: fc.Arbitrary<RecordEntry> = fc.oneof(
  fc.record({
    type: fc.constant(1 as const),
    header: fc.record(
      {
        version: text,
        start_time: i64,
        local_user: text,
        local_pid: fc.integer({ min: -5, max: 2 ** 30 }),
        ssh_addr: textNz,
        ssh_user: textNz,
        backend_type: textNz,
        backend_addr: textNz,
        agent_path: text,
      },
      { requiredKeys: ['version', 'start_time', 'local_user', 'local_pid', 'agent_path'] },
    ),
  }),
  fc.record({
    type: fc.constant(2 as const),
    cmd_start: fc.record({
      seq: u32,
      start_time: i64,
      exec: fc.record(
        {
          path: text,
          argv: list,
          env: list,
          cwd: text,
          fds: fc.array(u32, { minLength: 1, maxLength: 3 }),
        },
        { requiredKeys: ['path', 'argv', 'env', 'cwd'] },
      ),
    }),
  }),
  fc.record({
    type: fc.constant(3 as const),
    frame: fc.record({ seq: u32, ts: i64, dir: fc.integer({ min: 0, max: 255 }), frame }),
  }),
  fc.record({
    type: fc.constant(4 as const),
    cmd_end: fc.record({ seq: u32, end_time: i64, exit_code: fc.integer() }),
  }),
  fc.record({
    type: fc.constant(5 as const),
    footer: fc.record({ end_time: i64, command_count: u32 }),
  }),
) as fc.Arbitrary<RecordEntry>;
