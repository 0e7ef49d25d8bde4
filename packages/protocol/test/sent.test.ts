/**
 * The `sent` fact the pool's retry rule relies on, as the call engine records it: false for
 * every refusal and for a write that threw, true for calls pending when the connection ended.
 */
import { describe, expect, it } from 'vitest';
import { AgentProtocolError, ErrorCode } from '../src/index.js';
import { CallEngine, withSent } from '../src/internal/index.js';

const event = (cid: string) => ({ correlation_id: cid }) as never;

function engine(write: () => void = () => {}) {
  return new CallEngine({
    name: 'agent t',
    timeoutMs: 10_000,
    wire: { write, writeCancel() {} },
  });
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('resolved');
    },
    (e: unknown) => e as AgentProtocolError,
  );

describe('the call engine records whether an event may have reached the agent', () => {
  it('calls pending when the connection ends: sent true (they were handed to the wire)', async () => {
    const e = engine();
    const pending = failure(e.call('request_headers', event('a'), 'a'));
    e.close(new AgentProtocolError(ErrorCode.ConnectionClosed, 'agent t: connection closed'));
    const err = await pending;
    expect(err.code).toBe(ErrorCode.ConnectionClosed);
    expect(err.sent).toBe(true);
  });

  it('a call after the close, while paused, aborted or duplicated: sent false', async () => {
    const closed = engine();
    closed.close(new AgentProtocolError(ErrorCode.ConnectionClosed, 'gone'));
    expect((await failure(closed.call('request_headers', event('a'), 'a'))).sent).toBe(false);

    const paused = engine();
    paused.setPaused(true);
    const p = await failure(paused.call('request_headers', event('b'), 'b'));
    expect(p.code).toBe(ErrorCode.FlowControlPaused);
    expect(p.sent).toBe(false);

    const aborted = engine();
    const signal = AbortSignal.abort();
    const a = await failure(aborted.call('request_headers', event('c'), 'c', { signal }));
    expect(a.code).toBe(ErrorCode.Cancelled);
    expect(a.sent).toBe(false);

    const dup = engine();
    void dup.call('request_headers', event('d'), 'd').catch(() => {});
    const d = await failure(dup.call('request_headers', event('d'), 'd'));
    expect(d.code).toBe(ErrorCode.InvalidArgument);
    expect(d.sent).toBe(false);
    dup.close(new AgentProtocolError(ErrorCode.ConnectionClosed, 'bye'));
  });

  it('a write that throws: sent false, unless the transport said otherwise', async () => {
    const thrower = engine(() => {
      throw new AgentProtocolError(ErrorCode.MessageTooLarge, 'too big');
    });
    const err = await failure(thrower.call('request_headers', event('a'), 'a'));
    expect(err.code).toBe(ErrorCode.MessageTooLarge);
    expect(err.sent).toBe(false);

    const partial = engine(() => {
      throw new AgentProtocolError(ErrorCode.ConnectionClosed, 'half written', { sent: true });
    });
    expect((await failure(partial.call('request_headers', event('b'), 'b'))).sent).toBe(true);
  });

  it('withSent keeps the fact closest to the wire and the object itself', () => {
    const err = new AgentProtocolError(ErrorCode.ConnectionClosed, 'x');
    expect(withSent(err, true)).toBe(err);
    expect(err.sent).toBe(true);
    withSent(err, false);
    expect(err.sent).toBe(true);
  });
});
