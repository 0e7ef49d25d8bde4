// An independent check of byte-exactness: random frames and records encoded by picket are decoded
// by fxamacker/cbor (the library MachineProxy uses) into structs shaped as the spec's tables say
// (test/go-crosscheck/main.go), re-encoded with its CanonicalEncOptions, and must come back
// byte for byte. Needs a Go toolchain and the library's source, e.g. on Debian:
//   apt-get install golang-go golang-github-fxamacker-cbor-dev
// and is skipped without them (the spec's byte vectors in frames.test.ts always run).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { CborSequenceDecoder } from '../src/cbor.js';
import { encodeFrame, encodeRecord } from '../src/frames.js';
import { frame, record } from './arbitraries.js';

const GOCODE = process.env.PICKET_GOCODE ?? '/usr/share/gocode/src';
const LIB = join(GOCODE, 'github.com/fxamacker/cbor');

function hasGo(): boolean {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
    return existsSync(join(LIB, 'encode.go'));
  } catch {
    return false;
  }
}

const available = hasGo();
let work: string | undefined;
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Builds the checker in a private GOPATH whose github.com/fxamacker/cbor/v2 is the installed source. */
function build(): string {
  work = mkdtempSync(join(tmpdir(), 'picket-gocheck-'));
  const src = join(work, 'src');
  mkdirSync(join(src, 'github.com/fxamacker/cbor'), { recursive: true });
  mkdirSync(join(src, 'github.com/x448'), { recursive: true });
  symlinkSync(LIB, join(src, 'github.com/fxamacker/cbor/v2'));
  symlinkSync(join(GOCODE, 'github.com/x448/float16'), join(src, 'github.com/x448/float16'));
  const bin = join(work, 'gocheck');
  execFileSync('go', ['build', '-o', bin, '.'], {
    cwd: fileURLToPath(new URL('./go-crosscheck/', import.meta.url)),
    env: {
      ...process.env,
      GO111MODULE: 'off',
      GOPATH: work,
      GOFLAGS: '',
      GOCACHE: join(work, 'cache'),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return bin;
}

/** Items through Go: decode into the structs, encode canonically. */
function throughGo(bin: string, kind: 'frame' | 'record', items: Uint8Array[]): Uint8Array[] {
  const out = execFileSync(bin, [kind], { input: Buffer.concat(items), maxBuffer: 1 << 28 });
  const d = new CborSequenceDecoder({ maxItemSize: 1 << 24 });
  const back = d.pushRaw(out);
  d.end();
  return back;
}

describe.skipIf(!available)('byte-exact with fxamacker/cbor canonical mode (Go)', () => {
  const bin = available ? build() : '';
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

  it('3000 random frames of every type come back byte for byte', () => {
    const items = fc.sample(frame, { numRuns: 3000 }).map(encodeFrame);
    const back = throughGo(bin, 'frame', items);
    expect(back.map(hex)).toEqual(items.map(hex));
  });

  it('3000 random records come back byte for byte', () => {
    const items = fc.sample(record, { numRuns: 3000 }).map(encodeRecord);
    const back = throughGo(bin, 'record', items);
    expect(back.map(hex)).toEqual(items.map(hex));
  });
});
