// The README's recording example is examples/recording.ts byte for byte, and does what it says:
// record against a real picket-agent child, replay without one, a different send fails.

import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordFixture, replayFixture } from '../examples/recording.js';
import { readRecordingFile } from '../src/recording.js';
import { AGENT_VIA } from './mux-helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'picket-rec-readme-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('README recording example', () => {
  it('is examples/recording.ts, byte for byte', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = /<!-- file: examples\/recording\.ts -->\n```ts\n([\s\S]*?)```\n/.exec(readme);
    expect(block?.[1]).toBe(
      readFileSync(new URL('../examples/recording.ts', import.meta.url), 'utf8'),
    );
  });

  it('records against a real agent, replays without one, and catches a changed send', async () => {
    const file = join(dir, 'wc.rec');
    expect(await recordFixture(AGENT_VIA, file, 'a\nb\nc\n')).toBe(3);
    const { records, error } = await readRecordingFile(file);
    expect(error).toBeUndefined();
    expect(records.map((r) => r.type)).toEqual([1, 2, ...records.slice(2, -2).map(() => 3), 4, 5]);
    expect(await replayFixture(file, 'a\nb\nc\n')).toBe(3);
    await expect(replayFixture(file, 'x\ny\n')).rejects.toThrow(
      /expects Data frame .* but the Mux sent Data frame/,
    );
  });
});
