// The README's file-op example is examples/files.ts byte for byte, and does what it says
// against a real picket-agent child.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { upload } from '../examples/files.js';
import { AGENT_VIA } from './mux-helpers.js';

describe('README file-op example', () => {
  it('is examples/files.ts, byte for byte', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = /<!-- file: examples\/files\.ts -->\n```ts\n([\s\S]*?)```\n/.exec(readme);
    expect(block?.[1]).toBe(readFileSync(new URL('../examples/files.ts', import.meta.url), 'utf8'));
  });

  it('uploads through a picket-agent child and lists the directory', async () => {
    const root = mkdtempSync(join(tmpdir(), 'picket-fileops-readme-'));
    try {
      const data = Buffer.alloc(200 * 1024, 'x');
      const dir = join(root, 'out', 'sub');
      const listing = await upload(AGENT_VIA, dir, 'data.bin', data);
      expect(readFileSync(join(dir, 'data.bin'))).toEqual(data);
      expect(statSync(join(dir, 'data.bin')).mode & 0o777).toBe(0o640);
      expect(listing).toEqual([['data.bin', false]]);
      await expect(upload(AGENT_VIA, join(dir, 'data.bin'), 'x', data)).rejects.toThrow(
        `upload to ${join(dir, 'data.bin')} failed: ENOTDIR`,
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
