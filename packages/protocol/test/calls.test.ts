/**
 * The proxy-side call engine (`@picket/protocol/internal`) on its own, with fake timers for
 * its deadline logic. The real-socket behaviour is covered by every transport's suites.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AgentProtocolError,
  type AgentResponse,
  allow,
  type CancelReason,
  ErrorCode,
  type EventType,
} from '../src/index.js';
import { type Call, CallEngine } from '../src/internal/index.js';

const event = (cid: string) => ({ correlation_id: cid }) as never;

function setup(opts: { timeoutMs?: number; pausable?: ReadonlySet<EventType> } = {}) {
  const written: string[] = [];
  const cancels: { cid: string; reason: CancelReason; had: boolean }[] = [];
  let failWrite: unknown;
  const engine = new CallEngine({
    name: 'agent t',
    timeoutMs: opts.timeoutMs ?? 1000,
    pausable: opts.pausable,
    now: Date.now,
    wire: {
      write(call: Call) {
        if (failWrite !== undefined) throw failWrite;
        written.push(call.correlationId);
      },
      writeCancel(cid, reason, call) {
        cancels.push({ cid, reason, had: call !== undefined });
      },
    },
  });
  const call = (cid: string, o?: { timeoutMs?: number; signal?: AbortSignal }, type?: EventType) =>
    engine.call(type ?? 'request_body_chunk', event(cid), cid, o);
  return {
    engine,
    call,
    written,
    cancels,
    failWritesWith(e: unknown) {
      failWrite = e;
    },
  };
}

const unexpected = (): never => {
  throw new Error('expected a rejection');
};

const code = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: AgentProtocolError) => e.code,
  );

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('CallEngine', () => {
  it('matches replies by correlation id in any order; unknown ids are reported, not thrown', async () => {
    const { engine, call, written } = setup();
    const a = call('a');
    const b = call('b');
    expect(written).toEqual(['a', 'b']);
    expect(engine.size).toBe(2);
    expect(engine.resolve('b', allow({ tags: ['b'] }))).toBe(true);
    expect(engine.resolve('a', allow({ tags: ['a'] }))).toBe(true);
    expect(engine.resolve('a', allow())).toBe(false);
    expect((await a).audit.tags).toEqual(['a']);
    expect((await b).audit.tags).toEqual(['b']);
    expect(engine.size).toBe(0);
  });

  it('refuses a correlation id already in flight without writing it', async () => {
    const { call, written, engine } = setup();
    const first = call('dup');
    const err = await call('dup').then(unexpected, (e: AgentProtocolError) => e);
    expect(err).toMatchObject({ code: ErrorCode.InvalidArgument });
    expect(err.message).toContain('"dup"');
    expect(written).toEqual(['dup']);
    engine.resolve('dup', allow());
    await first;
  });

  it('keeps ONE timer for all calls; each times out on its own timeout, in deadline order', async () => {
    const { engine, call, cancels } = setup({ timeoutMs: 10_000 });
    const order: string[] = [];
    const track = (cid: string, ms: number) =>
      call(cid, { timeoutMs: ms }).catch((e: AgentProtocolError) => {
        order.push(`${cid}:${e.code}`);
        return e;
      });
    const calls = [track('c300', 300), track('c100', 100), track('c200', 200), track('c100b', 100)];
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(99);
    expect(order).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(order).toEqual(['c100:TIMEOUT', 'c100b:TIMEOUT']);
    await vi.advanceTimersByTimeAsync(200);
    expect(order).toEqual(['c100:TIMEOUT', 'c100b:TIMEOUT', 'c200:TIMEOUT', 'c300:TIMEOUT']);
    const errs = await Promise.all(calls);
    expect((errs[1] as AgentProtocolError).message).toBe(
      'agent t did not answer request_body_chunk c100 within 100 ms',
    );
    expect(cancels.map((c) => `${c.cid}:${c.reason}`)).toEqual([
      'c100:timeout',
      'c100b:timeout',
      'c200:timeout',
      'c300:timeout',
    ]);
    expect(engine.counts.timeouts).toBe(4);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an answered call leaves the others armed; an idle engine ends up with no timer', async () => {
    const { engine, call } = setup();
    const quick = call('quick', { timeoutMs: 50 });
    const slow = code(call('slow', { timeoutMs: 120 }));
    engine.resolve('quick', allow());
    await quick;
    await vi.advanceTimersByTimeAsync(119);
    expect(engine.size).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(await slow).toBe(ErrorCode.Timeout);
    const done = call('x', { timeoutMs: 500 });
    engine.resolve('x', allow());
    await done;
    // the shared timer is not re-armed per call: it fires once with nothing due and stays off
    const again = call('y', { timeoutMs: 600 });
    engine.resolve('y', allow());
    await again;
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(500);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('timeoutMs Infinity arms no timer; below 1 counts as 1 ms', async () => {
    const { engine, call } = setup();
    const never = call('never', { timeoutMs: Number.POSITIVE_INFINITY });
    expect(vi.getTimerCount()).toBe(0);
    const zero = code(call('zero', { timeoutMs: 0 }));
    await vi.advanceTimersByTimeAsync(1);
    expect(await zero).toBe(ErrorCode.Timeout);
    engine.resolve('never', allow());
    await never;
  });

  it('a timer far in the future is re-armed rather than firing at once', async () => {
    const { engine, call } = setup();
    const far = call('far', { timeoutMs: 3_000_000_000 });
    await vi.advanceTimersByTimeAsync(2_147_483_647);
    expect(engine.size).toBe(1);
    engine.resolve('far', allow());
    await far;
  });

  it('an aborted signal rejects with CANCELLED and cancels at the agent with its reason', async () => {
    const { engine, call, cancels } = setup();
    const ac = new AbortController();
    const p = call('s', { signal: ac.signal });
    ac.abort('client_disconnect' satisfies CancelReason);
    await expect(p).rejects.toMatchObject({ code: ErrorCode.Cancelled });
    const other = new AbortController();
    const q = call('t', { signal: other.signal });
    other.abort(new Error('whatever'));
    await expect(q).rejects.toMatchObject({ code: ErrorCode.Cancelled });
    expect(cancels).toEqual([
      { cid: 's', reason: 'client_disconnect', had: true },
      { cid: 't', reason: 'client_disconnect', had: true },
    ]);
    expect(engine.counts.cancelled).toBe(2);
  });

  it('a signal aborted before the call writes nothing; a settled call drops its listener', async () => {
    const { call, written, engine } = setup();
    const ac = new AbortController();
    ac.abort();
    expect(await code(call('pre', { signal: ac.signal }))).toBe(ErrorCode.Cancelled);
    expect(written).toEqual([]);
    const live = new AbortController();
    const p = call('ok', { signal: live.signal });
    engine.resolve('ok', allow());
    await p;
    live.abort();
    expect(engine.counts.cancelled).toBe(0);
  });

  it('cancel and cancelAll reject with CANCELLED and tell the agent, even about unknown ids', async () => {
    const { engine, call, cancels } = setup();
    const a = code(call('a'));
    const b = code(call('b'));
    const c = code(call('c'));
    engine.cancel('a', 'manual');
    engine.cancel('ghost', 'manual');
    expect(engine.cancelAll('proxy_shutdown')).toBe(2);
    expect([await a, await b, await c]).toEqual(['CANCELLED', 'CANCELLED', 'CANCELLED']);
    expect(cancels).toEqual([
      { cid: 'a', reason: 'manual', had: true },
      { cid: 'ghost', reason: 'manual', had: false },
      { cid: 'b', reason: 'proxy_shutdown', had: true },
      { cid: 'c', reason: 'proxy_shutdown', had: true },
    ]);
  });

  it('close fails every pending call and every later one with CONNECTION_CLOSED', async () => {
    const { engine, call, cancels, written } = setup();
    const pending = [call('a'), call('b')].map((p) =>
      p.then(unexpected, (e: AgentProtocolError) => e),
    );
    const why = new AgentProtocolError(ErrorCode.ConnectionClosed, 'agent t: socket closed');
    engine.close(why);
    for (const e of await Promise.all(pending)) expect(e).toBe(why);
    const later = await call('c').then(unexpected, (e: AgentProtocolError) => e);
    expect(later).toMatchObject({ code: ErrorCode.ConnectionClosed });
    expect(later.message).toContain('agent t: socket closed');
    engine.cancel('a', 'manual');
    expect(cancels).toEqual([]);
    expect(written).toEqual(['a', 'b']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('paused refuses calls at once with FLOW_CONTROL_PAUSED (only the pausable types)', async () => {
    const { engine, call, written } = setup({
      pausable: new Set<EventType>(['request_body_chunk']),
    });
    expect(engine.setPaused(true)).toBe(true);
    expect(engine.setPaused(true)).toBe(false);
    expect(await code(call('p'))).toBe(ErrorCode.FlowControlPaused);
    const configure = call('cfg', {}, 'configure');
    expect(written).toEqual(['cfg']);
    engine.setPaused(false);
    const resumed = call('r');
    expect(written).toEqual(['cfg', 'r']);
    engine.resolve('cfg', allow());
    engine.resolve('r', allow());
    await Promise.all([configure, resumed]);
  });

  it('a write that throws fails that call only (AgentProtocolError as is, else INTERNAL)', async () => {
    const { engine, call, failWritesWith } = setup();
    failWritesWith(new Error('EPIPE'));
    const err = await call('w').then(unexpected, (e: AgentProtocolError) => e);
    expect(err.code).toBe(ErrorCode.Internal);
    expect(err.message).toContain('EPIPE');
    expect(engine.size).toBe(0);
    failWritesWith(undefined);
    const ok: Promise<AgentResponse> = call('w');
    engine.resolve('w', allow());
    await ok;
  });
});

describe('pending calls table', () => {
  it('walks pending calls in call order even for integer-like ids (cancelAll, close, calls())', async () => {
    const { engine, call, cancels } = setup({ timeoutMs: Number.POSITIVE_INFINITY });
    const ids = ['10', 'b', '2', '__proto__', 'constructor', '1', 'a'];
    const outcomes = ids.map((id) => code(call(id)));
    expect(engine.size).toBe(ids.length);
    expect([...engine.calls()].map((c) => c.correlationId)).toEqual(ids);
    expect(engine.get('__proto__')?.correlationId).toBe('__proto__');
    expect(engine.get('toString')).toBeUndefined();
    expect(engine.cancelAll('manual')).toBe(ids.length);
    expect(cancels.map((c) => c.cid)).toEqual(ids);
    expect(await Promise.all(outcomes)).toEqual(ids.map(() => ErrorCode.Cancelled));
    expect(engine.size).toBe(0);

    const later = ['3', 'x', '0'].map((id) =>
      call(id).then(unexpected, (e: AgentProtocolError) => e),
    );
    engine.close(new AgentProtocolError(ErrorCode.ConnectionClosed, 'gone'));
    expect((await Promise.all(later)).map((e) => e.code)).toEqual([
      ErrorCode.ConnectionClosed,
      ErrorCode.ConnectionClosed,
      ErrorCode.ConnectionClosed,
    ]);
  });

  it('an id can be reused once its call settled; a pending one is refused', async () => {
    const { engine, call } = setup({ timeoutMs: Number.POSITIVE_INFINITY });
    const first = call('7');
    await expect(call('7')).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
    engine.resolve('7', allow());
    await first;
    const second = call('7');
    expect(engine.size).toBe(1);
    engine.resolve('7', allow({ tags: ['again'] }));
    expect((await second).audit.tags).toEqual(['again']);
    expect(engine.size).toBe(0);
  });
});

describe('callInto (the pool: an outcome sink instead of a promise)', () => {
  /** A SinkCall for `cid` that records its outcomes in `got`. */
  const sink = () => {
    const got: string[] = [];
    const make = (cid: string, timeoutMs?: number, signal?: AbortSignal) => ({
      type: 'request_body_chunk' as const,
      event: event(cid),
      correlationId: cid,
      timeoutMs,
      signal,
      answered: (r: AgentResponse) => got.push(`answered:${r.decision}`),
      failed: (e: AgentProtocolError) => got.push(`failed:${e.code}:${String(e.sent)}`),
    });
    return { got, make };
  };

  it('delivers the answer, refusals at once (unsent), and a timeout counted from the given clock reading', async () => {
    const { engine, written, cancels } = setup();
    const a = sink();
    engine.callInto(a.make('s1'), Date.now());
    expect(written).toEqual(['s1']);
    engine.resolve('s1', allow());
    expect(a.got).toEqual(['answered:allow']);

    const dup = sink();
    engine.callInto(dup.make('s2', 50), 0);
    engine.callInto(dup.make('s2', 50), 0);
    expect(dup.got).toEqual([`failed:${ErrorCode.InvalidArgument}:false`]);
    // this engine runs on its own clock (Date.now): a performance.now() reading is ignored
    await vi.advanceTimersByTimeAsync(49);
    expect(dup.got).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2);
    expect(dup.got).toEqual([
      `failed:${ErrorCode.InvalidArgument}:false`,
      `failed:${ErrorCode.Timeout}:undefined`,
    ]);
    expect(cancels.map((c) => c.cid)).toEqual(['s2']);

    const aborted = sink();
    engine.callInto(aborted.make('s3', 50, AbortSignal.abort()), 0);
    engine.close(new AgentProtocolError(ErrorCode.ConnectionClosed, 'gone'));
    const closed = sink();
    engine.callInto(closed.make('s4', 50), 0);
    expect([aborted.got, closed.got]).toEqual([
      [`failed:${ErrorCode.Cancelled}:false`],
      [`failed:${ErrorCode.ConnectionClosed}:false`],
    ]);
  });

  it('a throwing sink does not break the engine: the error surfaces as uncaught, other calls go on', async () => {
    const { engine } = setup({ timeoutMs: Number.POSITIVE_INFINITY });
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onUncaught);
    try {
      const ok = sink();
      const bad = {
        ...sink().make('b1'),
        answered: () => {
          throw new Error('sink bug');
        },
      };
      engine.callInto(bad);
      engine.callInto(ok.make('b2'));
      expect(engine.resolve('b1', allow())).toBe(true);
      expect(engine.resolve('b2', allow())).toBe(true);
      expect([ok.got, engine.size]).toEqual([['answered:allow'], 0]);
      await new Promise((r) => process.nextTick(r));
      await vi.waitFor(() => expect(uncaught).toHaveLength(1));
      expect((uncaught[0] as Error).message).toBe('sink bug');
    } finally {
      process.off('uncaughtException', onUncaught);
      for (const l of listeners) process.on('uncaughtException', l);
    }
  });
});
