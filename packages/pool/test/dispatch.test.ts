/**
 * The dispatcher's decisions against in-memory transports: when a failed
 * attempt is retried on another connection (the transport's `sent` /
 * `retryable` facts), a transport's FLOW_CONTROL_PAUSED refusal going to the
 * pool's flow-control policy, and the guard against a transport that never
 * answers.
 */
import {
  AgentProtocolError,
  decisionKind,
  ErrorCode,
  type EventMap,
  type EventType,
  eventCorrelationId,
} from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { type AgentOptions, AgentPool } from '../src/index.js';
import { bodyChunk, FakeTransport, headers, until } from './fake-transport.js';

const pools: AgentPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ drainTimeoutMs: 0 })));
});

/** A pool with one agent on `n` fake connections (the pool's dial order). */
async function setup(n: number, options: AgentOptions = {}) {
  const made: FakeTransport[] = [];
  const p = new AgentPool({ healthCheckIntervalMs: 0, circuitBreaker: false });
  pools.push(p);
  await p.addAgent(
    'a',
    async () => {
      const t = new FakeTransport('a');
      made.push(t);
      return t;
    },
    { connectionsPerAgent: n, ...options },
  );
  return { p, made };
}

/**
 * `t` rejects every call with `err`. `written`: the call first enters the
 * transport's pending set (as a written one does); else it is refused at once.
 */
function failWith(t: FakeTransport, err: () => AgentProtocolError, written = false): void {
  let n = 0;
  t.send = (type: EventType, event: unknown) => {
    const cid = eventCorrelationId(event as EventMap[typeof type]);
    t.seen.push({ type, cid });
    if (!written) return Promise.reject(err());
    return new Promise((_resolve, reject) => {
      const key = `${cid}/failing/${++n}`;
      t.pending.set(key, { reject });
      setImmediate(() => {
        t.pending.delete(key);
        reject(err());
      });
    });
  };
}

function guardrail(cid: string) {
  return {
    correlation_id: cid,
    inspection_type: 'prompt_injection' as const,
    content: 'hello',
    categories: [],
    metadata: {},
  };
}

const closed = (sent?: boolean) =>
  new AgentProtocolError(
    ErrorCode.ConnectionClosed,
    'connection lost',
    sent === undefined ? undefined : { sent },
  );

