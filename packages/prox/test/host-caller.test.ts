/**
 * The socket pool on its own, against an in-process socket server that answers like a plugin:
 * retiring (what a new ready does), closing, the on_disconnect queue limit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { PluginCaller } from '../src/host/caller.js';
import {
  decodeAuthorizeResult,
  decodeEnvelope,
  encodeAuthorizeResult,
  encodeEnvelope,
  encodeProxFrame,
  encodeRequestInfo,
  ProxFrameReader,
} from '../src/index.js';
import { collectingLogger, until } from './host-helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A plugin socket: answers on_request after `delayMs` with allow; counts connections. */
async function pluginSocket(
  delayMs = 0,
): Promise<{ path: string; server: Server; sockets: Set<Socket> }> {
  const dir = mkdtempSync(join(tmpdir(), 'prox-caller-'));
  const path = join(dir, 'p.sock');
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    const reader = new ProxFrameReader();
    s.on('data', (chunk) => {
      for (const frame of reader.push(chunk)) {
        if (decodeEnvelope(frame).hook !== 1) continue;
        setTimeout(() => s.write(encodeProxFrame(encodeAuthorizeResult({ allow: true }))), delayMs);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  cleanups.push(() => {
    server.close();
    for (const s of sockets) s.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, server, sockets };
}

const request = () => encodeEnvelope(1, encodeRequestInfo({ path: '/x' }));

function caller(path: string, o: Partial<ConstructorParameters<typeof PluginCaller>[0]> = {}) {
  return new PluginCaller({
    socketPath: path,
    name: 'prox plugin "t"',
    logger: collectingLogger(),
    ...o,
  });
}

describe('PluginCaller', () => {
  it('retire(): the running call finishes, then its connection closes; new calls are refused', async () => {
    const p = await pluginSocket(200);
    const c = caller(p.path);
    const running = c.call('on_request', request(), decodeAuthorizeResult);
    await until(() => c.stats().busy === 1);
    c.retire();
    const refused = await c.call('on_request', request(), decodeAuthorizeResult).catch((e) => e);
    expect(refused).toBeInstanceOf(AgentProtocolError);
    expect((refused as AgentProtocolError).code).toBe(ErrorCode.Unavailable);
    expect((refused as Error).message).toContain('replaced by a newer ready');
    await expect(running).resolves.toMatchObject({ allow: true });
    await until(() => p.sockets.size === 0);
    expect(c.stats()).toMatchObject({ open: 0, idle: 0, busy: 0 });
  });

  it('close(): pending and waiting calls fail CONNECTION_CLOSED with the reason', async () => {
    const p = await pluginSocket(10_000);
    const c = caller(p.path, { maxConnections: 1 });
    const a = c.call('on_request', request(), decodeAuthorizeResult).catch((e) => e);
    const b = c.call('on_request', request(), decodeAuthorizeResult).catch((e) => e);
    await until(() => c.stats().busy === 1 && c.stats().waiting === 1);
    c.close('the plugin is gone (test)');
    for (const e of [await a, await b]) {
      expect((e as AgentProtocolError).code).toBe(ErrorCode.ConnectionClosed);
      expect((e as Error).message).toContain('the plugin is gone (test)');
    }
  });

  it('on_disconnect calls beyond maxQueuedFires are dropped and counted', async () => {
    const p = await pluginSocket(10_000);
    const c = caller(p.path, { maxConnections: 1, maxQueuedFires: 2 });
    // the only connection is busy: fires queue up
    c.call('on_request', request(), decodeAuthorizeResult).catch(() => {});
    await until(() => c.stats().busy === 1);
    for (let i = 0; i < 5; i++) c.fire('on_disconnect', encodeEnvelope(4, new Uint8Array([0x80])));
    expect(c.stats()).toMatchObject({ waiting: 2, firesDropped: 3 });
    c.close('done');
  });

  it('refuses bad limits with a clear error', () => {
    expect(() => caller('/x', { maxConnections: 0 })).toThrow(
      /maxConnections must be a number >= 1/,
    );
    expect(() => caller('/x', { timeoutMs: Number.NaN })).toThrow(
      /timeoutMs must be a number >= 1/,
    );
  });
});
