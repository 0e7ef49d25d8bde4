// The README's exec example is examples/exec.ts byte for byte, and does what it says against a
// real picket-agent child.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runScript, which } from '../examples/exec.js';
import { AGENT_VIA } from './mux-helpers.js';

describe('README exec example', () => {
  it('is examples/exec.ts, byte for byte', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = /<!-- file: examples\/exec\.ts -->\n```ts\n([\s\S]*?)```\n/.exec(readme);
    expect(block?.[1]).toBe(readFileSync(new URL('../examples/exec.ts', import.meta.url), 'utf8'));
  });

  it('runs a script with the env allow-list applied, and finds programs', async () => {
    const r = await runScript(AGENT_VIA, 'echo "$CI/$SECRET"; exit 3', [
      `PATH=${process.env.PATH}`,
      'CI=yes',
      'SECRET=no',
    ]);
    expect(r).toEqual({ code: 3, output: 'yes/\n', reason: undefined });
    // `sh` is looked up in the agent's PATH, so it runs with an empty environment too
    const bare = await runScript(AGENT_VIA, 'echo "[$CI][$SECRET]"', ['SECRET=no']);
    expect(bare).toEqual({ code: 0, output: '[][]\n', reason: undefined });
    const found = await which(AGENT_VIA, ['sh', 'no-such-program-here']);
    expect([...found.keys()]).toEqual(['sh']);
  });
});
