import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { handshake } from '../examples/readme.js';
import { FrameDecoder, FramingError } from '../src/index.js';
import { fromHex, header, vectors } from './helpers.js';

// The README example, run against a scripted agent on a real Unix socket.
describe('README example', () => {
  it('is the same code as the README shows', () => {
    const read = (path: string) => readFileSync(new URL(path, import.meta.url), 'utf8');
    expect(read('../README.md')).toContain(`\`\`\`ts\n${read('../examples/readme.ts')}\`\`\``);
  });

  let dir: string;
  let socketPath: string;
  let received: unknown[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'picket-framing-'));
    socketPath = join(dir, 'agent.sock');
    received = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Starts an agent that reads the handshake, then answers with `reply` chunks. */
  async function agent(reply: (socket: Socket) => void) {
    const server = createServer((socket) => {
      socket.on('error', () => {});
      const decoder = new FrameDecoder();
      socket.on('data', (chunk) => {
        for (const frame of decoder.push(chunk)) {
          received.push({
            type: frame.type,
            body: JSON.parse(Buffer.from(frame.payload).toString()),
          });
          reply(socket);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    return { close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
  }

  it('sends the handshake request and returns the reply frame', async () => {
    const v2 = fromHex(vectors.find((vector) => vector.id === 'V2')!.frameHex);
    const server = await agent((socket) => {
      // Dribble the reply so the client reassembles it across reads.
      socket.write(v2.subarray(0, 3));
      socket.write(v2.subarray(3, 100));
      socket.write(v2.subarray(100));
    });
    try {
      const reply = await handshake(socketPath);
      expect(reply.type).toBe(0x02);
      expect(JSON.parse(Buffer.from(reply.payload).toString())).toMatchObject({ success: true });
      expect(received).toEqual([
        {
          type: 0x01,
          body: { supported_versions: [2], proxy_id: 'demo', proxy_version: '1.0', config: null },
        },
      ]);
    } finally {
      await server.close();
    }
  });

  it('rejects with UNKNOWN_TYPE when the agent speaks another dialect', async () => {
    const server = await agent((socket) => socket.write(header(1, 0xf0)));
    try {
      const error = await handshake(socketPath).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(FramingError);
      expect(error).toMatchObject({ code: 'UNKNOWN_TYPE' });
    } finally {
      await server.close();
    }
  });

  it('rejects with TRUNCATED when the agent hangs up mid-frame', async () => {
    const server = await agent((socket) => socket.end(header(10, 0x02)));
    try {
      await expect(handshake(socketPath)).rejects.toMatchObject({ code: 'TRUNCATED' });
    } finally {
      await server.close();
    }
  });

  it('rejects when the agent closes without replying', async () => {
    const server = await agent((socket) => socket.end());
    try {
      await expect(handshake(socketPath)).rejects.toThrow('without replying');
    } finally {
      await server.close();
    }
  });
});
