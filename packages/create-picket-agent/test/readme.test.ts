/** The README's example is examples/create.ts (compiled by typecheck), byte for byte. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README example', () => {
  it('each <!-- file: … --> block is that file, byte for byte', () => {
    const blocks = [...readme.matchAll(/<!-- file: (\S+) -->\n```ts\n([\s\S]*?)```\n/g)];
    expect(blocks.map((m) => m[1])).toEqual(['examples/create.ts']);
    for (const [, path, text] of blocks) {
      expect(text, `${path} differs from its copy in README.md`).toBe(
        readFileSync(new URL(`../${path}`, import.meta.url), 'utf8'),
      );
    }
  });
});
