/**
 * AgentClientV2 keeps one timer for all pending calls, armed for the earliest deadline.
 * With real timers and an agent that never answers some calls: every call still times out
 * on its own timeout (TIMEOUT naming it), in deadline order whatever the order the calls were
 * made in, and calls answered in time are unaffected. Asserts order and outcome, never how
 * late a timer fired (only that none fired early); calls meant to be answered get deadlines
 * far beyond a round trip on a loaded machine.
 */
import {
  AgentProtocolError,
  type AgentResponse,
  allow,
  type CancelReason,
  createCapabilities,
  ErrorCode,
} from '@picket/protocol';
import { afterEach, expect, test } from 'vitest';
import { AgentClientV2 } from '../src/client.js';
import { GrpcAgentServerV2 } from '../src/server.js';
import { bareRequest } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** An agent that never answers `hang-*`, answers `slow-*` after 100 ms, the rest at once. */
async function start() {
  const cancelled: { cid: string; reason: CancelReason }[] = [];
  const server = new GrpcAgentServerV2(
    {
      capabilities: () => createCapabilities({ agentId: 'late', features: { cancellation: true } }),
      onRequestHeaders(e): AgentResponse | Promise<AgentResponse> {
        const cid = e.metadata.correlation_id;
        if (cid.startsWith('hang')) return new Promise<AgentResponse>(() => {});
        if (cid.startsWith('slow')) {
          return new Promise((resolve) => setTimeout(() => resolve(allow({ tags: [cid] })), 100));
        }
        return allow({ tags: [cid] });
      },
      onCancel(cid, reason) {
        cancelled.push({ cid, reason });
      },
    },
    { logger: quiet },
  );
  const { address } = await server.listen('127.0.0.1:0');
  cleanups.push(() => server.forceShutdown());
  const client = await AgentClientV2.connect('late', address, { timeoutMs: 10_000, logger: quiet });
  cleanups.push(() => client.close());
  return { client, cancelled };
}

interface Outcome {
  cid: string;
  ok?: string[];
  code?: string;
  message?: string;
  elapsed: number;
}

test('calls time out on their own timeouts, in deadline order; answered calls are unaffected', async () => {
  const { client } = await start();
  const order: string[] = [];
  const t0 = performance.now();
  const call = (cid: string, timeoutMs: number): Promise<Outcome> =>
    client.sendRequestHeaders(bareRequest(cid), { timeoutMs }).then(
      (r) => {
        order.push(cid);
        return { cid, ok: r.audit.tags, elapsed: performance.now() - t0 };
      },
      (err: unknown) => {
        order.push(cid);
        expect(err).toBeInstanceOf(AgentProtocolError);
        const e = err as AgentProtocolError;
        return { cid, code: e.code, message: e.message, elapsed: performance.now() - t0 };
      },
    );

  // made out of deadline order: each new earlier deadline must re-arm the shared timer
  const calls = [
    call('hang-300', 300),
    call('slow-answered', 10_000),
    call('hang-150', 150),
    call('quick-answered', 10_000),
    call('hang-50', 50),
    call('hang-150b', 150),
  ];
  const results = await Promise.all(calls);
  const byCid = new Map(results.map((r) => [r.cid, r]));

  for (const [cid, ms] of [
    ['hang-50', 50],
    ['hang-150', 150],
    ['hang-150b', 150],
    ['hang-300', 300],
  ] as const) {
    const r = byCid.get(cid) as Outcome;
    expect(r.code, cid).toBe(ErrorCode.Timeout);
    expect(r.message).toBe(`agent late did not answer request_headers ${cid} within ${ms} ms`);
    expect(r.elapsed, `${cid} must not time out early`).toBeGreaterThanOrEqual(ms - 2);
  }
  expect(byCid.get('quick-answered')?.ok).toEqual(['quick-answered']);
  expect(byCid.get('slow-answered')?.ok).toEqual(['slow-answered']);

  // deadline order among the timeouts (the two 150 ms calls in the order they were made)
  const timeouts = order.filter((cid) => cid.startsWith('hang'));
  expect(timeouts).toEqual(['hang-50', 'hang-150', 'hang-150b', 'hang-300']);
  expect(client.inFlight).toBe(0);

  // the transport still works, and still times calls out, after its timer ran dry
  expect((await call('quick-again', 10_000)).ok).toEqual(['quick-again']);
  const again = await call('hang-again', 30);
  expect(again.code).toBe(ErrorCode.Timeout);
  expect(again.message).toContain('within 30 ms');
});

test('an earlier call answered in time leaves later deadlines armed', async () => {
  const { client, cancelled } = await start();
  // the answered call has the earlier deadline; 2 s leaves a loaded machine time to answer it
  const answered = client.sendRequestHeaders(bareRequest('quick-1'), { timeoutMs: 2_000 });
  const timedOut = client.sendRequestHeaders(bareRequest('hang-1'), { timeoutMs: 2_500 });
  await expect(answered).resolves.toMatchObject({ decision: 'allow' });
  await expect(timedOut).rejects.toMatchObject({
    code: ErrorCode.Timeout,
    message: 'agent late did not answer request_headers hang-1 within 2500 ms',
  });
  expect(client.inFlight).toBe(0);
  // the agent is told (hang guard: a generous wait for the cancel to arrive)
  for (let i = 0; i < 200 && cancelled.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(cancelled).toEqual([{ cid: 'hang-1', reason: 'timeout' }]);
});
