import { allow, type CancelReason, setHeader } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClientV2Uds, UdsAgentServerV2 } from '../src/index.js';
import { captureLogger, delay, handler, requestHeaders, tempSocket, until } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Seen {
  started: string[];
  aborted: string[];
  cancels: [string, CancelReason][];
  finished: string[];
}

/**
 * A server whose handler waits for a per-request gate (or a random delay), so tests
 * decide the order in which replies leave — never the clock.
 */
async function setup(o: { random?: boolean; clientTimeoutMs?: number } = {}) {
  const tmp = tempSocket();
  cleanups.push(tmp.cleanup);
  const seen: Seen = { started: [], aborted: [], cancels: [], finished: [] };
  const gates = new Map<string, () => void>();
  const server = new UdsAgentServerV2(
    tmp.path,
    handler({
      onRequestHeaders: async (_e, ctx) => {
        seen.started.push(ctx.correlationId);
        ctx.signal.addEventListener('abort', () => seen.aborted.push(ctx.correlationId));
        if (o.random) {
          await delay(Math.floor(Math.random() * 15));
        } else {
          await new Promise<void>((resolve) => {
            gates.set(ctx.correlationId, resolve);
            ctx.signal.addEventListener('abort', () => resolve());
          });
        }
        seen.finished.push(ctx.correlationId);
        return allow({ requestHeaders: [setHeader('x-test-agent', ctx.correlationId)] });
      },
      onCancel: (cid, reason) => seen.cancels.push([cid, reason]),
    }),
    { logger: captureLogger() },
  );
  await server.listen();
  cleanups.push(() => server.close({ drainTimeoutMs: 100 }));
  const client = await AgentClientV2Uds.connect('test', tmp.path, {
    logger: captureLogger(),
    timeoutMs: o.clientTimeoutMs ?? 10_000,
  });
  cleanups.push(() => client.close());
  const open = (cid: string) => {
    const g = gates.get(cid);
    if (g === undefined) throw new Error(`${cid} not started`);
    g();
  };
  return { server, client, seen, open };
}

describe('many requests on one connection', () => {
  it('answers 200 concurrent requests out of order, each to its own caller', async () => {
    const { client } = await setup({ random: true });
    const ids = Array.from({ length: 200 }, (_, i) => `c-${i}`);
    const replies = await Promise.all(
      ids.map((id) => client.sendRequestHeaders(requestHeaders(id))),
    );
    replies.forEach((r, i) => {
      expect(r.request_headers).toEqual([{ set: { name: 'x-test-agent', value: ids[i] } }]);
    });
    expect(client.inFlight).toBe(0);
  });

  it('resolves in the order the agent answers, not the order sent', async () => {
    const { client, seen, open } = await setup();
    const order: string[] = [];
    const calls = ['a', 'b', 'c'].map((id) =>
      client.sendRequestHeaders(requestHeaders(id)).then((r) => {
        order.push(r.audit.custom.correlation_id as string);
      }),
    );
    await until(() => seen.started.length === 3);
    open('c');
    await until(() => order.length === 1);
    open('a');
    await until(() => order.length === 2);
    open('b');
    await Promise.all(calls);
    expect(order).toEqual(['c', 'a', 'b']);
  });

  it('rejects a second call with a correlation id already in flight', async () => {
    const { client, seen, open } = await setup();
    const first = client.sendRequestHeaders(requestHeaders('dup'));
    await expect(client.sendRequestHeaders(requestHeaders('dup'))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await until(() => seen.started.length === 1);
    open('dup');
    expect((await first).audit.custom.correlation_id).toBe('dup');
    expect(seen.started).toEqual(['dup']);
  });

  it('times a call out with TIMEOUT and tells the agent (cancel reason timeout)', async () => {
    const { client, seen } = await setup();
    await expect(
      client.sendRequestHeaders(requestHeaders('slow'), { timeoutMs: 50 }),
    ).rejects.toMatchObject({
      code: 'TIMEOUT',
    });
    await until(() => seen.cancels.length === 1);
    expect(seen.cancels[0]).toEqual(['slow', 'timeout']);
    expect(seen.aborted).toEqual(['slow']);
    expect(client.stats.timeouts).toBe(1);
  });

  it('rejects with CANCELLED when the AbortSignal fires and cancels on the agent', async () => {
    const { client, seen } = await setup();
    const ac = new AbortController();
    const call = client.sendRequestHeaders(requestHeaders('abort-me'), { signal: ac.signal });
    await until(() => seen.started.length === 1);
    ac.abort();
    await expect(call).rejects.toMatchObject({ code: 'CANCELLED' });
    await until(() => seen.cancels.length === 1);
    expect(seen.cancels[0]).toEqual(['abort-me', 'client_disconnect']);
    // an already-aborted signal never reaches the agent
    await expect(
      client.sendRequestHeaders(requestHeaders('never'), { signal: ac.signal }),
    ).rejects.toMatchObject({
      code: 'CANCELLED',
    });
    expect(seen.started).toEqual(['abort-me']);
  });

  it('cancel() aborts the handler signal and suppresses its reply', async () => {
    const { client, seen } = await setup();
    const call = client.sendRequestHeaders(requestHeaders('x1'));
    await until(() => seen.started.length === 1);
    await client.cancel('x1', 'blocked_by_agent');
    await expect(call).rejects.toMatchObject({ code: 'CANCELLED' });
    await until(() => seen.finished.length === 1);
    expect(seen.aborted).toEqual(['x1']);
    expect(seen.cancels).toEqual([['x1', 'blocked_by_agent']]);
    // the handler returned after the abort; its reply must not have been sent
    const ping = await client.ping({ timeoutMs: 3000 });
    expect(ping).toBeGreaterThanOrEqual(0);
    expect(client.stats.droppedReplies).toBe(0);
    expect(client.stats.responses).toBe(0);
  });

  it('cancelAll() cancels every pending call and reports the count', async () => {
    const { client, seen } = await setup();
    const calls = ['p1', 'p2', 'p3'].map((id) => client.sendRequestHeaders(requestHeaders(id)));
    await until(() => seen.started.length === 3);
    expect(client.inFlight).toBe(3);
    expect(await client.cancelAll('proxy_shutdown')).toBe(3);
    for (const c of calls) await expect(c).rejects.toMatchObject({ code: 'CANCELLED' });
    await until(() => seen.cancels.length === 3);
    expect(seen.cancels.map(([id, reason]) => `${id}:${reason}`).sort()).toEqual([
      'p1:proxy_shutdown',
      'p2:proxy_shutdown',
      'p3:proxy_shutdown',
    ]);
    expect(client.inFlight).toBe(0);
  });
});
