/**
 * The fuzz harness itself: seeded generators replay exactly, the frame mutators produce
 * what they claim, and a short run of each fuzz target (a few hundred frames) passes —
 * so `pnpm test` notices when a package change breaks the harness, not only `pnpm fuzz`.
 */
import { FrameDecoder } from '@picket/framing';
import * as grpcTransport from '@picket/grpc/internal';
import { describe, expect, it } from 'vitest';
import { mutateV2Frame, mutateValue, v2Frame } from '../src/fuzz/mutate.js';
import type { FuzzTarget } from '../src/fuzz/target.js';
import { GrpcServerTarget } from '../src/fuzz/targets/grpc-server.js';
import { ReverseTarget } from '../src/fuzz/targets/reverse.js';
import { UdsClientTarget } from '../src/fuzz/targets/uds-client.js';
import { UdsServerTarget } from '../src/fuzz/targets/uds-server.js';
import { V1ServerTarget } from '../src/fuzz/targets/v1-server.js';
import { golden } from '../src/fuzz/templates.js';
import { Rng } from '../src/lib/prng.js';
import { tempDir } from './helpers.js';

describe('seeded generation', () => {
  it('the same seed gives the same stream; sub-streams differ', () => {
    const a = Rng.derive(42, 'uds-server', 7);
    const b = Rng.derive(42, 'uds-server', 7);
    const c = Rng.derive(42, 'uds-server', 8);
    const seqA = Array.from({ length: 20 }, () => a.u32());
    expect(Array.from({ length: 20 }, () => b.u32())).toEqual(seqA);
    expect(Array.from({ length: 20 }, () => c.u32())).not.toEqual(seqA);
  });

  it('mutations replay byte for byte from the seed', () => {
    const base = JSON.parse(golden('V3').subarray(5).toString()) as unknown;
    const once = (seed: number) => JSON.stringify(mutateValue(new Rng(seed), base));
    expect(once(5)).toBe(once(5));
    expect(new Set([1, 2, 3, 4, 5, 6].map(once)).size).toBeGreaterThan(1);
  });

  it('frame mutations are what they say: complete frames decode, fatal ones are refused', () => {
    const rng = new Rng(9);
    const payload = golden('V3').subarray(5);
    let complete = 0;
    let fatal = 0;
    for (let i = 0; i < 500; i++) {
      const f = mutateV2Frame(rng, 0x10, payload, 0.5);
      const decoder = new FrameDecoder();
      if (f.kind === 'complete') {
        expect(decoder.push(f.bytes)).toHaveLength(1);
        complete++;
      } else if (f.kind === 'fatal') {
        expect(() => decoder.push(f.bytes)).toThrow();
        fatal++;
      }
    }
    expect(complete).toBeGreaterThan(100);
    expect(fatal).toBeGreaterThan(20);
    expect(v2Frame(0x41, Buffer.from('{}')).subarray(0, 5)).toEqual(
      Buffer.from([0, 0, 0, 3, 0x41]),
    );
  });
});

/** Runs `frames` worth of fuzz connections against `target`, two at a time. */
async function shortRun(target: FuzzTarget, frames: number): Promise<string[]> {
  const failures: string[] = [];
  await target.start({ seed: 1234, dir: tempDir(), verbose: false });
  let sent = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (sent < frames) {
      const index = next++;
      try {
        sent += (await target.connection(Rng.derive(1234, target.name, index), index)).frames;
      } catch (err) {
        failures.push(`#${index}: ${(err as Error).message}`);
        sent++;
      }
    }
  };
  await Promise.all([worker(), worker()]);
  const report = await target.finish();
  failures.push(...report.failures);
  if (report.good.failed > 0) failures.push(...report.good.errors);
  expect(report.good.ok).toBeGreaterThan(0);
  return failures;
}

describe('a short fuzz run per target passes', () => {
  it.each<[string, () => FuzzTarget]>([
    ['uds-server', () => new UdsServerTarget()],
    ['uds-client', () => new UdsClientTarget()],
    ['reverse', () => new ReverseTarget()],
    ['v1-server', () => new V1ServerTarget()],
  ])('%s', async (_name, make) => {
    expect(await shortRun(make(), 400)).toEqual([]);
  });

  // Until @picket/grpc ends streams over undecodable bytes itself (UndecodableMessage), a
  // junk stream gets no logged reason and may hang (grpc-js 1.14): `pnpm fuzz` reports it.
  it.skipIf(!('UndecodableMessage' in grpcTransport))('grpc-server', async () => {
    expect(await shortRun(new GrpcServerTarget(), 400)).toEqual([]);
  });
});