describe('retry decision', () => {
  it('an event the transport says it never wrote (sent: false) is retried on another connection', async () => {
    const { p, made } = await setup(2);
    const [t1, t2] = made as [FakeTransport, FakeTransport];
    failWith(t1, () => closed(false));
    for (let i = 0; i < 4; i++) {
      const r = await p.sendRequestBodyChunk('a', bodyChunk(`b${i}`));
      expect(r.decision).toBe('allow');
    }
    expect(t1.seen.length).toBeGreaterThan(0);
    expect(t2.seen.map((s) => s.cid)).toEqual(['b0', 'b1', 'b2', 'b3']);
  });

  it('a request event that may have reached the agent (sent: true) is not repeated', async () => {
    const { p, made } = await setup(2);
    const [t1, t2] = made as [FakeTransport, FakeTransport];
    // refused before entering the pending set, but the transport says it was written: not repeated
    failWith(t1, () => closed(true));
    failWith(t2, () => closed(true));
    const r = await p.sendRequestHeaders('a', headers('h1'));
    expect(decisionKind(r.decision)).toBe('block');
    expect(r.audit.reason_codes).toEqual(['AGENT_CONNECTION_CLOSED']);
    expect(t1.seen.length + t2.seen.length).toBe(1);
  });

  it('an idempotent event (guardrail inspection) is retried even when it may have been written', async () => {
    const { p, made } = await setup(2);
    const [t1, t2] = made as [FakeTransport, FakeTransport];
    failWith(t1, () => closed(true), true);
    for (let i = 0; i < 2; i++) {
      const r = await p.sendGuardrailInspect('a', guardrail(`g${i}`));
      expect(r.decision).toBe('allow');
    }
    expect(t2.seen.map((s) => s.cid)).toEqual(['g0', 'g1']);
  });

  it('retryable: false is never retried; a caller error stays a caller error', async () => {
    const { p, made } = await setup(2);
    const [t1, t2] = made as [FakeTransport, FakeTransport];
    failWith(t1, () =>
      Object.assign(new AgentProtocolError(ErrorCode.Unavailable, 'draining', { sent: false }), {
        retryable: false,
      }),
    );
    failWith(t2, () =>
      Object.assign(new AgentProtocolError(ErrorCode.Unavailable, 'draining', { sent: false }), {
        retryable: false,
      }),
    );
    const r = await p.sendRequestHeaders('a', headers('u1'));
    expect(r.audit.reason_codes).toEqual(['AGENT_UNAVAILABLE']);
    expect(t1.seen.length + t2.seen.length).toBe(1);

    failWith(t1, () => new AgentProtocolError(ErrorCode.InvalidArgument, 'dup', { sent: false }));
    failWith(t2, () => new AgentProtocolError(ErrorCode.InvalidArgument, 'dup', { sent: false }));
    await expect(p.sendRequestHeaders('a', headers('u2'))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(t1.seen.length + t2.seen.length).toBe(2);
  });
});

describe("a transport's FLOW_CONTROL_PAUSED refusal", () => {
  /** `t` refuses as paused but has not (yet) reported `paused`. */
  function refusePaused(t: FakeTransport): void {
    failWith(t, () => new AgentProtocolError(ErrorCode.FlowControlPaused, 'paused'));
  }

  it('fail_open: the pool answers allow tagged fail_open', async () => {
    const { p, made } = await setup(1, { flowControl: 'fail_open' });
    refusePaused(made[0] as FakeTransport);
    const r = await p.sendRequestHeaders('a', headers('o1'));
    expect(r.decision).toBe('allow');
    expect(r.audit.tags).toEqual(['fail_open']);
    expect(r.audit.reason_codes).toEqual(['AGENT_FLOW_CONTROL_PAUSED']);
  });

  it('fail_closed: FLOW_CONTROL_PAUSED, the breaker untouched', async () => {
    const { p, made } = await setup(1, { flowControl: 'fail_closed', failureMode: 'throw' });
    refusePaused(made[0] as FakeTransport);
    await expect(p.sendRequestHeaders('a', headers('c1'))).rejects.toMatchObject({
      code: 'FLOW_CONTROL_PAUSED',
    });
    expect(p.agentStats('a')?.circuitState).toBe('closed');
  });

  it('wait: the call waits for the resume event and is then sent', async () => {
    const { p, made } = await setup(1, { flowControl: 'wait', flowControlWaitMs: 10_000 });
    const t = made[0] as FakeTransport;
    const original = t.send;
    refusePaused(t);
    const waiting = p.sendRequestHeaders('a', headers('w1'));
    await until(() => t.seen.length === 1, 'the refused attempt');
    t.send = original;
    t.resume();
    expect((await waiting).decision).toBe('allow');
    expect(t.seen.map((s) => s.cid)).toEqual(['w1', 'w1']);
  });
});

describe('guard', () => {
  it('a transport that ignores its timeout and the cancel still ends the call', async () => {
    const { p, made } = await setup(1, { requestTimeoutMs: 30 });
    const t = made[0] as FakeTransport;
    t.send = () => new Promise(() => {});
    const r = await p.sendRequestHeaders('a', headers('hang'));
    expect(r.audit.reason_codes).toEqual(['AGENT_TIMEOUT']);
    expect(t.cancelled).toEqual([['hang', 'timeout']]);
    expect(p.agentStats('a')).toMatchObject({ totalInFlight: 0, totalTimeouts: 1 });
    // the connection's slot came back: the next call is sent
    t.send = FakeTransport.prototype.send;
    expect((await p.sendRequestHeaders('a', headers('next'))).decision).toBe('allow');
  });
});
