import * as net from 'node:net';
import { type AgentProtocolError, ErrorCode } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { connectV1 } from '../src/index.js';
import { cleanupDirs, headersEvent, socketPath } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  cleanupDirs();
});

/** An agent that accepts connections and reads, but never answers. */
async function silentAgent(path: string): Promise<void> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.resume();
  });
  await new Promise<void>((r) => server.listen(path, r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
}

describe('v1: whether a failed call may have reached the agent', () => {
  it('closing fails the call on the wire with sent true and the queued one with sent false', async () => {
    const path = socketPath();
    await silentAgent(path);
    const t = await connectV1('slow', path, { connections: 1 });
    const onWire = t.sendRequestHeaders(headersEvent('a'), { timeoutMs: 10_000 }).catch((e) => e);
    const queued = t.sendRequestHeaders(headersEvent('b'), { timeoutMs: 10_000 }).catch((e) => e);
    await t.close();
    const [wire, waiting] = (await Promise.all([onWire, queued])) as AgentProtocolError[];
    expect(wire?.code).toBe(ErrorCode.ConnectionClosed);
    expect(wire?.sent).toBe(true);
    expect(waiting?.code).toBe(ErrorCode.ConnectionClosed);
    expect(waiting?.sent).toBe(false);
    expect(waiting?.message).toContain('not sent');
  });
});
