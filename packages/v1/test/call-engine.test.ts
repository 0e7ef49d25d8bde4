/**
 * V1Transport and AgentClient run on the shared call engine (`@picket/protocol/internal`):
 * calls queued for a free connection or on the wire to an agent that never answers hold no
 * timer each (one shared deadline timer), yet each still times out on its own deadline.
 */
import { ErrorCode } from '@picket/protocol';
import { afterEach, expect, it } from 'vitest';
import { connectV1 } from '../src/index.js';
import { cleanupDirs, headersEvent, rawAgent, rejection, socketPath } from './helpers.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  cleanupDirs();
});

/** Timers keeping the event loop alive. */
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

it('50 calls (2 on the wire, 48 queued) add no timer per call; each times out on its own', async () => {
  const path = socketPath();
  const agent = await rawAgent(path, () => undefined);
  closers.push(() => agent.close());
  const t = await connectV1('quiet', path, { connections: 2, timeoutMs: 60_000 });
  closers.push(() => t.close());
  const before = timers();
  const pending = Array.from({ length: 50 }, (_, i) =>
    rejection(t.sendRequestHeaders(headersEvent(`c${i}`))),
  );
  expect(t.inFlight).toBe(50);
  expect(t.queued).toBe(48);
  // the old transport armed a timer per queued call and its clients one per call on the wire
  expect(timers() - before).toBeLessThanOrEqual(1);

  const short = await rejection(t.sendRequestHeaders(headersEvent('short'), { timeoutMs: 50 }));
  expect(short.code).toBe(ErrorCode.Timeout);
  expect(short.message).toContain('no free connection');

  await t.close();
  for (const e of await Promise.all(pending)) expect(e.code).toBe(ErrorCode.ConnectionClosed);
});
