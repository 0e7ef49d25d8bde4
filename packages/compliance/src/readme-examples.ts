/**
 * README code blocks marked `<!-- file: examples/… -->` must be those files (which the
 * package's typecheck compiles), byte for byte, so a README example can never drift.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

/** Declares the test; `testFileUrl` is the calling test's `import.meta.url` (a file in `test/`). */
export function readmeExamplesMatchFiles(testFileUrl: string): void {
  it('README examples match their files in examples/', () => {
    const readme = readFileSync(new URL('../README.md', testFileUrl), 'utf8');
    const blocks = [...readme.matchAll(/<!-- file: (\S+) -->\n```ts\n([\s\S]*?)```\n/g)];
    expect(blocks.length).toBeGreaterThan(0);
    for (const [, path, text] of blocks) {
      expect(text, `${path} differs from its copy in README.md`).toBe(
        readFileSync(new URL(`../${path}`, testFileUrl), 'utf8'),
      );
    }
  });
}
