/**
 * The README's Express and Hono examples are examples/express.ts and examples/hono.ts
 * (compiled by typecheck), byte for byte, and they run: each is started as its own
 * process in front of a real denylist agent on a Unix socket.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DenylistAgent } from '@picket/agents';
import { UdsAgentServerV2 } from '@picket/uds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send } from './adapters-scenarios.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const EXAMPLES = ['examples/express.ts', 'examples/hono.ts'];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe('README adapter examples', () => {
  it('each adapter example in README.md is its file, byte for byte', () => {
    const blocks = [...readme.matchAll(/<!-- file: (\S+) -->\n```ts\n([\s\S]*?)```\n/g)].filter(
      (m) => EXAMPLES.includes(m[1] as string),
    );
    expect(blocks.map((m) => m[1])).toEqual(EXAMPLES);
    for (const [, path, text] of blocks) {
      expect(text, `${path} differs from its copy in README.md`).toBe(
        readFileSync(join(root, path as string), 'utf8'),
      );
    }
  });

  describe('run in front of a real agent', () => {
    let dir: string;
    let socket: string;
    let agent: UdsAgentServerV2;
    const children: ChildProcess[] = [];

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'picket-http-readme-'));
      socket = join(dir, 'waf.sock');
      agent = new UdsAgentServerV2(socket, new DenylistAgent({ blockedPaths: ['/admin'] }));
      await agent.listen();
    });
    afterAll(async () => {
      for (const c of children) c.kill();
      await agent?.close({ drainTimeoutMs: 0 });
      rmSync(dir, { recursive: true, force: true });
    });

    for (const [example, greeting] of [
      ['examples/express.ts', 'hello from express\n'],
      ['examples/hono.ts', 'hello from hono\n'],
    ] as const) {
      it(`${example} answers, and the agent blocks /admin`, async () => {
        const port = await freePort();
        const child = spawn(process.execPath, ['--import', 'tsx', example], {
          cwd: root,
          env: { ...process.env, WAF_SOCKET: socket, PORT: String(port) },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        children.push(child);
        let stderr = '';
        child.stderr?.on('data', (c: Buffer) => {
          stderr += c.toString('utf8');
        });
        const base = `http://127.0.0.1:${port}`;
        let hello: Awaited<ReturnType<typeof send>> | undefined;
        for (let i = 0; i < 200 && !hello; i++) {
          if (child.exitCode !== null) throw new Error(`${example} exited: ${stderr}`);
          hello = await send(base, '/').catch(async () => {
            await new Promise((r) => setTimeout(r, 100));
            return undefined;
          });
        }
        expect(hello?.status, stderr).toBe(200);
        expect(hello?.body).toBe(greeting);
        const admin = await send(base, '/admin/users');
        expect(admin.status).toBe(403);
        expect(admin.body).toBe('Forbidden path');
        child.kill();
      });
    }
  });
});
