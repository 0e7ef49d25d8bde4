/** The README's example is examples/readme.ts (compiled by typecheck), and does what it says. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runAgent } from '../examples/readme.js';
import { alive, collectLogs, UDS_SERVER } from './helpers.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README example', () => {
  it('each <!-- file: … --> block is that file, byte for byte', () => {
    const blocks = [...readme.matchAll(/<!-- file: (\S+) -->\n```ts\n([\s\S]*?)```\n/g)];
    expect(blocks.map((m) => m[1])).toEqual(['examples/readme.ts']);
    for (const [, path, text] of blocks) {
      expect(text, `${path} differs from its copy in README.md`).toBe(
        readFileSync(new URL(`../${path}`, import.meta.url), 'utf8'),
      );
    }
  });

  it('runAgent starts a socket agent, ready when connectable, and the owner signal stops it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sup-readme-'));
    const socket = join(dir, 'agent.sock');
    const owner = new AbortController();
    const logger = collectLogs();
    try {
      const agent = await runAgent(
        [process.execPath, UDS_SERVER, socket, '200'],
        socket,
        owner.signal,
        logger,
      );
      expect(agent.state).toBe('ready');
      await new Promise<void>((resolve, reject) => {
        connect(socket)
          .on('connect', function (this: import('node:net').Socket) {
            this.destroy();
            resolve();
          })
          .on('error', reject);
      });
      const pid = agent.child?.pid ?? 0;
      const stopped = new Promise<void>((r) => agent.on('state', (s) => s === 'stopped' && r()));
      owner.abort();
      await stopped;
      expect(alive(pid)).toBe(false);
      expect(logger.text('info')).toContain('denylist: starting → ready');
      expect(logger.text('info')).toContain('denylist: stopping → stopped');
    } finally {
      owner.abort();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
