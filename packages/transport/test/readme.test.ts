/** README blocks marked `<!-- file: examples/… -->` are those files (compiled by typecheck), byte for byte. */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

it('README examples match their files in examples/', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const blocks = [...readme.matchAll(/<!-- file: (\S+) -->\n```ts\n([\s\S]*?)```\n/g)];
  expect(blocks.length).toBeGreaterThan(0);
  for (const [, path, text] of blocks) {
    expect(text, `${path} differs from its copy in README.md`).toBe(
      readFileSync(new URL(`../${path}`, import.meta.url), 'utf8'),
    );
  }
});
