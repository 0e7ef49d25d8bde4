/**
 * The proxy side runs on the shared call engine (`@picket/protocol/internal`): over a real
 * socket to an agent that never answers, any number of calls in flight hold no timer each
 * (one shared deadline timer per connection), yet every call still ends on its own deadline,
 * and closing fails what is left.
 */
import * as net from 'node:net';
import { type AgentProtocolError, createCapabilities, ErrorCode } from '@picket/protocol';
import { afterEach, expect, it } from 'vitest';
import { ProxyConnection } from '../src/proxy-connection.js';
import { captureLogger, requestHeaders, tempSocket } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A peer that accepts the connection and never says anything. */
async function silentPeer(): Promise<net.Socket> {
  const tmp = tempSocket();
  cleanups.push(tmp.cleanup);
  const accepted: net.Socket[] = [];
  // resume(): read (and drop) what arrives, so the proxy's FIN is seen and answered
  const server = net.createServer((s) => accepted.push(s.resume()));
  await new Promise<void>((resolve) => server.listen(tmp.path, resolve));
  cleanups.push(() => {
    for (const s of accepted) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(tmp.path, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Timers keeping the event loop alive. */
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

it('200 calls in flight add no timer per call; each still times out on its own deadline', async () => {
  const conn = new ProxyConnection(await silentPeer(), {
    agentId: 'quiet',
    capabilities: createCapabilities({ agentId: 'quiet' }),
    timeoutMs: 60_000,
    logger: captureLogger(),
  });
  cleanups.push(() => conn.close());
  const before = timers();
  const pending = Array.from({ length: 200 }, (_, i) =>
    conn.sendRequestHeaders(requestHeaders(`c${i}`)).catch((e: unknown) => e),
  );
  expect(conn.inFlight).toBe(200);
  // the old engine armed one setTimeout per call (+200 here)
  expect(timers() - before).toBeLessThanOrEqual(1);

  const short = await conn
    .sendRequestHeaders(requestHeaders('short'), { timeoutMs: 50 })
    .catch((e: AgentProtocolError) => e);
  expect(short).toMatchObject({ code: ErrorCode.Timeout });
  expect(conn.stats.timeouts).toBe(1);
  expect(conn.inFlight).toBe(200);

  await conn.close();
  for (const e of await Promise.all(pending)) {
    expect(e).toMatchObject({ code: ErrorCode.ConnectionClosed });
  }
  expect(conn.inFlight).toBe(0);
});
