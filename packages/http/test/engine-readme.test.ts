/** The README's engine example is examples/engine.ts (compiled by typecheck), and it runs. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DenylistAgent } from '@picket/agents';
import { createPool } from '@picket/transport';
import { UdsAgentServerV2 } from '@picket/uds';
import { describe, expect, it, vi } from 'vitest';
import { guardedServer } from '../examples/engine.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README engine example', () => {
  it('is examples/engine.ts, byte for byte', () => {
    const block = /<!-- file: examples\/engine\.ts -->\n```ts\n([\s\S]*?)```\n/.exec(readme);
    expect(block?.[1]).toBe(
      readFileSync(new URL('../examples/engine.ts', import.meta.url), 'utf8'),
    );
  });

  it('answers through the agent: allowed, blocked, and a 400 for an ambiguous path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'picket-http-engine-readme-'));
    const socket = join(dir, 'waf.sock');
    const agent = new UdsAgentServerV2(socket, new DenylistAgent({ blockedPaths: ['/admin'] }));
    await agent.listen();
    const pool = createPool();
    await pool.addAgent('waf', socket);
    const lines: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((m: string) => void lines.push(m));
    const server = guardedServer(pool);
    try {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const ok = await fetch(`${base}/shop//cart`);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toBe('hello from /shop/cart\n');
      const blocked = await fetch(`${base}/admin/users`);
      expect(blocked.status).toBe(403);
      await blocked.arrayBuffer();
      const ambiguous = await fetch(`${base}/a%2Fb`);
      expect(ambiguous.status).toBe(400);
      await ambiguous.arrayBuffer();
      for (let i = 0; i < 200 && lines.length < 3; i++) await new Promise((r) => setTimeout(r, 25));
      expect(lines).toEqual([
        'GET /shop/cart 200 allow',
        'GET /admin/users 403 block',
        'GET /a%2Fb 400 bad_request',
      ]);
    } finally {
      log.mockRestore();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await pool.close({ drainTimeoutMs: 0 });
      await agent.close({ drainTimeoutMs: 0 });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
